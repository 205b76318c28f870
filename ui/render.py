"""User and model text on the page, as text (issue 13 item 6), plus the views built from it: candidate cards
with a copy button each, and a word-level difference between two responses.

A prompt typed by one annotator and a model's output reach other people's browsers. Nothing from them may
become markup: Markdown strings escape every Markdown and HTML character (`md_text`), HTML strings escape
with `html.escape`, and the Label tab shows responses in HighlightedText, which renders text nodes only.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Sequence

from engine.types import Candidate

Segments = list[tuple[str, str | None]]

#: Label of the words where two responses differ (the Label tab's highlight).
DIFF_LABEL = "differs"
DIFF_COLORS = {DIFF_LABEL: "#fbbf24"}
#: Below this share of common words the responses differ throughout: no highlight (it would mark everything).
MIN_SHARED = 0.35
#: What Markdown (and Gradio's LaTeX) would turn into markup inside a line: links, images, emphasis, code, maths.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]()!|~$])")
#: Bare URLs GFM would turn into links ("http://…", "www.…"): an escaped ":" or "." keeps them text.
_AUTOLINK = re.compile(r"(?i)\b(https?|ftp|www)([:.])")
_TOKENS = re.compile(r"\S+|\s+")
#: An environment variable a note tells the operator to set, as md_text leaves it ("VIDPROMPTER\_X").
_SETTING = re.compile(r"\bset ((?:[A-Z0-9]|\\_)+)")


def md_text(text: object, max_chars: int | None = None) -> str:
    """`text` for a Markdown component, shown literally: no links, images, HTML, emphasis or LaTeX.

    Markdown punctuation is backslash-escaped, bare URLs are kept from becoming links, and `& < >` become
    entities; newlines become spaces (these strings sit inside one line or one quote). `max_chars` cuts long
    text with an ellipsis first.
    """
    value = " ".join(str(text).split())
    if max_chars is not None and len(value) > max_chars:
        value = value[: max_chars - 1].rstrip() + "…"
    escaped = _AUTOLINK.sub(r"\1\\\2", _MD_SPECIAL.sub(r"\\\1", value))
    return html.escape(escaped, quote=False)


def md_note(text: object) -> str:
    """`md_text`, with the setting a note names ("set VIDPROMPTER_X") as code, so it reads and copies whole."""
    return _SETTING.sub(lambda m: f"set `{m.group(1).replace(chr(92), '')}`", md_text(text))


# -- candidates ---------------------------------------------------------------------------------------


def format_scores(scores: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in scores.items()) or "—"


def candidate_cards(cands: Sequence[Candidate], labels: Sequence[str], streaming: bool = False) -> str:
    """HTML cards, one per candidate in the given order: rank, scores, label, a copy button, the text.

    The text wraps inside the card (CSS `.cand-text`), so scores and labels stay on screen whatever its
    length; the copy buttons work through the page's delegated click handler (ui.layout.page_head).
    """
    if not cands:
        return "<div class='cand-list cand-empty'>No candidates yet.</div>"
    cards = [_card(c, label, streaming) for c, label in zip(cands, labels, strict=True)]
    return f"<div class='cand-list'>{''.join(cards)}</div>"


def _card(cand: Candidate, label: str, streaming: bool) -> str:
    cursor = "<span class='cand-cursor'>▍</span>" if streaming else ""
    text = html.escape(cand.text) if cand.text else "<em>(empty)</em>" if not streaming else ""
    return (
        "<div class='cand-card'>"
        "<div class='cand-head'>"
        f"<span class='cand-rank'>#{cand.rank + 1}</span>"
        f"<span class='cand-scores'>{html.escape(format_scores(cand.scores))}</span>"
        f"<span class='cand-label'>{html.escape(label)}</span>"
        "<button type='button' class='cand-copy' title='Copy this candidate'>Copy</button>"
        "</div>"
        f"<div class='cand-text'>{text}{cursor}</div>"
        "</div>"
    )


# -- word-level difference ------------------------------------------------------------------------------


def word_diff(left: str, right: str) -> tuple[Segments, Segments]:
    """HighlightedText values of two responses with the words that differ labelled DIFF_LABEL.

    Words compare case-insensitively without surrounding punctuation ("Wet," == "wet"). When the two share
    less than MIN_SHARED of their words, they differ throughout and neither side is highlighted.
    """
    left_tokens, right_tokens = _TOKENS.findall(left or ""), _TOKENS.findall(right or "")
    left_words = [i for i, t in enumerate(left_tokens) if not t.isspace()]
    right_words = [i for i, t in enumerate(right_tokens) if not t.isspace()]
    matcher = difflib.SequenceMatcher(
        None, [_key(left_tokens[i]) for i in left_words], [_key(right_tokens[i]) for i in right_words], False
    )
    if matcher.ratio() < MIN_SHARED:
        return _plain(left), _plain(right)
    left_marked: set[int] = set()
    right_marked: set[int] = set()
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            left_marked.update(left_words[i1:i2])
            right_marked.update(right_words[j1:j2])
    return _segments(left_tokens, left_marked), _segments(right_tokens, right_marked)


def _key(word: str) -> str:
    return word.strip(".,;:!?\"'()[]").lower()


def _plain(text: str) -> Segments:
    return [(text, None)] if text else []


def _segments(tokens: list[str], marked: set[int]) -> Segments:
    """Tokens merged into runs; a space between two marked words joins their run (one highlight, not two)."""
    out: Segments = []
    for i, token in enumerate(tokens):
        label = DIFF_LABEL if i in marked or (token.isspace() and {i - 1, i + 1} <= marked) else None
        if out and out[-1][1] == label:
            out[-1] = (out[-1][0] + token, label)
        else:
            out.append((token, label))
    return out
