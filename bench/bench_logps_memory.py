"""The log-prob step (LM head + label log-probs, forward and backward) with a real-sized vocabulary:
today's logits path (`F.linear` then engine.encoding.gather_logps on (S, keep, V)) against the chunked
one (training.logps.label_logps). Prints one JSON object with both ratios (chunked / logits path).

    .venv/bin/python bench/bench_logps_memory.py                 # V 151,936, hidden 1,536, 8 x 257
    .venv/bin/python bench/bench_logps_memory.py --repeats 3

Each measurement runs in its own process, alternating the two paths, so that a process's peak resident
memory (ru_maxrss) minus its resident memory just before the step is the step's peak: hidden states,
LM-head weight and labels are allocated (and touched) before that point, nothing big is freed after it.
Time is the wall time of forward + backward, medians over the repeats. fp32, as on the CPU trainer.
With --device cuda (a lent GPU) the peak is torch's max_memory_allocated above the inputs instead.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PAGE = 4096


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def measure(path: str, rows: int, keep: int, hidden: int, vocab: int, device: str = "cpu", seed: int = 0) -> dict:
    """One step of one path in this process: its wall time, peak memory above the inputs, results.
    On CUDA the peak is torch's max_memory_allocated above what the inputs hold."""
    import torch

    from engine.encoding import IGNORE_INDEX, gather_logps
    from training.logps import label_logps

    g = torch.Generator().manual_seed(seed)
    h = torch.empty(rows, keep, hidden).normal_(generator=g).requires_grad_()  # (S, keep, Hd)
    w = torch.empty(vocab, hidden).normal_(0.0, 0.02, generator=g).requires_grad_()  # (V, Hd), touched
    labels = torch.randint(0, vocab, (rows, keep), generator=g)
    labels[:, 0] = IGNORE_INDEX  # the position before the response: never a label
    upstream = torch.randn(rows, generator=g)  # dL/dlogp per sequence, as a DPO loss gives
    if device != "cpu":
        h, w = (t.detach().to(device).requires_grad_() for t in (h, w))
        labels, upstream = labels.to(device), upstream.to(device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    base_rss, base_peak = _rss_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    base_cuda = torch.cuda.memory_allocated() if device != "cpu" else 0
    t0 = time.perf_counter()
    if path == "logits":
        logps = gather_logps(torch.nn.functional.linear(h, w), labels)  # logits (S, keep, V)
    else:
        logps = label_logps(h, w, labels)
    (logps * upstream).sum().backward()
    if device != "cpu":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    if device != "cpu":
        peak = torch.cuda.max_memory_allocated() - base_cuda
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base_rss
    return {
        "path": path,
        "device": device,
        "seconds": seconds,
        "peak_bytes": peak,
        "setup_peak_above_base_bytes": max(0, base_peak - base_rss),  # ~0, else the peak is understated
        "logps": logps.detach().tolist(),
        "grad_hidden_norm": float(h.grad.norm()),
        "grad_weight_norm": float(w.grad.norm()),
    }


def _child(args, path: str) -> dict:
    cmd = [sys.executable, __file__, "--child", path, *_size_args(args)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{path} run failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout)


def _size_args(args) -> list[str]:
    sizes = ["--rows", str(args.rows), "--keep", str(args.keep), "--hidden", str(args.hidden)]
    return [*sizes, "--vocab", str(args.vocab), "--device", args.device]


def compare(runs: dict[str, list[dict]]) -> dict:
    full, chunked = runs["logits"], runs["chunked"]
    med = {p: {k: statistics.median(r[k] for r in rs) for k in ("seconds", "peak_bytes")} for p, rs in runs.items()}
    a, b = full[0], chunked[0]
    return {
        "peak_memory_ratio": med["chunked"]["peak_bytes"] / med["logits"]["peak_bytes"],
        "time_ratio": med["chunked"]["seconds"] / med["logits"]["seconds"],
        "logits_path": {"peak_gib": med["logits"]["peak_bytes"] / 2**30, "seconds": med["logits"]["seconds"]},
        "chunked": {"peak_gib": med["chunked"]["peak_bytes"] / 2**30, "seconds": med["chunked"]["seconds"]},
        "runs_seconds": {p: [round(r["seconds"], 2) for r in rs] for p, rs in runs.items()},
        "runs_peak_gib": {p: [round(r["peak_bytes"] / 2**30, 3) for r in rs] for p, rs in runs.items()},
        "max_abs_logp_diff": max(abs(x - y) for x, y in zip(a["logps"], b["logps"], strict=True)),
        "max_abs_logp": max(abs(x) for x in a["logps"]),
        "grad_norm_rel_diff": {
            k: abs(a[k] - b[k]) / a[k] for k in ("grad_hidden_norm", "grad_weight_norm") if a[k] > 0
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=8, help="sequences S in the micro-batch")
    p.add_argument("--keep", type=int, default=257, help="positions per sequence reaching the LM head (R_max + 1)")
    p.add_argument("--hidden", type=int, default=1536, help="LM hidden size")
    p.add_argument("--vocab", type=int, default=151936, help="vocabulary size (Qwen2.5: 151,936)")
    p.add_argument("--repeats", type=int, default=2, help="processes per path, alternating")
    p.add_argument("--device", default="cpu", help="cpu (peak RSS) or cuda (peak allocated by torch)")
    p.add_argument("--child", choices=("logits", "chunked"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.rows, args.keep, args.hidden, args.vocab, args.device)))
        return 0
    runs: dict[str, list[dict]] = {"logits": [], "chunked": []}
    for _ in range(args.repeats):
        for path in runs:
            runs[path].append(_child(args, path))
    report = {"config": vars(args) | {"scored_positions": args.rows * (args.keep - 1)}, **compare(runs)}
    report["config"].pop("child")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
