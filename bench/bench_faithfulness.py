"""Faithfulness of detailed prompts on a split of the tagged corpus: the Table-1-style results of issue 21.

    .venv/bin/python bench/bench_faithfulness.py --split test \\
        --model base=smollm2-135m --model sft=runs/smollm2/sft/checkpoints/step-000074/model \\
        --model dpo=runs/smollm2-dpo/train/checkpoints/step-000074/model \\
        --model hdpo=runs/smollm2-hdpo/train/checkpoints/step-000074/model \\
        --out outputs/faithfulness [--limit N] [--speed 8] [--paired-against dpo]

Each model writes its greedy Task-3 output for every prompt of the split (the product's decoding: the root
preset's guards and penalty, as engine.models.resolve gives a checkpoint folder) into <out>/<label>.jsonl,
reused on the next run when the model, split and budget are the same. Printed and written to
<out>/results.md: per model the share of prompts keeping every tagged element (95 % percentile-bootstrap
interval over prompts), the share kept per element kind, contradictions, words per output, instruction-copy,
prompt-echo, repeated-sentence and fragment rates, and decode tokens/s (batched, on this machine); the paired
difference (with its bootstrap interval) of each model against the base and against --paired-against; and
--examples held-out prompts with every model's output side by side. --speed N times N prompts one at a time
per model (greedy, single stream, alternating models) and prints each model's tokens/s as a ratio to the
first model's: a merged adapter should decode as fast as its base.
Numbers depend on this machine's load: run it alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.faithfulness import paired_diff_ci, parse_elements, score_text, summarize  # noqa: E402
from engine.faithfulness.tags import KINDS  # noqa: E402

CORPUS = ROOT / "assets" / "prompts" / "tagged_prompts.jsonl"


def load_split(split: str, limit: int | None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r["split"] == split]
    return rows[:limit] if limit else rows


def generate(studio: Any, model: str, rows: list[dict], max_new_tokens: int, batch: int) -> tuple[list[str], float]:
    """Greedy outputs for every row, in batches; returns (texts, decoded tokens per second)."""
    from engine.mining import by_prompt_length
    from engine.types import GenerationParams, Task

    params = GenerationParams(max_new_tokens=max_new_tokens)
    order = by_prompt_length(studio, model, Task.BEAUTIFY, [r["short_prompt"] for r in rows])  # no padding
    texts: list[str] = [""] * len(rows)
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        chunk = order[i : i + batch]
        outs = studio.run_tasks(3, [(None, rows[j]["short_prompt"]) for j in chunk], model=model, params=params)
        for j, cands in zip(chunk, outs, strict=True):
            texts[j] = cands[0].text
        print(f"  {model}: {min(i + batch, len(rows))}/{len(rows)}", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    tokens = sum(studio.count_tokens(texts, model=model, task=3))
    return texts, tokens / seconds if seconds else 0.0


def cached_outputs(studio, label: str, model: str, rows: list[dict], args) -> tuple[list[str], float]:
    path = Path(args.out) / f"{label}.jsonl"
    from engine.models import decoding_identity

    key = {"model": model, "split": args.split, "n": len(rows), "max_new_tokens": args.max_new_tokens}
    key["decoding"] = decoding_identity(model)  # outputs of an older decoding are generated again
    if path.is_file():
        lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
        if lines and lines[0].get("key") == key:
            return [x["output"] for x in lines[1:]], float(lines[0]["tokens_per_s"])
    texts, rate = generate(studio, model, rows, args.max_new_tokens, args.batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = [json.dumps({"key": key, "tokens_per_s": rate})]
    body += [
        json.dumps({"id": r["id"], "short_prompt": r["short_prompt"], "output": t})
        for r, t in zip(rows, texts, strict=True)
    ]
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    return texts, rate


def single_stream_speed(studio, models: dict[str, str], rows: list[dict], n: int, tokens: int) -> dict[str, float]:
    """tokens/s of one prompt at a time, models alternating prompt by prompt (so load drifts hit all alike)."""
    from engine.types import GenerationParams

    # Every model writes exactly `tokens` (the end of turn held off): a model that stops earlier would pay the
    # prompt's prefill over fewer tokens and read slower although it decodes as fast.
    params = GenerationParams(max_new_tokens=tokens, min_new_tokens=tokens)
    spent = dict.fromkeys(models, 0.0)
    made = dict.fromkeys(models, 0)
    for r in rows[:n]:
        for label, model in models.items():
            start = time.perf_counter()
            text = studio.run_task(3, None, r["short_prompt"], model=model, params=params)[0].text
            spent[label] += time.perf_counter() - start
            made[label] += studio.count_tokens([text], model=model, task=3)[0]
    return {label: made[label] / spent[label] for label in models}


def pct(x: float) -> str:
    return f"{x:.1f}"


def results_markdown(labels, models, rows, outputs, scores, rates, args) -> str:
    summaries = {label: summarize(scores[label], seed=args.seed) for label in labels}
    lines = [
        f"Split `{args.split}` of assets/prompts/tagged_prompts.jsonl: {len(rows)} prompts; greedy decoding with the "
        f"root preset's guards, {args.max_new_tokens} new tokens at most.",
        "",
        "| model | keeps every element % [95 % CI] | words / output | instruction copy % | prompt echo % "
        "| repeated sentence % | fragment sentences % | decode tokens/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label in labels:
        s = summaries[label]
        lines.append(
            f"| {label} (`{models[label]}`) | {pct(s.keep_all)} [{pct(s.keep_all_ci[0])}, {pct(s.keep_all_ci[1])}] "
            f"| {s.words:.0f} | {pct(s.copy_rate)} | {pct(s.echo_rate)} | {pct(s.repeated_rate)} "
            f"| {pct(s.fragment_share)} | {rates[label]:.1f} |"
        )
    kinds = [k for k in KINDS if any(k in summaries[x].per_kind for x in labels)]
    lines += ["", "Share of each kind of element kept (%), contradicted or moved in brackets:", ""]
    lines += ["| model | " + " | ".join(kinds) + " |", "|---|" + "---:|" * len(kinds)]
    for label in labels:
        s = summaries[label]
        cells = [
            pct(s.per_kind.get(k, 0.0)) + (f" ({pct(s.contradicted[k])})" if k in s.contradicted else "")
            for k in kinds
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    flags = {label: [1.0 if x.all_kept else 0.0 for x in scores[label]] for label in labels}
    against = [labels[0]] + ([args.paired_against] if args.paired_against in labels else [])
    lines += ["", "Paired differences in keeps-every-element (points, same prompts; 95 % paired-bootstrap CI):", ""]
    for ref in dict.fromkeys(against):
        for label in labels:
            if label == ref:
                continue
            diff, (lo, hi) = paired_diff_ci(flags[label], flags[ref], seed=args.seed)
            lines.append(f"- {label} - {ref}: {100 * diff:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]")
    if args.examples:
        lines += ["", f"## {args.examples} held-out prompts, every model's output", ""]
        step = max(1, len(rows) // args.examples)
        for r_i in range(0, step * args.examples, step):
            r = rows[r_i]
            lines += [f"**{r['short_prompt']}**", ""]
            for label in labels:
                sc = scores[label][r_i]
                missing = "; ".join(sc.missing()) or "keeps every element"
                text = " ".join(outputs[label][r_i].split())
                lines.append(f"- *{label}* ({missing}): {text}")
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="label=model (preset or checkpoint folder)")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int)
    p.add_argument("--max-new-tokens", type=int, default=192)
    p.add_argument("--batch", type=int, default=64, help="prompts per generate call (sorted by length)")
    p.add_argument("--out", default="outputs/faithfulness")
    p.add_argument("--examples", type=int, default=10)
    p.add_argument("--paired-against", default="dpo")
    p.add_argument("--speed", type=int, default=0, help="also time N prompts one at a time per model")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    models = dict(m.split("=", 1) for m in args.model)
    labels = list(models)
    rows = load_split(args.split, args.limit)

    from engine.service import Studio, StudioConfig

    studio = Studio(StudioConfig(max_models=2))
    outputs, rates, scores = {}, {}, {}
    for label in labels:
        outputs[label], rates[label] = cached_outputs(studio, label, models[label], rows, args)
        scores[label] = [
            score_text(t, parse_elements(r["tags"]), r["short_prompt"])
            for t, r in zip(outputs[label], rows, strict=True)
        ]
    md = results_markdown(labels, models, rows, outputs, scores, rates, args)
    if args.speed:
        speed = single_stream_speed(studio, models, rows, args.speed, args.max_new_tokens)
        first = labels[0]
        md += "\n\nSingle-stream greedy decode (one prompt at a time, models alternating):\n\n"
        md += "\n".join(f"- {x}: {speed[x]:.1f} tokens/s ({speed[x] / speed[first]:.3f} x {first})" for x in labels)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(md + "\n", encoding="utf-8")
    summary = {label: summarize(scores[label], seed=args.seed).as_dict() for label in labels}
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
