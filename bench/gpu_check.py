"""GPU check: an HDPO-style training step of a ~2.3B-parameter random-weight Qwen2.5-VL-style model
(config built in code, no downloads) with gradient checkpointing -> tokens/s, MFU, peak memory and the
share of step time in GPU kernels vs launches (torch.profiler), before and after each change; then the
tiny-cpu config through the real trainer on the same device. Prints one JSON object.

    python bench/gpu_check.py            # on a CUDA host (H100 / H200); ~5 minutes
    python bench/gpu_check.py --tiny     # a toy-sized model on CPU: what the test suite runs
    python bench/gpu_check.py --vision-attention blocks --logps chunked   # one variant only
    python bench/gpu_check.py --compile blocks   # + torch.compile of every decoder layer / vision block

Variants (each a `step[...]` section, same model, batch and optimizer): the vision tower's attention
`stock` (one SDPA call per window) or `blocks` (training.attention: one call per layer), and the log-probs
`full` (the (S, R, V) logits) or `chunked` (training.logps.label_logps). `checks` holds the max abs
differences between the variants' outputs on this device. Weights are fp32 masters under bf16 autocast
(the trainer's path) unless --weights bf16 (the throughput ceiling).

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


def _splits(n: int, size: int) -> list[int]:
    return [size] * (n // size) + ([n % size] if n % size else [])


def vision_block_lengths(vision, grid: list[int]) -> tuple[list[int], list[int]]:
    """Patch counts of one video's attention blocks: (a windowed layer's windows, a full layer's frames)."""
    t, h, w = grid
    m = vision.spatial_merge_size
    side = vision.window_size // m // vision.patch_size  # window side in merged tokens (4 for Qwen2.5-VL)
    windows = [a * b * m * m for a in _splits(h // m, side) for b in _splits(w // m, side)] * t
    return windows, [h * w] * t


def step_flops(model, batch: dict) -> float:
    """Model FLOPs of one step (backward = 2 x forward; checkpoint recompute not counted): 2 per matmul
    weight per token it touches (the LM head on the `keep` positions only, the vision merger on merged
    tokens), plus attention scores and values: the decoder's causal half, the vision tower's within blocks."""
    cfg = model.config
    text, vision = cfg.text_config, cfg.vision_config
    rows, seq = batch["input_ids"].shape
    patches = batch["pixel_values_videos"].shape[0]
    sizes = {n: p.numel() for n, p in model.named_parameters()}  # tied weights appear once
    merger = sum(v for n, v in sizes.items() if ".visual.merger." in f".{n}")
    tower = sum(v for n, v in sizes.items() if ".visual." in f".{n}") - merger  # patch embed + blocks
    head, embed = model.get_output_embeddings().weight, model.get_input_embeddings().weight
    lookup = 0 if embed is head else embed.numel()  # an untied input embedding is a lookup, not a matmul
    body = sum(sizes.values()) - tower - merger - head.numel() - lookup
    forward = 2 * (body * rows * seq + head.numel() * rows * batch["keep"] + tower * patches + merger * patches // 4)
    forward += text.num_hidden_layers * rows * 2 * seq * seq * text.hidden_size  # (QK^T + AV) x 1/2 causal
    blocks = [vision_block_lengths(vision, g) for g in batch["video_grid_thw"].tolist()]
    n_full = len(vision.fullatt_block_indexes)
    for layers, lengths in (
        (vision.depth - n_full, [n for b in blocks for n in b[0]]),
        (n_full, [n for b in blocks for n in b[1]]),
    ):
        forward += layers * 4 * vision.hidden_size * sum(n * n for n in lengths)
    return 3.0 * forward


LAUNCH_OPS = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx")
ATTENTION_OPS = ("aten::scaled_dot_product_attention", "torch_attn::_varlen_attn")


def profile_step(one_step, step_time: float, cuda: bool) -> dict:
    """One more step under torch.profiler: attention calls (forward ops, checkpoint recompute included),
    GPU kernel time and its share of the unprofiled step time, kernel launches and their CPU time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        one_step()
        if cuda:
            torch.cuda.synchronize()
    stats = prof.key_averages()
    launches = [e for e in stats if e.key in LAUNCH_OPS]
    kernel_s = sum(e.self_device_time_total for e in stats) / 1e6  # each kernel's own time, once
    return {
        "attention_calls": sum(e.count for e in stats if e.key in ATTENTION_OPS),
        "kernel_time_s": kernel_s if cuda else None,
        "kernel_share": kernel_s / step_time if cuda else None,
        "kernel_launches": sum(e.count for e in launches) if cuda else None,
        "launch_cpu_s": sum(e.cpu_time_total for e in launches) / 1e6 if cuda else None,
    }


def build(tiny: bool, rows: int, weights: str = "fp32-master", freeze_vision: bool = False):
    """The model (gradient checkpointing on, train mode), its optimizer and the synthetic batch, on the
    device. weights: fp32-master (the trainer's path: bf16 autocast on CUDA) or bf16 (the ceiling)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda and weights == "bf16" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(model_config(tiny)).to(dtype)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    model.train()
    if freeze_vision:
        from training.trainer import freeze_vision_encoder

        freeze_vision_encoder(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    grid = (2, 8, 8) if tiny else (8, 28, 28)  # 16 frames at 392^2 -> 8*28*28/4 = 1568 video tokens
    text_len, resp_len = (16, 16) if tiny else (256, 256)
    return model, opt, synthetic_batch(rows, grid, text_len, resp_len, device)


def _autocast(model, batch):
    import contextlib

    import torch

    master = next(model.parameters()).dtype == torch.float32
    if batch["input_ids"].is_cuda and master:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def step_benchmark(model, opt, batch: dict, steps: int, vision_attention: str, logps: str) -> dict:
    """A DPO-style step with one vision-attention / log-prob variant, timed, then profiled."""
    import torch

    from training.attention import set_vision_attention
    from training.logps import forward_logps
    from training.losses import dpo_loss

    cuda = batch["input_ids"].is_cuda
    blocks = set_vision_attention(model, vision_attention)

    def one_step():
        with _autocast(model, batch):
            lp = forward_logps(model, dict(batch), batch["input_ids"].device, chunked=logps == "chunked")
        chosen, rejected = lp.chunk(2)  # (rows,): [chosen..., rejected...]
        loss = dpo_loss(chosen, rejected, chosen.detach(), rejected.detach()).losses.mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    if cuda:
        torch.cuda.synchronize()
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
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    total, vision = _params(model)
    tokens = batch["input_ids"].numel()
    flops = step_flops(model, batch)
    return {
        "vision_attention": vision_attention,
        "vision_attention_applied": blocks,
        "logps": logps,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "weights": "fp32 master + bf16 autocast"
        if cuda and next(model.parameters()).dtype == torch.float32
        else str(next(model.parameters()).dtype),
        "params_total": total,
        "params_vision": vision,
        "rows": batch["input_ids"].shape[0],
        "tokens_per_step": tokens,
        "patches_per_step": batch["pixel_values_videos"].shape[0],
        "step_time_s": dt,
        "tokens_per_s": tokens / dt,
        "peak_memory_gib": peak,
        "model_tflops_per_step": flops / 1e12,
        "model_tflops_per_s": flops / dt / 1e12,
        "mfu": flops / dt / PEAK_BF16_FLOPS if cuda else None,
        "gradient_checkpointing": True,
        "vision_encoder": "trained"
        if any(p.requires_grad for p in model.model.visual.blocks.parameters())
        else "frozen",
        **profile_step(one_step, dt, cuda),
    }


def equivalence_checks(model, batch: dict) -> dict:
    """Max abs differences between the variants on this device (no grad, the step's autocast): the
    vision tower's output (stock vs blocks) and the sequence log-probs (full vs chunked)."""
    import torch

    from training.attention import pick_kernel, set_vision_attention
    from training.logps import forward_logps

    device = batch["input_ids"].device
    visual = model.model.visual
    out = {}
    with torch.no_grad(), _autocast(model, batch):
        for mode in ("stock", "blocks"):
            set_vision_attention(model, mode)
            out[mode] = visual(batch["pixel_values_videos"], grid_thw=batch["video_grid_thw"]).pooler_output.float()
        full = forward_logps(model, dict(batch), device, chunked=False)
        chunked = forward_logps(model, dict(batch), device, chunked=True)
        probe = torch.empty(1, 1, 1, 1, device=device, dtype=torch.get_autocast_dtype(device.type))
        kernel = pick_kernel(probe if torch.is_autocast_enabled(device.type) else probe.float())
    return {
        "block_attention_kernel": kernel,
        "vision_max_abs_diff": float((out["stock"] - out["blocks"]).abs().max()),
        "vision_max_abs": float(out["stock"].abs().max()),
        "logps_max_abs_diff": float((full - chunked).abs().max()),
        "logps_max_abs": float(full.abs().max()),
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


def _variants(vision: str, logps: str) -> list[tuple[str, str]]:
    """(vision attention, log-probs) pairs: before (stock, full) first, after (blocks, chunked) last."""
    vs = ["stock", "blocks"] if vision == "both" else [vision]
    ls = ["full", "chunked"] if logps == "both" else [logps]
    return sorted(
        ((v, lp) for v in vs for lp in ls), key=lambda p: (p != ("stock", "full"), p == ("blocks", "chunked"))
    )


def summary(report: dict) -> dict:
    """After / before ratios (blocks + chunked vs stock + full) when both ran."""
    before, after = report.get("step[vision=stock,logps=full]"), report.get("step[vision=blocks,logps=chunked]")
    if not before or not after or "error" in before or "error" in after:
        return {}
    out = {"tokens_per_s_ratio": after["tokens_per_s"] / before["tokens_per_s"]}
    for key in ("peak_memory_gib", "mfu", "attention_calls", "kernel_share", "kernel_launches"):
        if before.get(key) and after.get(key) is not None:
            out[f"{key}_ratio"] = after[key] / before[key]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="toy-sized model (CPU check of this script)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per variant (default 3; 1 with --tiny)")
    p.add_argument("--rows", type=int, default=None, help="sequences per step (default 8; 2 with --tiny)")
    p.add_argument("--vision-attention", choices=("stock", "blocks", "both"), default="both")
    p.add_argument("--logps", choices=("full", "chunked", "both"), default="both")
    p.add_argument("--weights", choices=("fp32-master", "bf16"), default="fp32-master")
    p.add_argument("--frozen-vision", action="store_true", help="freeze the vision encoder (model.freeze_vision)")
    p.add_argument("--no-trainer", action="store_true", help="skip the real-trainer run")
    p.add_argument("--compile", choices=("off", "blocks"), default="off", help="model.compile (training.speed)")
    p.add_argument("--compile-backend", choices=("inductor", "aot_eager", "eager"), default="inductor")
    args = p.parse_args(argv)
    steps = args.steps or (1 if args.tiny else 3)
    rows = args.rows or (2 if args.tiny else 8)
    report: dict = {"tiny": args.tiny, "weights": args.weights, "frozen_vision": args.frozen_vision}
    built: dict = {}
    _section("model", lambda: _build_section(built, args, rows), report)
    if built:
        model, opt, batch = built["model"], built["opt"], built["batch"]
        for vision, logps in _variants(args.vision_attention, args.logps):
            run = lambda v=vision, lp=logps: step_benchmark(model, opt, batch, steps, v, lp)  # noqa: E731
            _section(f"step[vision={vision},logps={logps}]", run, report)
            _free_cuda()
        _section("checks", lambda: equivalence_checks(model, batch), report)
        report["summary"] = summary(report)
        built.clear()
        del model, opt, batch
    _free_cuda()
    if not args.no_trainer:
        with tempfile.TemporaryDirectory() as tmp:
            _section("trainer", lambda: trainer_run(Path(tmp)), report)
    print(json.dumps(report, indent=2, default=str))
    return 0 if all("error" not in v for v in report.values() if isinstance(v, dict)) else 1


def _build_section(built: dict, args, rows: int) -> dict:
    built["model"], built["opt"], built["batch"] = build(args.tiny, rows, args.weights, args.frozen_vision)
    total, vision = _params(built["model"])
    out = {"params_total": total, "params_vision": vision, "tokens_per_step": built["batch"]["input_ids"].numel()}
    if args.compile == "blocks":  # the trainer's model.compile=blocks (training.speed), once for every variant
        from training.speed import compile_blocks

        device = built["batch"]["input_ids"].device
        log = lambda line: print(line, file=sys.stderr)  # noqa: E731 - stdout is the JSON report
        out["compiled_blocks"] = compile_blocks(built["model"], args.compile_backend, device, log=log)
    return out


if __name__ == "__main__":
    sys.exit(main())
