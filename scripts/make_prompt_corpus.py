"""Write the tagged short-prompt corpus: assets/prompts/tagged_prompts.jsonl (seeded, deterministic).

    .venv/bin/python scripts/make_prompt_corpus.py [--seed 20261206] [--n 2400] [--out assets/prompts]

Each line is an import row (python -m annotations import): {"id", "split", "short_prompt", "tags": [tags in
engine.faithfulness.tags's format], "form" (the sentence form it was written in)}. Prompts are drawn
from engine.faithfulness.vocab (COCO objects, basic colours, counts, four relations, scenes, styles, actions)
through several sentence forms (participle or finite verb, a relation clause, "there is", camera-shot and
style prefixes, scene first, two objects joined by "and"), so no one template dominates.

Splits are disjoint in object/attribute combinations: every (object, colour), (object, count),
(object, action), (object, scene), (object, style) and unordered object pair is assigned to train (70 %),
dev (15 %) or test (15 %) by a hash of the combination, and a prompt of a split uses only that split's
combinations. So the test split holds combinations never seen in training (the words themselves recur).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.faithfulness.tags import Element  # noqa: E402
from engine.faithfulness.vocab import (  # noqa: E402
    ACTIONS,
    COLORS,
    CORPUS_COUNTS,
    OBJECTS,
    SCENES,
    STYLES,
    ObjectEntry,
    PhraseEntry,
)

DEFAULT_SEED = 20261206
SPLITS = (("train", 700), ("dev", 850), ("test", 1000))  # cumulative per-mille
NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}
#: How the corpus writes each relation (a subset of what the metric accepts).
RELATION_SAYS = {
    "left of": ("to the left of", "left of", "on the left side of"),
    "right of": ("to the right of", "right of", "on the right side of"),
    "on top of": ("on top of", "atop", "on top of"),
    "under": ("under", "beneath", "underneath", "below"),
}
CAMERA = ("close-up of", "wide shot of", "video of", "footage of", "a slow pan over", "aerial view of", "a clip of")
#: Colours make no sense on people in a short prompt ("a blue man"); counts and actions do.
NO_COLOR = {"person"}


def combo_split(*key: str) -> str:
    """The split a combination belongs to: a stable hash, independent of the seed and of Python."""
    digest = int(hashlib.sha1(json.dumps(key).encode()).hexdigest()[:8], 16) % 1000
    return next(name for name, cut in SPLITS if digest < cut)


def pair_key(a: str, b: str) -> tuple[str, str, str]:
    x, y = sorted((a, b))
    return ("pair", x, y)


@dataclass
class Spec:
    """One prompt's content before it is written out."""

    o1: ObjectEntry
    count: int | None = None
    color1: str | None = None
    action: str | None = None
    o2: ObjectEntry | None = None
    relation: str | None = None
    color2: str | None = None
    scene: PhraseEntry | None = None
    style: PhraseEntry | None = None
    combos: list[tuple[str, ...]] = field(default_factory=list)


def _allowed(split: str, *key: str) -> bool:
    return combo_split(*key) == split


def draw_spec(rng: random.Random, split: str) -> Spec | None:
    """A prompt's content whose every combination belongs to `split` (None: this draw found none)."""
    objects = [o for o in OBJECTS if o.corpus]
    o1 = rng.choice(objects)
    s = Spec(o1)

    def pick(kind: str, values: list, obj: ObjectEntry, p: float):
        if rng.random() >= p:
            return None
        ok = [v for v in values if _allowed(split, obj.name, kind, str(v))]
        return rng.choice(ok) if ok else None

    s.count = pick("count", list(CORPUS_COUNTS), o1, 0.25)
    if o1.category not in NO_COLOR:
        s.color1 = pick("color", list(COLORS), o1, 0.45)
    s.action = pick("action", list(ACTIONS[o1.category]), o1, 0.55)
    if rng.random() < 0.4:
        partners = [o for o in objects if o.name != o1.name and _allowed(split, *pair_key(o1.name, o.name))]
        if partners:
            s.o2 = rng.choice(partners)
            s.relation = rng.choice(list(RELATION_SAYS)) if rng.random() < 0.85 else None
            if s.o2.category not in NO_COLOR:
                s.color2 = pick("color", [c for c in COLORS if c != s.color1], s.o2, 0.35)
    holders = [o for o in (s.o1, s.o2) if o is not None]
    if rng.random() < 0.6:
        ok = [e for e in SCENES if all(_allowed(split, o.name, "scene", e.name) for o in holders)]
        s.scene = rng.choice(ok) if ok else None
    if rng.random() < 0.5:
        ok = [e for e in STYLES if all(_allowed(split, o.name, "style", e.name) for o in holders)]
        s.style = rng.choice(ok) if ok else None
    s.combos = combos(s)
    return s if all(combo_split(*c) == split for c in s.combos) else None


def combos(s: Spec) -> list[tuple[str, ...]]:
    """Every object/attribute combination of a spec (what the splits keep disjoint)."""
    out: list[tuple[str, ...]] = []
    if s.count is not None:
        out.append((s.o1.name, "count", str(s.count)))
    if s.color1:
        out.append((s.o1.name, "color", s.color1))
    if s.action:
        out.append((s.o1.name, "action", s.action))
    if s.o2 is not None:
        out.append(pair_key(s.o1.name, s.o2.name))
        if s.color2:
            out.append((s.o2.name, "color", s.color2))
    for o in (s.o1, s.o2):
        if o is None:
            continue
        if s.scene:
            out.append((o.name, "scene", s.scene.name))
        if s.style:
            out.append((o.name, "style", s.style.name))
    return out


def elements(s: Spec) -> list[Element]:
    out = [Element("object", s.o1.name)]
    if s.color1:
        out.append(Element("color", s.color1, object=s.o1.name))
    if s.count is not None:
        out.append(Element("count", str(s.count), object=s.o1.name))
    if s.action:
        out.append(Element("action", s.action, subject=s.o1.name))
    if s.o2 is not None:
        out.append(Element("object", s.o2.name))
        if s.color2:
            out.append(Element("color", s.color2, object=s.o2.name))
        if s.relation:
            out.append(Element("relation", s.relation, object=s.o2.name, subject=s.o1.name))
    if s.scene:
        out.append(Element("scene", s.scene.name))
    if s.style:
        out.append(Element("style", s.style.name))
    return out


# --------------------------------------------------------------------------- writing a spec out


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _plural(noun: str) -> str:
    from lemminflect import getInflection

    head = noun.split()[-1]
    forms = getInflection(head, "NNS") or (head + "s",)
    return noun[: len(noun) - len(head)] + forms[0]


def noun_phrase(rng: random.Random, o: ObjectEntry, count: int | None, color: str | None, definite=False) -> str:
    words = [w for w in (color, o.name) if w]
    if count is not None:
        number = NUMBER_WORDS[count] if rng.random() < 0.8 else str(count)
        return " ".join([number, *words[:-1], _plural(o.name)])
    det = "the" if definite else _article(words[0])
    return " ".join([det, *words])


def verb(lemma: str, form: str) -> str:
    from lemminflect import getInflection

    return (getInflection(lemma, form) or (lemma,))[0]


def realize(rng: random.Random, s: Spec) -> tuple[str, str]:
    """(prompt text, form name) for a spec, in one of several sentence forms."""
    np1 = noun_phrase(rng, s.o1, s.count, s.color1)
    np2 = noun_phrase(rng, s.o2, None, s.color2) if s.o2 else None
    plural = s.count is not None
    # The second object: after its relation phrase, or joined by "and" when the prompt states no relation.
    rel = f" {rng.choice(RELATION_SAYS[s.relation])} {np2}" if s.relation else (f" and {np2}" if np2 else "")
    scene = f" {rng.choice(s.scene.says)}" if s.scene else ""
    forms = ["participle", "finite"] if s.action else ["bare"]
    if np2 and s.relation:
        forms.append("there is")
    if np2 and not s.relation:
        forms = ["and"]
    if s.scene:
        forms.append("scene first")
    form = rng.choice(forms)
    act_ing = f" {verb(s.action, 'VBG')}" if s.action else ""
    if form == "participle":
        core = f"{np1}{act_ing}{rel}{scene}"
    elif form == "finite":
        core = f"{np1} {verb(s.action, 'VBP' if plural else 'VBZ')}{rel}{scene}"
    elif form == "there is":
        core = f"there {'are' if plural else 'is'} {np1}{act_ing}{rel}{scene}"
    elif form == "and":
        core = f"{np1}{act_ing}{rel}{scene}"
    elif form == "scene first":
        lead = scene.strip()
        core = f"{lead[0].upper()}{lead[1:]}, {np1}{act_ing}{rel}"
    else:
        core = f"{np1}{rel}{scene}"
    if form not in ("scene first", "there is") and rng.random() < 0.2:
        core = f"{rng.choice(CAMERA)} {core}"
        form += "+camera"
    if s.style:
        says = rng.choice(s.style.says)
        prefix_ok = form in ("participle", "bare", "and")  # not after "there is" or a camera prefix
        if "{}" in says and prefix_ok:
            core = says.format(core)
            form += "+style prefix"
        else:
            sep = rng.choice([", ", ", ", "; ", " - "]) if "{}" not in says else ", "
            core = f"{core}{sep}{says.replace(' of {}', '').replace('{}', '')}"
    text = core[0].upper() + core[1:] if rng.random() < 0.7 else core
    return (text + "." if rng.random() < 0.3 else text), form


# --------------------------------------------------------------------------- the corpus


def build(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows: list[dict] = []
    seen: set[str] = set()
    quotas = {"train": round(n * 0.70), "dev": round(n * 0.15)}
    quotas["test"] = n - quotas["train"] - quotas["dev"]
    for split, quota in quotas.items():
        made = 0
        while made < quota:
            spec = draw_spec(rng, split)
            if spec is None or len(elements(spec)) < 2:
                continue
            text, form = realize(rng, spec)
            if text.lower() in seen:
                continue
            seen.add(text.lower())
            rows.append(
                {
                    "id": f"{split}-{made:04d}",
                    "split": split,
                    "short_prompt": text,
                    "tags": [e.as_dict() for e in elements(spec)],
                    "form": form,
                }
            )
            made += 1
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--n", type=int, default=2400, help="prompts in all (70 / 15 / 15 %% train / dev / test)")
    p.add_argument("--out", default=str(ROOT / "assets" / "prompts"))
    args = p.parse_args(argv)
    rows = build(args.n, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (out / "tagged_prompts.jsonl").write_text(body, encoding="utf-8")
    kinds = Counter(e["kind"] for r in rows for e in r["tags"])
    manifest = {
        "script": "scripts/make_prompt_corpus.py",
        "seed": args.seed,
        "n": len(rows),
        "splits": dict(Counter(r["split"] for r in rows)),
        "tags": dict(sorted(kinds.items())),
        "forms": dict(Counter(r["form"].split("+")[0] for r in rows).most_common()),
        "sha256": hashlib.sha256(body.encode()).hexdigest(),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(manifest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
