"""The HDPO trainer: an explicit loop over pre-materialised examples (paper 4.1 defaults in configs/).

setup: Accelerator -> data (materialise once) -> policy (+ LoRA) -> reference cache (one no-grad pass
       with the policy before it moves, or a resident copy) -> AdamW + schedule -> resume state.
train: for each optimizer step, `accum` micro-batches; each micro-batch is ONE forward over all its
       sequences (training.logps), the reference log-probs come from the cache, losses from
       training.losses.hdpo; then clip, step, log, maybe checkpoint. SIGTERM / SIGINT finish the current
       step, save a checkpoint and return.

Run folder: config.yaml, data/, checkpoints/step-N/ (model/, trainer_state.pt, state.json),
metrics.jsonl, tb/, train.log (written by the job runner).
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from training.config import TrainConfig
from training.data import Example, load_examples, materialise, micro_batches
from training.logps import FlatBatch, PromptCache, encode, flatten, forward_logps
from training.losses import hdpo
from training.refcache import RefCache, model_id

STATE_FILE = "trainer_state.pt"


@dataclass
class TrainResult:
    status: str
    """finished or cancelled."""
    step: int
    run_dir: str
    checkpoint: str | None
    metrics: list[dict[str, float]] = field(default_factory=list)
    ref_forwards: int = 0
    """Reference-model forwards (micro-batches): the cache pass plus any resident-mode forwards."""


def freeze_vision_encoder(model: Any) -> int:
    """requires_grad=False on a VLM's vision encoder except its merger (the projector into the LM).

    Returns the number of frozen parameters (0 for a text-only model). Pixels never need gradients,
    so autograd then skips the whole tower's backward."""
    visual = getattr(getattr(model, "model", model), "visual", None) or getattr(model, "visual", None)
    if visual is None:
        return 0
    frozen = 0
    for name, p in visual.named_parameters():
        if not name.startswith("merger."):
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


class Trainer:
    """One run. `Trainer(cfg, run_dir, export_path).train()`; a test can call it with a tiny model."""

    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: str | Path,
        export_path: str | Path | None = None,
        db_url: str | None = None,
        run_id: int | None = None,
        resume: bool = False,
        augmenters: Any = None,
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

    # ------------------------------------------------------------------ setup

    def _setup_accelerator(self) -> None:
        from accelerate import Accelerator

        mc = self.cfg.model
        cuda = torch.cuda.is_available() and (mc.device or "cuda").startswith("cuda")
        mixed = "bf16" if (mc.precision == "bf16" or (mc.precision == "auto" and cuda)) else "no"
        self.accelerator = Accelerator(mixed_precision=mixed, cpu=not cuda)
        self.device = self.accelerator.device
        self.is_main = self.accelerator.is_main_process

    def _seed(self, offset: int = 0) -> None:
        seed = self.cfg.run.seed + offset
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _setup_data(self) -> None:
        if not self.export_path:
            raise ValueError("no training data: set data.path to an annotations export, or pass --db to export one")
        data_dir = self.run_dir / "data"
        if Path(self.export_path).name == "examples.jsonl":  # already materialised (frames/ beside it)
            data_dir = Path(self.export_path).parent
        elif self.is_main:
            materialise(self.export_path, data_dir, self.cfg.data, self.cfg.loss, self.cfg.run.seed, self.augmenters)
        self.accelerator.wait_for_everyone()
        self.frames_dir = data_dir / "frames"
        self.prompt_cache = PromptCache(max_items=self.cfg.data.prompt_cache_items)
        self.examples: list[Example] = load_examples(data_dir / "examples.jsonl", self.cfg.data.tasks)
        if not self.examples:
            raise ValueError(f"no examples for tasks {self.cfg.data.tasks}")
        o = self.cfg.optim
        world = self.accelerator.num_processes
        self.accum = max(1, o.batch_size // (o.micro_batch_size * world))
        n_micro = len(micro_batches(len(self.examples), o.micro_batch_size, self.cfg.run.seed, 0, 0, world))
        self.steps_per_epoch = math.ceil(n_micro / self.accum)
        total = self.steps_per_epoch * o.epochs
        self.total_steps = min(total, o.max_steps) if o.max_steps else total

    def _setup_model(self) -> None:
        from engine.models import load_model

        mc = self.cfg.model
        # fp32 master weights everywhere; bf16 comes from autocast (lr 1e-6 updates vanish in bf16 weights).
        self.lm = load_model(
            mc.name, device=str(self.device), dtype="float32", attn_implementation=mc.attn_implementation
        )
        model = self.lm.model
        cuda = self.device.type == "cuda"
        if mc.gradient_checkpointing == "on" or (mc.gradient_checkpointing == "auto" and cuda):
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
        if mc.freeze_vision:
            freeze_vision_encoder(model)
        self.ref_model_id = model_id(model, self.lm.source, torch.float32)
        if mc.lora:
            model = self._wrap_lora(model)
        self.model = model

    def _wrap_lora(self, model: Any) -> Any:
        from peft import LoraConfig, get_peft_model

        mc = self.cfg.model
        self._seed(1)  # LoRA's A init draws from the torch RNG: make it part of the run seed
        config = LoraConfig(
            r=mc.lora_r, lora_alpha=mc.lora_alpha, lora_dropout=mc.lora_dropout, target_modules=mc.lora_targets
        )
        return get_peft_model(model, config)

    def _reference_context(self):
        """The reference is the policy before training; with LoRA, the base with adapters off."""
        if self.cfg.model.lora:
            return self.model.disable_adapter()
        return contextlib.nullcontext()

    def _fill_ref_cache(self) -> None:
        """One no-grad pass over every sequence not yet cached (sharded over processes)."""
        root = Path(self.cfg.run.ref_cache_dir or Path(self.cfg.run.output_dir) / "ref-cache")
        self.ref_cache = RefCache(root, self.ref_model_id)
        keys, seqs = self._all_sequences()
        todo = [i for i, k in enumerate(keys) if k not in self.ref_cache.values]
        mine = todo[self.accelerator.process_index :: self.accelerator.num_processes]
        values = self._ref_pass([seqs[i] for i in mine], [keys[i] for i in mine])
        gathered = self._gather_dicts(values)
        self.ref_cache.update(gathered)
        if self.is_main and gathered:
            self.ref_cache.save()
        self.accelerator.wait_for_everyone()

    def _all_sequences(self):
        unique: dict[str, Any] = {}
        for example in self.examples:
            for seq in example.seqs:
                unique.setdefault(seq.key(), seq)
        return list(unique), list(unique.values())

    @torch.no_grad()
    def _ref_pass(self, seqs: list, keys: list[str]) -> dict[str, float]:
        self.model.eval()
        out: dict[str, float] = {}
        chunk = max(1, self.cfg.optim.micro_batch_size * 4)
        with self._reference_context(), self.accelerator.autocast():
            for i in range(0, len(seqs), chunk):
                batch = encode(self.lm, seqs[i : i + chunk], self.frames_dir, cache=self.prompt_cache)
                logps = forward_logps(self.model, batch, self.device).float().cpu().tolist()
                out.update(zip(keys[i : i + chunk], logps, strict=True))
                self.ref_forwards += 1
        return out

    def _gather_dicts(self, values: dict[str, float]) -> dict[str, float]:
        if self.accelerator.num_processes == 1:
            return values
        from accelerate.utils import gather_object

        merged: dict[str, float] = {}
        for part in gather_object([values]):
            merged.update(part)
        return merged

    def _setup_resident_reference(self) -> None:
        self.ref_model = None
        if not self.cfg.model.lora:  # full FT: a frozen copy; LoRA: the same model, adapters off
            self.ref_model = copy.deepcopy(self.model).eval().requires_grad_(False)

    def _setup_optimizer(self) -> None:
        from transformers import get_scheduler

        o = self.cfg.optim
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        warmup = int(o.warmup_ratio * self.total_steps)
        name = "constant_with_warmup" if o.scheduler == "constant" else o.scheduler
        self.scheduler = get_scheduler(
            name, self.optimizer, num_warmup_steps=warmup, num_training_steps=self.total_steps
        )
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(
            self.model, self.optimizer, self.scheduler
        )

    def setup(self) -> None:
        self._setup_accelerator()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.is_main:
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        self._seed()
        self._setup_data()
        self._setup_model()
        if self.cfg.run.reference == "cached":
            self._fill_ref_cache()
        else:
            self._setup_resident_reference()
        self._setup_optimizer()
        if self.resume:
            self._load_latest()
        from training.metrics import MetricsSink

        self.sink = MetricsSink(self.run_dir, self.cfg, self.db_url, self.run_id, enabled=self.is_main)

    # ------------------------------------------------------------------ the loop

    def _ref_logps(self, flat: FlatBatch, batch: dict[str, Any]) -> torch.Tensor:
        if self.cfg.run.reference == "cached":
            return self.ref_cache.lookup(flat.keys).to(self.device)
        self.ref_forwards += 1
        with torch.no_grad():
            if self.ref_model is not None:
                return forward_logps(self.ref_model, batch, self.device)
            with self.accelerator.unwrap_model(self.model).disable_adapter():
                return forward_logps(self.model, batch, self.device)

    def _micro_step(self, examples: list[Example], n_step_examples: int) -> dict[str, torch.Tensor]:
        flat = flatten(examples)
        batch = encode(self.lm, flat.seqs, self.frames_dir, cache=self.prompt_cache)
        lc = self.cfg.loss
        with self.accelerator.autocast():
            ref = self._ref_logps(flat, batch)
            policy = forward_logps(self.model, batch, self.device)  # (S,) one forward, all sequences
        out = hdpo(
            policy,
            ref,
            flat.pairs,
            flat.n_examples,
            weights=lc.weights,
            enabled=lc.enabled,
            beta=lc.beta,
            kind=lc.kind,
            anchor=flat.anchor,
            anchor_weight=lc.anchor_weight,
        )
        # Sum / examples-in-step: the accumulated gradient is that of the step's mean example loss.
        self.accelerator.backward(out.losses.sum() / n_step_examples)
        self._step_sequences += len(flat.seqs)
        return out.metrics

    def _step_batches(self, step: int) -> list[list[int]]:
        """The micro-batches (example indices) of global optimizer step `step` on this process."""
        o = self.cfg.optim
        epoch, k = divmod(step, self.steps_per_epoch)
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        chunks = micro_batches(len(self.examples), o.micro_batch_size, self.cfg.run.seed, epoch, rank, world)
        return chunks[k * self.accum : (k + 1) * self.accum]

    def _optimizer_step(self, step: int) -> dict[str, float]:
        self.model.train()
        t0 = time.perf_counter()
        chunks = self._step_batches(step)
        n = sum(len(c) for c in chunks)
        sums: dict[str, torch.Tensor] = {}
        weights: dict[str, int] = {}
        self._step_sequences = 0
        for i, chunk in enumerate(chunks):
            sync = i == len(chunks) - 1
            ctx = contextlib.nullcontext() if sync else self.accelerator.no_sync(self.model)
            with ctx:
                metrics = self._micro_step([self.examples[j] for j in chunk], n)
            for k, v in metrics.items():  # example-weighted mean over the micro-batches that have the term
                sums[k] = sums.get(k, 0.0) + v.detach().float() * len(chunk)
                weights[k] = weights.get(k, 0) + len(chunk)
        grad_norm = self._clip()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        # One device sync for all metrics of the step.
        means = torch.stack([sums[k] / weights[k] for k in sums]).cpu().tolist() if sums else []
        values = dict(zip(sums, means, strict=True))
        values["sequences"] = float(self._step_sequences)
        values.update(lr=self.scheduler.get_last_lr()[0], grad_norm=grad_norm, step_time=time.perf_counter() - t0)
        values["epoch"] = (step + 1) / self.steps_per_epoch
        return values

    def _clip(self) -> float:
        max_norm = self.cfg.optim.max_grad_norm
        if max_norm is None:
            return float("nan")
        return float(self.accelerator.clip_grad_norm_(self.model.parameters(), max_norm))

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
            if hasattr(self, "sink"):
                self.sink.close()

    def _loop(self) -> TrainResult:
        self.sink.started(self.total_steps)
        bar = self._progress_bar()
        checkpoint = None
        while self.step < self.total_steps:
            if self.stop_signal:  # asked to stop during setup or a checkpoint
                return self._result("cancelled", self.save_checkpoint())
            values = self._optimizer_step(self.step)
            self.step += 1
            self.history.append(values)
            if self.step % self.cfg.run.log_every == 0 or self.step == self.total_steps:
                self.sink.log(self.step, values, self.total_steps)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{values['loss']:.4f}")
            if self.step % self.cfg.run.checkpoint_every == 0 or self.step == self.total_steps:
                checkpoint = self.save_checkpoint()
            if self.stop_signal:
                checkpoint = checkpoint if self._saved_at == self.step else self.save_checkpoint()
                return self._result("cancelled", checkpoint)
        return self._result("finished", checkpoint or self.save_checkpoint())

    def _progress_bar(self):
        if not (self.is_main and self.cfg.run.progress_bar):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.total_steps, initial=self.step, desc="hdpo", dynamic_ncols=True)

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

    _saved_at = -1

    def save_checkpoint(self) -> Path:
        from training.checkpoint import save_checkpoint

        path = save_checkpoint(self, self.run_dir / "checkpoints", self.step)
        self._saved_at = self.step
        return path

    def _load_latest(self) -> None:
        from training.checkpoint import latest_checkpoint, load_checkpoint

        path = latest_checkpoint(self.run_dir / "checkpoints")
        if path is not None:
            load_checkpoint(self, path)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def prune(folder: Path, keep: int) -> None:
    steps = sorted(p for p in folder.glob("step-*") if p.is_dir())
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
