"""What a reader sees in the demo's Beautify candidates, per decoding setting (issue 25).

    .venv/bin/python bench/bench_reader.py [--prompts N] [--only NAME ...] [--model smollm2-135m] [--threads 2]

Prompts: bench/data/demo_prompts.txt (119 short prompts written for this bench; not the app's examples and not
the tagged corpus). Each setting runs every prompt through Studio.stream_task, as the page does, and reads the
candidates it would show:

  today     the app before issue 25: 3 sampled candidates (the preset's 0.7 / 0.9), 128 new tokens, shown as drawn
  greedy    greedy decoding with the preset's guards, 1 candidate, 192 tokens
  draw8     the app now: 8 sampled, tidied, degenerate ones dropped, the best 3 shown (engine.rerank), 192 tokens
  draw8-t05 as draw8 at temperature 0.5

Per setting: fragment sentences (<= 3 words) as a share of sentences, repeated sentences and junk runs (counts
over all candidates), distinct-2, instruction copying, the prompt's content words kept, words per candidate,
time to the final candidates and to the first streamed text (per prompt, model loaded), and the ratio of the
final time to `today`'s. Goals (issue 25): fragments <= 5 %, 0 repeated, 0 junk, kept >= 0.9, >= 40 words,
final <= 2x today, first text < 1.5 s. Run it alone on a quiet machine: the times are wall-clock.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPTS = ROOT / "bench" / "data" / "demo_prompts.txt"


def load_prompts(n: int = 0) -> list[str]:
    lines = [x.strip() for x in PROMPTS.read_text(encoding="utf-8").splitlines()]
    prompts = [x for x in lines if x and not x.startswith("#")]
    return prompts[:n] if n else prompts


@dataclass
class Tally:
    sentences: int = 0
    fragments: int = 0
    repeated: int = 0
    junk: int = 0
    copies: int = 0
    candidates: int = 0
    kept: list[float] = field(default_factory=list)
    words: list[int] = field(default_factory=list)
    distinct2: list[float] = field(default_factory=list)
    final_s: list[float] = field(default_factory=list)
    first_s: list[float] = field(default_factory=list)
    examples: list[tuple[str, list[str]]] = field(default_factory=list)

    def add(self, prompt: str, texts: list[str]) -> None:
        from engine.text_quality import read_text

        for text in texts:
            r = read_text(text, prompt)
            self.sentences += r.sentences
            self.fragments += r.fragments
            self.repeated += r.repeated
            self.junk += r.junk_runs
            self.copies += r.copies_instruction
            self.candidates += 1
            self.kept.append(r.kept_content)
            self.words.append(r.words)
            self.distinct2.append(r.distinct2)
        self.examples.append((prompt, texts))

    def row(self, name: str, base: float | None) -> str:
        final = statistics.mean(self.final_s)
        ratio = f"{final / base:.2f}" if base else "1.00"
        return (
            f"| {name} | {100 * self.fragments / max(1, self.sentences):.1f} | {self.repeated} | {self.junk} "
            f"| {statistics.mean(self.distinct2):.2f} | {100 * self.copies / max(1, self.candidates):.1f} "
            f"| {statistics.mean(self.kept):.2f} | {statistics.mean(self.words):.0f} | {final:.1f} ({ratio}x) "
            f"| {statistics.mean(self.first_s):.2f} |"
        )


def settings(model: str) -> dict[str, tuple[object, int | None]]:
    """name -> (GenerationParams, draw)."""
    from engine.models import default_params

    return {
        "today": (default_params(model, 3, max_new_tokens=128), None),
        "greedy": (default_params(model, 1, do_sample=False), None),
        "draw8": (default_params(model, 3), 8),
        "draw8-t05": (default_params(model, 3, temperature=0.5), 8),
    }


def run_prompt(studio, model: str, prompt: str, params, draw: int | None) -> tuple[list[str], float, float]:
    start = time.perf_counter()
    first = None
    texts: list[str] = []
    for texts in studio.stream_task(3, short_prompt=prompt, model=model, params=params, draw=draw):
        if first is None and any(t.strip() for t in texts):
            first = time.perf_counter() - start
    total = time.perf_counter() - start
    return list(texts), first if first is not None else total, total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=0, help="the first N prompts (0: all 119)")
    ap.add_argument("--only", action="append", help="settings to run (default: all)")
    ap.add_argument("--model", default=None, help="text model (default: the app's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--show", type=int, default=2, help="print the shown candidates of the first N prompts")
    args = ap.parse_args(argv)
    import torch

    from engine.service import Studio, StudioConfig
    from engine.types import GenerationParams

    torch.set_num_threads(args.threads)
    studio = Studio(StudioConfig())
    model = args.model or studio.config.text_model
    studio.run_task(3, short_prompt="a cat", model=model, params=GenerationParams(max_new_tokens=2))  # load, warm up
    prompts = load_prompts(args.prompts)
    chosen = {k: v for k, v in settings(model).items() if not args.only or k in args.only}
    tallies: dict[str, Tally] = {}
    for name, (params, draw) in chosen.items():
        tally = tallies[name] = Tally()
        for i, prompt in enumerate(prompts):
            seeded = replace(params, seed=i) if params.do_sample else params
            texts, first, total = run_prompt(studio, model, prompt, seeded, draw)
            tally.first_s.append(first)
            tally.final_s.append(total)
            tally.add(prompt, texts)
            print(f"  {name} [{i + 1}/{len(prompts)}] {total:.1f} s  {prompt}", file=sys.stderr, flush=True)
    for name, tally in tallies.items():
        for prompt, texts in tally.examples[: args.show]:
            print(f"\n[{name}] {prompt}\n" + "\n".join(f"  - {t}" for t in texts))
    base = statistics.mean(tallies["today"].final_s) if "today" in tallies else None
    print(f"\n{model}, {len(prompts)} prompts (bench/data/demo_prompts.txt)\n")
    print(
        "| setting | fragments % of sentences | repeated sentences | junk runs | distinct-2 | instruction copy % "
        "| content words kept | words / candidate | s to final (x today) | s to first text |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, tally in tallies.items():
        print(tally.row(name, base))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
