"""GPU check: a bf16 HDPO-style training step of a ~2B-parameter random-weight Qwen2.5-VL-style model
(config built in code, no downloads) with gradient checkpointing -> tokens/s, peak memory, MFU; then the
tiny-cpu config through the real trainer on the same device. Prints one JSON object.

    python bench/gpu_check.py            # on a CUDA host (H100 / H200); < 5 minutes
    python bench/gpu_check.py --tiny     # a toy-sized model on CPU: what the test suite runs

Needs only torch, transformers, accelerate (and peft if --lora): no trl, gradio or spaCy. Training
examples for the trainer part are written directly (random frames, fixed text), not via the spaCy
augmenters or a video decoder.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PEAK_BF16_FLOPS = 989e12  # H100 / H200 SXM dense bf16
VIDEO_PAD, VISION_START, VISION_END = 151656, 151652, 151653


def model_config(tiny: bool):
    from transformers import Qwen2_5_VLConfig

    if tiny:
        text = dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=151936,
        )
        vision = dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, fullatt_block_indexes=[1]
        )
        mrope = [2, 3, 3]  # head_dim 16
    else:  # Qwen2.5-VL-3B text width with 24 layers + an 8-block vision tower: ~2.3 B parameters
        text = dict(
            hidden_size=2048,
            intermediate_size=11008,
            num_hidden_layers=24,
            num_attention_heads=16,
            num_key_value_heads=2,
            vocab_size=151936,
        )
        vision = dict(
            depth=8,
            hidden_size=1280,
            intermediate_size=3420,
            num_heads=16,
            out_hidden_size=2048,
            fullatt_block_indexes=[3, 7],
        )
        mrope = [16, 24, 24]  # head_dim 128
    text.update(
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope},
    )
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        video_token_id=VIDEO_PAD,
        vision_start_token_id=VISION_START,
        vision_end_token_id=VISION_END,
        image_token_id=151655,
        tie_word_embeddings=True,
    )


def synthetic_batch(rows: int, grid: tuple[int, int, int], text_len: int, resp_len: int, device):
    """rows x [text | <vs> video tokens <ve> | text | response]; pixel patches (rows * t*h*w, 1176)."""
    import torch

    t, h, w = grid
    n_video = t * h * w // 4  # 2x2 spatial merge
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 150000, (rows, text_len + n_video + 2 + resp_len), generator=g)
    ids[:, 8] = VISION_START
    ids[:, 9 : 9 + n_video] = VIDEO_PAD
    ids[:, 9 + n_video] = VISION_END
    labels = torch.full_like(ids, -100)
    labels[:, -resp_len:] = ids[:, -resp_len:]
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": labels,
        "pixel_values_videos": torch.randn(rows * t * h * w, 3 * 2 * 14 * 14, generator=g),
        "video_grid_thw": torch.tensor([[t, h, w]] * rows),
        "keep": resp_len + 1,
    }
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def _params(model) -> tuple[int, int]:
    vision = sum(p.numel() for n, p in model.named_parameters() if ".visual." in f".{n}")
    return sum(p.numel() for p in model.parameters()), vision


def step_benchmark(tiny: bool, steps: int, rows: int, master_fp32: bool = False, freeze_vision: bool = False) -> dict:
    """One DPO-style step, timed. master_fp32=True is the trainer's own path: fp32 weights and
    optimizer states, bf16 autocast for the forward/backward (lr 1e-6 updates vanish in bf16 weights).
    master_fp32=False keeps bf16 weights: the throughput ceiling."""
    import contextlib

    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from training.logps import forward_logps
    from training.losses import dpo_loss

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda and not master_fp32 else torch.float32
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda and master_fp32 else contextlib.nullcontext()
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(model_config(tiny)).to(dtype)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    model.train()
    if freeze_vision:
        from training.trainer import freeze_vision_encoder

        freeze_vision_encoder(model)
    total, vision = _params(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    grid = (2, 8, 8) if tiny else (8, 28, 28)  # 16 frames at 392^2 -> 8*28*28/4 = 1568 video tokens
    text_len, resp_len = (16, 16) if tiny else (256, 256)
    batch = synthetic_batch(rows, grid, text_len, resp_len, device)
    tokens = batch["input_ids"].numel()
    patches = batch["pixel_values_videos"].shape[0]

    def one_step():
        with autocast:
            logps = forward_logps(model, dict(batch), device)  # (rows,): [chosen..., rejected...]
        chosen, rejected = logps.chunk(2)
        loss = dpo_loss(chosen, rejected, chosen.detach(), rejected.detach()).losses.mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    one_step()  # warm-up (allocations, kernels)
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        one_step()
    if cuda:
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    # Model FLOPs (no recompute): 6 N per token for the LM, 6 N_vision per patch for the vision tower.
    flops = 6 * (total - vision) * tokens + 6 * vision * patches
    return {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "dtype": str(dtype),
        "params_total": total,
        "params_vision": vision,
        "rows": rows,
        "tokens_per_step": tokens,
        "patches_per_step": patches,
        "step_time_s": dt,
        "tokens_per_s": tokens / dt,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "model_tflops_per_s": flops / dt / 1e12,
        "mfu": flops / dt / PEAK_BF16_FLOPS if cuda else None,
        "gradient_checkpointing": True,
        "weights": "fp32 master + bf16 autocast" if master_fp32 else str(dtype),
        "vision_encoder": "frozen" if freeze_vision else "trained",
    }


def write_tiny_examples(folder: Path, n: int = 4) -> Path:
    """A materialised examples.jsonl (every HDPO term) with random frames; no spaCy, no decoder."""
    import numpy as np

    from training.data import Example, FrameStore, TrainSeq

    store = FrameStore(folder / "frames", 4, 56)
    rng = np.random.default_rng(0)
    clean = store.put(rng.integers(0, 255, (4, 56, 56, 3), dtype=np.uint8))
    noisy = store.put(rng.integers(0, 255, (4, 56, 56, 3), dtype=np.uint8))
    meta = {
        "path": "synthetic",
        "fps": 8.0,
        "duration_s": 0.5,
        "width": 56,
        "height": 56,
        "total_frames": 4,
        "sampled_indices": [0, 1, 2, 3],
    }
    lines = []
    for i in range(n):
        y, task = f"a red car drives left number {i}", 1 + i % 3
        video = (clean, meta) if task != 3 else (None, None)
        seqs = [
            TrainSeq(task, y, "a car" if task > 1 else None, *video),
            TrainSeq(task, "the the the", "a car" if task > 1 else None, *video),
            TrainSeq(task, y.replace("red", "blue"), "a car" if task > 1 else None, *video),
        ]
        pairs = [("dpo", 0, 1), ("response_hallucination", 0, 2)]
        if task != 3:
            seqs.append(TrainSeq(task, y, "a car" if task > 1 else None, noisy, meta))
            pairs.append(("input_hallucination", 0, 3))
        else:
            seqs += [TrainSeq(1, y, None, clean, meta), TrainSeq(2, y, "a car", clean, meta)]
            pairs += [("task_hallucination", 0, 3), ("task_hallucination", 0, 4)]
        lines.append(Example(id=f"ex{i}", task=task, seqs=seqs, pairs=pairs).to_json())
    path = folder / "examples.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def trainer_run(out: Path) -> dict:
    import torch

    from training.config import load_config
    from training.trainer import Trainer

    examples = write_tiny_examples(out / "data")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = load_config(
        ROOT / "configs" / "tiny-cpu.yaml",
        {
            "data.path": str(examples),
            "run.output_dir": str(out),
            "model.device": device,
            "model.precision": "auto",
            "model.gradient_checkpointing": "auto",
            "run.tensorboard": False,
            "optim.max_steps": 2,
        },
    )
    t0 = time.perf_counter()
    result = Trainer(cfg, out / "run").train()
    return {
        "status": result.status,
        "steps": result.step,
        "seconds": time.perf_counter() - t0,
        "device": device,
        "final_loss": result.metrics[-1]["loss"],
        "checkpoint": result.checkpoint,
    }


def _free_cuda() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _section(name: str, fn, report: dict) -> None:
    try:
        report[name] = fn()
    except Exception as exc:  # report every section; one failing must not hide the others
        report[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="toy-sized model (CPU check of this script)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 5; 1 with --tiny)")
    p.add_argument("--rows", type=int, default=None, help="sequences per step (default 8; 2 with --tiny)")
    args = p.parse_args(argv)
    steps = args.steps or (1 if args.tiny else 5)
    rows = args.rows or (2 if args.tiny else 8)
    report: dict = {"tiny": args.tiny}
    _section("step", lambda: step_benchmark(args.tiny, steps, rows), report)
    _free_cuda()
    _section("step_fp32_master", lambda: step_benchmark(args.tiny, steps, rows, master_fp32=True), report)
    _free_cuda()
    frozen = lambda: step_benchmark(args.tiny, steps, rows, master_fp32=True, freeze_vision=True)  # noqa: E731
    _section("step_fp32_master_frozen_vision", frozen, report)
    _free_cuda()
    with tempfile.TemporaryDirectory() as tmp:
        _section("trainer", lambda: trainer_run(Path(tmp)), report)
    print(json.dumps(report, indent=2, default=str))
    return 0 if all("error" not in v for v in report.values() if isinstance(v, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
