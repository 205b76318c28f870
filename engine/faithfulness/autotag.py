"""Tags read off an untagged short prompt, with the matcher's own vocabulary (no parser, no model).

For samples imported without tags and for the demo's reranking: the elements the vocabulary recognises
in the short prompt itself, i.e. exactly what `match.check` can then look for in a detailed prompt.
- objects: every vocabulary object mentioned (longest form first: "hot dog" is not a dog);
- colours and counts bound to them, as the matcher binds them;
- relations the prompt states between two of its objects;
- scenes and styles whose keep-phrases appear, plus "in the style of X" / "by X" / "X style" for
  styles outside the vocabulary;
- actions: vocabulary verbs in any inflection.
A word outside the vocabulary (an unlisted animal, a rare verb) is not tagged: the reader measure
engine.text_quality.kept_content still covers the prompt's every content word.
"""

from __future__ import annotations

import re
from functools import lru_cache

from engine.faithfulness.match import _has_phrase, _phrase_forms, read, relation_claims, words
from engine.faithfulness.tags import Element
from engine.faithfulness.vocab import ACTIONS, SCENES, STYLES

_STYLE_PATTERNS = (
    re.compile(r"\bin the style of ([A-Za-z][\w' -]{1,40}?)(?:[,.;]|$)", re.IGNORECASE),
    re.compile(r"\bby ([A-Z][\w'-]+(?: [A-Z][\w'-]+){0,2})"),
    re.compile(r"\b([A-Za-z][\w-]{2,30}) style\b", re.IGNORECASE),
)
_ALL_ACTIONS = sorted({a for acts in ACTIONS.values() for a in acts})


@lru_cache(maxsize=256)
def _inflections(lemma: str) -> frozenset[str]:
    """The verb's own forms (not its synonyms: "turning" tags turn, not spin)."""
    from lemminflect import getAllInflections

    return frozenset({lemma, *(f for forms in getAllInflections(lemma, upos="VERB").values() for f in forms)})


def _phrase_tags(texts: list[str], entries, kind: str) -> list[Element]:
    out = []
    for e in entries:
        if any(_has_phrase(texts, words(f)) for p in e.keeps for f in _phrase_forms(p)):
            out.append(Element(kind, e.name))
    return out


def autotag(short_prompt: str) -> list[Element]:
    """The elements of `short_prompt` that the vocabulary recognises (see the module docstring)."""
    r = read(short_prompt, ())
    out: list[Element] = []
    objects = list(dict.fromkeys(s.owner for s in r.mentions))
    for name in objects:
        out.append(Element("object", name))
        out += [Element("color", c, object=name) for c in sorted(r.colors.get(name, ()))]
        out += [Element("count", str(n), object=name) for n in sorted(r.counts.get(name, ())) if n > 1]
    for i, a in enumerate(objects):
        for b in objects[i + 1 :]:
            for rel in sorted(relation_claims(r, a, b)):
                out.append(Element("relation", rel, object=b, subject=a))
    out += _phrase_tags(r.texts, SCENES, "scene")
    styles = _phrase_tags(r.texts, STYLES, "style")
    if not styles:
        for pattern in _STYLE_PATTERNS:
            m = pattern.search(short_prompt)
            if m and m.group(1).strip().lower() not in ("the", "a", "an"):
                styles.append(Element("style", m.group(1).strip()))
                break
    out += styles
    present = set(r.texts)
    subject = objects[0] if objects else None
    out += [Element("action", a, subject=subject) for a in _ALL_ACTIONS if _inflections(a) & present]
    return list(dict.fromkeys(out))
