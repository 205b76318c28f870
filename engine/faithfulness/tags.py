"""Tagged elements of a short prompt: what a detailed prompt written from it must keep.

A tag is a small mapping, e.g. ``{"kind": "color", "value": "red", "object": "car"}``. The corpus
(assets/prompts/tagged_prompts.jsonl) writes them in this canonical form; `parse_elements` also reads the
looser spellings another tagger may use ("type" for "kind", "colour", counts as words, "to the left of").
Kinds: object, color, count, relation (subject, value, object), scene, style, action (value, subject).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from engine.errors import InputError
from engine.faithfulness.vocab import COUNTS, RELATION_ALIASES

KINDS = ("object", "color", "count", "relation", "scene", "style", "action")
_KIND_ALIASES = {
    "colour": "color",
    "number": "count",
    "quantity": "count",
    "spatial": "relation",
    "relationship": "relation",
    "position": "relation",
    "setting": "scene",
    "location": "scene",
    "background": "scene",
    "art_style": "style",
    "film_style": "style",
    "verb": "action",
    "class": "object",
    "object_class": "object",
    "noun": "object",
}
_COUNT_WORDS = {word: n for n, words in COUNTS.items() for word in words}
#: Longest tag value read: a tag names a word or a short phrase.
MAX_VALUE_CHARS = 80


@dataclass(frozen=True)
class Element:
    """One tagged element of a short prompt.

    value: the object class, colour, count (digits), relation (left of / right of / on top of / under),
    scene, style or action lemma. object: the object a colour or count is bound to, and a relation's second
    object. subject: a relation's first object and who does an action.
    """

    kind: str
    value: str
    object: str | None = None
    subject: str | None = None

    def label(self) -> str:
        """A short human label: "color red on car", "relation cat left of dog"."""
        if self.kind == "relation":
            return f"relation {self.subject} {self.value} {self.object}"
        if self.object:
            return f"{self.kind} {self.value} on {self.object}"
        return f"{self.kind} {self.value}"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _text(raw: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = raw.get(key)
        if value is not None and str(value).strip():
            text = " ".join(str(value).split())
            if len(text) > MAX_VALUE_CHARS:
                raise InputError(f"tag {key} is {len(text)} characters; the limit is {MAX_VALUE_CHARS}")
            return text
    return None


def _count_value(text: str) -> str:
    key = text.strip().lower()
    if key.isdigit():
        return str(int(key))
    if key in _COUNT_WORDS:
        return str(_COUNT_WORDS[key])
    raise InputError(f"count tag {text!r} is not a number (two, 3, ...)")


def parse_element(raw: Mapping[str, Any]) -> Element:
    """One tag mapping -> Element; InputError naming what is wrong."""
    if not isinstance(raw, Mapping):
        raise InputError(f"a tag must be a mapping, got {type(raw).__name__}")
    kind = (_text(raw, "kind", "type") or "").lower()
    kind = _KIND_ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise InputError(f"unknown tag kind {kind!r}: use one of {', '.join(KINDS)}")
    value = _text(raw, "value", "name", "text", kind)
    if value is None:
        raise InputError(f"{kind} tag has no value")
    obj = _text(raw, "object", "target", "of", "b", "second")
    subject = _text(raw, "subject", "a", "first", "agent")
    if kind == "count":
        value = _count_value(value)
    elif kind == "relation":
        value = RELATION_ALIASES.get(value.lower(), value.lower())
        if value not in ("left of", "right of", "on top of", "under"):
            raise InputError(f"relation tag {value!r} is not left of / right of / on top of / under")
        if not (subject and obj):
            raise InputError("a relation tag needs its subject and object")
    elif kind in ("color", "count") and not obj:
        raise InputError(f"a {kind} tag needs the object it is bound to")
    return Element(kind, value.lower() if kind != "style" else value, obj and obj.lower(), subject and subject.lower())


def parse_elements(raw: Iterable[Mapping[str, Any]] | str | None) -> list[Element]:
    """A tag list (or its JSON text) -> Elements, in order, duplicates dropped."""
    if raw is None:
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise InputError("tags are not valid JSON") from None
    if not isinstance(raw, list):
        raise InputError("tags must be a list of mappings")
    return list(dict.fromkeys(parse_element(item) for item in raw))


def dump_elements(elements: Iterable[Element]) -> list[dict[str, Any]]:
    return [e.as_dict() for e in elements]
