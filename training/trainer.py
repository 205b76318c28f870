"""The HDPO trainer: an explicit loop over pre-materialised examples (paper 4.1 defaults in configs

setup: Accelerator -> data (materialise once) -> policy (+ LoRA) -> reference cache (one no-grad pass
       with the policy before it moves, or a resident copy) -> AdamW + schedule -> resume state.
train: for each optimizer step, `accum` micro-batches; each micro-batch is ONE forward over all its
       sequences (training.logps), encoded ahead by training.feed's worker threads, the reference
       log-probs come from the cache, losses from training.objective (HDPO, a pair baseline, KTO or SFT);
       then clip, step, log, maybe checkpoint. SIGTERM / SIGINT finish the current step, save a
       checkpoint and return.
Speed knobs (training.config): model.vision_attention (blocks: one attention call per vision layer),
model.logps (chunked: no (S, R, V) logits), model.compile (training.speed), data.prefetch_workers,
data.pad_to_multiple.

Run folder: config.yaml, data/, checkpoints/step-N/ (model/, trainer_state.pt, state.json),
metrics.jsonl, tb/, train.log (written by the job runner).
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml

from training.attention import set_vision_attention
from training.bundles import DataBundle, ModelBundle, Optim, Reference, TrainResult
from training.checkpoint import TrainState, latest_checkpoint, load_checkpoint, save_checkpoint
from training.config import TrainConfig
from training.data import Augmenters, Example, TrainSeq, load_examples, materialise, micro_batches
from training.feed import BatchFeed, feed_workers
from training.logps import FlatBatch, PromptCache, encode, flatten, forward_logps, token_counts
from training.objective import needs_reference, objective
from training.refcache import RefCache, model_id
from training.speed import compile_blocks, freeze_vision_encoder

if TYPE_CHECKING:
    from accelerate import Accelerator


class Trainer:
    """One run. `Trainer(cfg, run_dir, export_path).train()`; a test can call it with a tiny model.

    After `setup()`: accelerator, data (DataBundle), models (ModelBundle), reference (Reference),
    optim (Optim), sink (MetricsSink); the loop's state is step, history, ref_forwards, stop_signal.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: str | Path,
        export_path: str | Path | None = None,
        db_url: str | None = None,
        run_id: int | None = None,
        resume: bool = False,
        augmenters: Augmenters | None = None,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.export_path = export_path or cfg.data.path
        self.db_url, self.run_id, self.resume = db_url, run_id, resume
        self.augmenters = augmenters
        self.stop_signal: str | None = None
        self.ref_forwards = 0
        self.step = 0
        self.history: list[dict[str, float]] = []
        self._saved_at = -1
        self._loaded: Path | None = None

    # ------------------------------------------------------------------ setup

    def _setup_accelerator(self) -> Accelerator:
        from accelerate import Accelerator

        mc = self.cfg.model
        cuda = torch.cuda.is_available() and (mc.device or "cuda").startswith("cuda")
        mixed = "bf16" if (mc.precision == "bf16" or (mc.precision == "auto" and cuda)) else "no"
        return Accelerator(mixed_precision=mixed, cpu=not cuda)

    def _seed(self, offset: int = 0) -> None:
        seed = self.cfg.run.seed + offset
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _setup_data(self, acc: Accelerator) -> DataBundle:
        if not self.export_path:
            raise ValueError("no training data: set data.path to an annotations export, or pass --db to export one")
        data_dir = self.run_dir / "data"
        if Path(self.export_path).name == "examples.jsonl":  # already materialised (frames/ beside it)
            data_dir = Path(self.export_path).parent
        elif acc.is_main_process:
            materialise(self.export_path, data_dir, self.cfg.data, self.cfg.loss, self.cfg.run.seed, self.augmenters)
        acc.wait_for_everyone()
        examples = load_examples(data_dir / "examples.jsonl", self.cfg.data.tasks)
        if not examples:
            raise ValueError(f"no examples for tasks {self.cfg.data.tasks}")
        o = self.cfg.optim
        world = acc.num_processes
        accum = max(1, o.batch_size // (o.micro_batch_size * world))
        n_micro = len(micro_batches(len(examples), o.micro_batch_size, self.cfg.run.seed, 0, 0, world))
        steps_per_epoch = math.ceil(n_micro / accum)
        total = steps_per_epoch * o.epochs
        workers = feed_workers(self.cfg.data.prefetch_workers, acc.device)
        return DataBundle(
            examples=examples,
            frames_dir=data_dir / "frames",
            prompt_cache=PromptCache(max_items=self.cfg.data.prompt_cache_items),
            feed=BatchFeed(workers, self.cfg.data.prefetch_batches, pin_memory=acc.device.type == "cuda"),
            accum=accum,
            steps_per_epoch=steps_per_epoch,
            total_steps=min(total, o.max_steps) if o.max_steps else total,
        )

    def _setup_model(self, device: torch.device) -> ModelBundle:
        from engine.models import load_model

        mc = self.cfg.model
        # fp32 master weights everywhere; bf16 comes from autocast (lr 1e-6 updates vanish in bf16 weights).
        lm = load_model(mc.name, device=str(device), dtype="float32", attn_implementation=mc.attn_implementation)
        model = lm.model
        if mc.gradient_checkpointing == "on" or (mc.gradient_checkpointing == "auto" and device.type == "cuda"):
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
        if mc.freeze_vision:
            freeze_vision_encoder(model)
        ref_model_id = model_id(model, lm.source, torch.float32)  # the weights' identity, whatever the kernels
        set_vision_attention(model, mc.vision_attention)  # a no-op for a model without a Qwen2-VL-style tower
        if mc.lora:
            model = self._wrap_lora(model)
        return ModelBundle(lm, model, ref_model_id)

    def _wrap_lora(self, model: Any) -> Any:
        from peft import LoraConfig, get_peft_model

        mc = self.cfg.model
        self._seed(1)  # LoRA's A init draws from the torch RNG: make it part of the run seed
        config = LoraConfig(
            r=mc.lora_r, lora_alpha=mc.lora_alpha, lora_dropout=mc.lora_dropout, target_modules=mc.lora_targets
        )
        return get_peft_model(model, config)

    def _setup_reference(self, acc: Accelerator, data: DataBundle, models: ModelBundle) -> Reference:
        """cached: fill the cache now, with the policy before it moves; resident: keep a frozen copy; sft: none."""
        if not needs_reference(self.cfg.loss):
            return Reference()
        if self.cfg.run.reference == "cached":
            return Reference(cache=self._fill_ref_cache(acc, data, models))
        if self.cfg.model.lora:  # the same model with adapters off
            return Reference()
        return Reference(model=copy.deepcopy(models.model).eval().requires_grad_(False))

    def _fill_ref_cache(self, acc: Accelerator, data: DataBundle, models: ModelBundle) -> RefCache:
        """One no-grad pass over every sequence not yet cached (sharded over processes)."""
        root = Path(self.cfg.run.ref_cache_dir or Path(self.cfg.run.output_dir) / "ref-cache")
        cache = RefCache(root, models.ref_model_id)
        unique = {seq.key(): seq for example in data.examples for seq in example.seqs}
        todo = [k for k in unique if k not in cache.values]
        mine = todo[acc.process_index :: acc.num_processes]
        values = self._ref_pass(acc, data, models, [unique[k] for k in mine], mine)
        gathered = _gather_dicts(acc, values)
        cache.update(gathered)
        if acc.is_main_process and gathered:
            cache.save()
        acc.wait_for_everyone()
        return cache

    @torch.no_grad()
    def _ref_pass(
        self, acc: Accelerator, data: DataBundle, models: ModelBundle, seqs: list[TrainSeq], keys: list[str]
    ) -> dict[str, float]:
        """log pi_ref of `seqs`: the policy before any step (with LoRA: adapters off), in chunks."""
        model = models.model.eval()
        out: dict[str, float] = {}
        chunk = max(1, self.cfg.optim.micro_batch_size * 4)
        starts = list(range(0, len(seqs), chunk))
        jobs = [(("ref", i), lambda i=i: self._encode_seqs(seqs[i : i + chunk])) for i in starts]
        reference = model.disable_adapter() if self.cfg.model.lora else contextlib.nullcontext()
        with reference, acc.autocast():
            for n, (key, thunk) in enumerate(jobs):
                data.feed.prefetch(jobs[n + 1 :])
                batch = data.feed.take(key, thunk)
                logps = self._forward(model, batch).float().cpu().tolist()
                out.update(zip(keys[key[1] : key[1] + chunk], logps, strict=True))
                self.ref_forwards += 1
        return out

    def _encode_seqs(self, seqs: list[TrainSeq]) -> dict[str, Any]:
        """The log-prob batch of `seqs` (CPU; runs in a feed worker)."""
        d = self.data
        return encode(self.models.lm, seqs, d.frames_dir, cache=d.prompt_cache, multiple=self.cfg.data.pad_to_multiple)

    def _encode_examples(self, examples: list[Example]) -> tuple[FlatBatch, dict[str, Any], torch.Tensor]:
        """A micro-batch: its flat sequences and pairs, the encoded batch and each row's response tokens."""
        flat = flatten(examples)
        batch = self._encode_seqs(flat.seqs)
        return flat, batch, token_counts(batch)

    def _forward(self, model: Any, batch: dict[str, Any]) -> torch.Tensor:
        """(S,) summed response log-probs: model.logps=chunked scores the LM head in tiles (training.logps)."""
        mc = self.cfg.model
        return forward_logps(
            model, batch, self.accelerator.device, chunked=mc.logps == "chunked", share_prefix=mc.share_prefix
        )

    def _setup_optimizer(self, acc: Accelerator, model: Any, total_steps: int) -> tuple[Any, Optim]:
        """AdamW + schedule over the trainable parameters; returns (the prepared model, the optimizer)."""
        from transformers import get_scheduler

        o = self.cfg.optim
        params = [p for p in model.parameters() if p.requires_grad]
        beta1, beta2 = o.betas
        optimizer = torch.optim.AdamW(params, lr=o.lr, betas=(beta1, beta2), weight_decay=o.weight_decay)
        name = "constant_with_warmup" if o.scheduler == "constant" else o.scheduler
        scheduler = get_scheduler(
            name, optimizer, num_warmup_steps=int(o.warmup_ratio * total_steps), num_training_steps=total_steps
        )
        model, optimizer, scheduler = acc.prepare(model, optimizer, scheduler)
        return model, Optim(optimizer, scheduler)

    def setup(self) -> None:
        from training.metrics import MetricsSink

        self.accelerator = acc = self._setup_accelerator()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if acc.is_main_process:
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        self._seed()
        self.data = self._setup_data(acc)
        self.models = models = self._setup_model(acc.device)  # the feed's encoder reads models.lm from here on
        self.reference = self._setup_reference(acc, self.data, models)
        if self.cfg.model.compile == "blocks":  # after the reference copy: it stays eager
            compile_blocks(models.model, self.cfg.model.compile_backend, acc.device)
        prepared, self.optim = self._setup_optimizer(acc, models.model, self.data.total_steps)
        self.models = replace(models, model=prepared)
        if self.resume:
            self._load_latest()
        self.sink = MetricsSink(self.run_dir, self.cfg, self.db_url, self.run_id, enabled=acc.is_main_process)

    # ------------------------------------------------------------------ the loop

    def _ref_logps(self, flat: FlatBatch, batch: dict[str, Any]) -> torch.Tensor | None:
        if not needs_reference(self.cfg.loss):
            return None
        if self.reference.cache is not None:
            return self.reference.cache.lookup(flat.keys).to(self.accelerator.device)
        self.ref_forwards += 1
        with torch.no_grad():
            if self.reference.model is not None:
                return self._forward(self.reference.model, batch)
            with self.accelerator.unwrap_model(self.models.model).disable_adapter():
                return self._forward(self.models.model, batch)

    def _gather_sum(self, value: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(value, reduction="sum") if self.accelerator.num_processes > 1 else value

    def _micro_step(self, encoded: tuple, n_step_examples: int) -> tuple[dict[str, torch.Tensor], int]:
        """Forward + backward of one encoded micro-batch (`_encode_examples`); returns its metrics and how
        many sequences it scored."""
        flat, batch, tokens = encoded
        with self.accelerator.autocast():
            ref = self._ref_logps(flat, batch)
            policy = self._forward(self.models.model, batch)  # (S,) one forward
        out = objective(self.cfg.loss, policy, ref, flat, tokens, self._gather_sum)
        # Sum / examples-in-step: the accumulated gradient is that of the step's mean example loss.
        self.accelerator.backward(out.losses.sum() / n_step_examples)
        return out.metrics, len(flat.seqs)

    def _jobs(self, step: int) -> list[tuple[tuple[int, int], Any]]:
        """Step `step`'s micro-batches as feed jobs: ((step, k), encode thunk)."""
        if step >= self.data.total_steps:
            return []
        examples = self.data.examples
        chunks = self._step_batches(step)
        return [((step, k), lambda c=c: self._encode_examples([examples[j] for j in c])) for k, c in enumerate(chunks)]

    def _step_batches(self, step: int) -> list[list[int]]:
        """The micro-batches (example indices) of global optimizer step `step` on this process."""
        o, d = self.cfg.optim, self.data
        epoch, k = divmod(step, d.steps_per_epoch)
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        chunks = micro_batches(len(d.examples), o.micro_batch_size, self.cfg.run.seed, epoch, rank, world)
        return chunks[k * d.accum : (k + 1) * d.accum]

    def _optimizer_step(self, step: int) -> dict[str, float]:
        model, optim = self.models.model, self.optim
        model.train()
        t0 = time.perf_counter()
        chunks = self._step_batches(step)
        n = sum(len(c) for c in chunks)
        sums: dict[str, torch.Tensor] = {}
        weights: dict[str, int] = {}
        n_seqs = 0
        jobs = self._jobs(step) + self._jobs(step + 1)  # this step's micro-batches, then the next step's
        for i, chunk in enumerate(chunks):
            self.data.feed.prefetch(jobs[i + 1 :])  # workers encode ahead while this micro-batch runs
            encoded = self.data.feed.take(*jobs[i])
            sync = i == len(chunks) - 1
            ctx = contextlib.nullcontext() if sync else self.accelerator.no_sync(model)
            with ctx:
                metrics, seqs = self._micro_step(encoded, n)
            n_seqs += seqs
            for k, v in metrics.items():  # example-weighted mean over the micro-batches that have the term
                sums[k] = sums.get(k, 0.0) + v.detach().float() * len(chunk)
                weights[k] = weights.get(k, 0) + len(chunk)
        grad_norm = self._clip()
        optim.optimizer.step()
        optim.scheduler.step()
        optim.optimizer.zero_grad(set_to_none=True)
        # One device sync for all metrics of the step.
        means = torch.stack([sums[k] / weights[k] for k in sums]).cpu().tolist() if sums else []
        values = dict(zip(sums, means, strict=True))
        values["sequences"] = float(n_seqs)
        values.update(lr=optim.scheduler.get_last_lr()[0], grad_norm=grad_norm, step_time=time.perf_counter() - t0)
        values["epoch"] = (step + 1) / self.data.steps_per_epoch
        return values

    def _clip(self) -> float:
        max_norm = self.cfg.optim.max_grad_norm
        if max_norm is None:
            return float("nan")
        return float(self.accelerator.clip_grad_norm_(self.models.model.parameters(), max_norm))

    def _install_signals(self) -> dict:
        def handler(signum, _frame):
            self.stop_signal = signal.Signals(signum).name

        previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread (e.g. a test runner thread)
                previous[sig] = signal.signal(sig, handler)
        return previous

    def train(self) -> TrainResult:
        # Handlers first: a SIGTERM during setup (data, reference pass) is honoured before step 1.
        previous = self._install_signals()
        try:
            self.setup()
            return self._loop()
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
            if hasattr(self, "data"):
                self.data.feed.close()
            if hasattr(self, "sink"):
                self.sink.close()

    def _loop(self) -> TrainResult:
        total = self.data.total_steps
        self.sink.started(total)
        bar = self._progress_bar()
        checkpoint = None
        while self.step < total:
            if self.stop_signal:  # asked to stop during setup or a checkpoint
                return self._result("cancelled", self.save_checkpoint())
            values = self._optimizer_step(self.step)
            self.step += 1
            self.history.append(values)
            if self.step % self.cfg.run.log_every == 0 or self.step == total:
                self.sink.log(self.step, values, total)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{values['loss']:.4f}")
            if self.step % self.cfg.run.checkpoint_every == 0 or self.step == total:
                checkpoint = self.save_checkpoint()
            if self.stop_signal:
                checkpoint = checkpoint if self._saved_at == self.step else self.save_checkpoint()
                return self._result("cancelled", checkpoint)
        if checkpoint is None and self._saved_at == self.step and self._loaded is not None:
            checkpoint = self._loaded  # resumed at its last step: saving again would make it "another model"
        return self._result("finished", checkpoint or self.save_checkpoint())

    def _progress_bar(self):
        if not (self.accelerator.is_main_process and self.cfg.run.progress_bar):
            return None
        from tqdm.auto import tqdm

        # Named after the run ("sft", "smollm2-dpo", ...): every loop stage used to read "hdpo".
        desc = self.cfg.run.name or "train"
        return tqdm(total=self.data.total_steps, initial=self.step, desc=desc, dynamic_ncols=True)

    def _result(self, status: str, checkpoint: Path | None) -> TrainResult:
        self.sink.finished(status, self.step, str(checkpoint) if checkpoint else None)
        return TrainResult(
            status,
            self.step,
            str(self.run_dir),
            str(checkpoint) if checkpoint else None,
            self.history,
            self.ref_forwards,
        )

    # ------------------------------------------------------------------ checkpoints

    def _train_state(self) -> TrainState:
        model = self.accelerator.unwrap_model(self.models.model)
        return TrainState(model, self.optim.optimizer, self.optim.scheduler, self.models.lm.processor)

    def save_checkpoint(self) -> Path:
        info = {
            "total_steps": self.data.total_steps,
            "config_fingerprint": self.cfg.fingerprint(),
            "lora": self.cfg.model.lora,
            # A folder base as an absolute path: a relative one read back from the checkpoint resolved wrongly.
            "base_model": _recorded_model(self.cfg.model.name),
        }
        folder = self.run_dir / "checkpoints"
        path = save_checkpoint(
            folder, self.step, self._train_state(), self.accelerator, info, self.cfg.run.keep_checkpoints
        )
        self._saved_at = self.step
        return path

    def _load_latest(self) -> None:
        path = latest_checkpoint(self.run_dir / "checkpoints")
        if path is not None:
            self.step = load_checkpoint(path, self._train_state(), self.accelerator.process_index)
            self._saved_at, self._loaded = self.step, path  # a finished run resumed returns it untouched


def _gather_dicts(acc: Accelerator, values: dict[str, float]) -> dict[str, float]:
    """Every process's dict merged (on every process)."""
    if acc.num_processes == 1:
        return values
    from accelerate.utils import gather_object

    merged: dict[str, float] = {}
    for part in gather_object([values]):
        merged.update(part)
    return merged


def _recorded_model(name: str) -> str:
    """What a checkpoint records as its base: a preset name as is, an existing folder as its absolute path."""
    path = Path(name)
    return str(path.resolve()) if not path.is_absolute() and path.is_dir() else name
