"""Training step benchmarks (issue 7). Each measurement runs in its own process (clean peak memory).

    python bench/bench_training_steps.py hdpo-vs-dpo [--model tiny-random-vlm] [--steps 6]
    python bench/bench_training_steps.py trl         [--model tiny-random-lm]  [--steps 10]
    python bench/bench_training_steps.py refcache    [--model tiny-random-lm]  [--steps 6] [--lora]
    python bench/bench_training_steps.py [all]

Prints one JSON line per measurement and the ratio against its baseline. "step_s" is the fastest timed
step after one warm-up step (the least disturbed on a shared machine; the median is printed beside it);
"peak_rss_mib" is the process's peak resident memory (CPU) and
"peak_cuda_mib" the CUDA peak allocation when on a GPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _peaks() -> dict:
    import torch

    out = {"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _export(folder: Path, tasks: tuple[int, ...], n_samples: int) -> Path:
    from tests.toy_data import write_export

    return write_export(folder, n_samples=n_samples, tasks=tasks)


def _our_steps(model: str, export: Path, out: Path, steps: int, over: dict) -> dict:
    """Time `steps` optimizer steps of our trainer (after one warm-up step)."""
    from tests.toy_data import fake_frames, fake_text
    from training.config import load_config
    from training.data import Augmenters
    from training.trainer import Trainer

    base = {
        "model.name": model,
        "model.precision": "fp32",
        "model.gradient_checkpointing": "off",
        "data.path": str(export),
        "data.num_frames": 4,
        "data.frame_size": 56,
        "optim.lr": 1e-4,
        "optim.batch_size": 4,
        "optim.micro_batch_size": 4,
        "optim.epochs": 1000,
        "optim.warmup_ratio": 0.0,
        "optim.scheduler": "constant",
        "run.output_dir": str(out),
        "run.tensorboard": False,
        "run.progress_bar": False,
    }
    trainer = Trainer(load_config({}, {**base, **over}), out / "run", augmenters=Augmenters(fake_text, fake_frames))
    trainer.setup()
    times, seqs = [], []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        values = trainer._optimizer_step(i)
        if i:  # step 0 is warm-up
            times.append(time.perf_counter() - t0)
            seqs.append(values["sequences"])
    per_seq = [t / n for t, n in zip(times, seqs, strict=True)]  # batches differ in size under HDPO
    return {
        "step_s": min(times),  # the machine is shared: the fastest step is the least disturbed one
        "median_step_s": statistics.median(times),
        "sequences_per_step": statistics.mean(seqs),
        "s_per_sequence": min(per_seq),
        "median_s_per_sequence": statistics.median(per_seq),
        **_peaks(),
    }


def measure_ours(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tasks = tuple(json.loads(args.tasks))
        export = _export(Path(tmp) / "exp", tasks, args.samples)
        return _our_steps(args.model, export, Path(tmp), args.steps, json.loads(args.over))


def measure_trl(args) -> dict:
    """TRL DPOTrainer on the same model, prompts (our chat-formatted Task-3 prompts), responses, batch."""
    import copy

    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from engine.encoding import prompt_text
    from engine.models import load_model
    from engine.tasks import Request
    from tests.toy_data import CHOSEN, REJECTED, SHORT

    lm = load_model(args.model)
    rows = []
    for i in range(64):
        prompt = prompt_text(lm, Request(3, SHORT[i % 3]))
        rows.append({"prompt": prompt, "chosen": CHOSEN[i % 3], "rejected": REJECTED[i % 6]})
    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t0)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = DPOConfig(
            output_dir=tmp,
            per_device_train_batch_size=4,
            gradient_accumulation_steps=1,
            learning_rate=1e-4,
            lr_scheduler_type="constant",
            max_steps=args.steps + 1,
            beta=0.1,
            logging_steps=1000,
            save_strategy="no",
            report_to=[],
            use_cpu=not torch.cuda.is_available(),
            bf16=False,
            fp16=False,
            max_length=None,
            dataloader_num_workers=0,
            seed=0,
            gradient_checkpointing=False,
            max_grad_norm=1.0,
        )
        trainer = DPOTrainer(
            model=lm.model,
            ref_model=copy.deepcopy(lm.model),
            args=cfg,
            train_dataset=Dataset.from_list(rows),
            processing_class=lm.tokenizer,
            callbacks=[Timer()],
        )
        trainer.train()
    step = min(times[1:])
    return {
        "step_s": step,
        "median_step_s": statistics.median(times[1:]),
        "sequences_per_step": 8,
        "s_per_sequence": step / 8,
        **_peaks(),
    }


def _child(kind: str, **kw) -> dict:
    args = [sys.executable, __file__, "_measure", "--kind", kind]
    for k, v in kw.items():
        args += [f"--{k}", v if isinstance(v, str) else json.dumps(v)]
    out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"{kind} failed: {out.stderr[-2000:]}")
    return json.loads(lines[-1])


def _print(name: str, result: dict) -> None:
    print(json.dumps({"measure": name, **result}))


def hdpo_vs_dpo(a) -> None:
    common = dict(model=a.model, steps=str(a.steps), tasks="[1, 2, 3]", samples="4")
    dpo = _child(
        "ours",
        over={
            "loss.response_hallucination": False,
            "loss.input_hallucination": False,
            "loss.task_hallucination": False,
        },
        **common,
    )
    hdpo = _child("ours", over={}, **common)
    _print("dpo", dpo)
    _print("hdpo", hdpo)
    _print("ratio hdpo/dpo per sequence (goal <= 1.1)", {"ratio": hdpo["s_per_sequence"] / dpo["s_per_sequence"]})


def trl(a) -> None:
    common = dict(model=a.model, steps=str(a.steps))
    ours = _child(
        "ours",
        over={
            "data.tasks": [3],
            "loss.response_hallucination": False,
            "loss.input_hallucination": False,
            "loss.task_hallucination": False,
            "run.reference": "resident",
            "data.num_rejected": 1,
        },
        tasks="[3]",
        samples="4",
        **common,
    )
    theirs = _child("trl", **common)
    _print("ours dpo-only (resident reference)", ours)
    _print("trl DPOTrainer", theirs)
    _print("ratio ours/trl step time (goal <= 0.85)", {"ratio": ours["step_s"] / theirs["step_s"]})


def refcache(a) -> None:
    for lora in [False, True] if a.lora is None else [a.lora]:
        common = dict(model=a.model, steps=str(a.steps), tasks="[3]", samples="4")
        over = {
            "loss.response_hallucination": False,
            "loss.input_hallucination": False,
            "loss.task_hallucination": False,
            "model.lora": lora,
            "data.tasks": [3],
            **json.loads(a.over),  # e.g. micro_batch_size 1 + checkpointing, so weights dominate memory
        }
        resident = _child("ours", over={**over, "run.reference": "resident"}, **common)
        cached = _child("ours", over={**over, "run.reference": "cached"}, **common)
        tag = "lora" if lora else "full"
        _print(f"{tag} resident reference", resident)
        _print(f"{tag} cached reference", cached)
        _print(
            f"{tag} ratio cached/resident (goal step <= 0.8, memory <= 0.85 full FT)",
            {
                "step_ratio": cached["step_s"] / resident["step_s"],
                "peak_rss_ratio": cached["peak_rss_mib"] / resident["peak_rss_mib"],
            },
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="?", default="all", choices=["hdpo-vs-dpo", "trl", "refcache", "all", "_measure"])
    p.add_argument("--model", default=None)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--lora", default=None, type=lambda s: s.lower() in ("1", "true", "yes"))
    p.add_argument("--kind", default=None)
    p.add_argument("--over", default="{}")
    p.add_argument("--tasks", default="[1, 2, 3]")
    p.add_argument("--samples", default="4")
    a = p.parse_args(argv)
    if a.what == "_measure":
        a.samples = int(a.samples)
        print(json.dumps(measure_ours(a) if a.kind == "ours" else measure_trl(a)))
        return 0
    if a.what in ("hdpo-vs-dpo", "all"):
        hdpo_vs_dpo(argparse.Namespace(**{**vars(a), "model": a.model or "tiny-random-vlm"}))
    if a.what in ("trl", "all"):
        trl(argparse.Namespace(**{**vars(a), "model": a.model or "tiny-random-lm"}))
    if a.what in ("refcache", "all"):
        refcache(argparse.Namespace(**{**vars(a), "model": a.model or "tiny-random-lm"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
