"""engine.sentences: sentences and their spans, through abbreviations, decimals, initials and quotes."""

from __future__ import annotations

import pytest

from engine.sentences import split_sentences


def texts(text: str) -> list[str]:
    return [s.text for s in split_sentences(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A dog runs. A cat sleeps.", ["A dog runs.", "A cat sleeps."]),
        ("It is 3.5 m tall. It is 2.75 m wide.", ["It is 3.5 m tall.", "It is 2.75 m wide."]),
        ("Dr. Lee walks his dog. Mr. Smith waves.", ["Dr. Lee walks his dog.", "Mr. Smith waves."]),
        ("A pet, e.g. a tabby, sleeps. I.e. it naps.", ["A pet, e.g. a tabby, sleeps.", "I.e. it naps."]),
        ("J. R. R. Tolkien writes. Then he rests.", ["J. R. R. Tolkien writes.", "Then he rests."]),
        (
            "At 5 p.m. the sun sets. It sets at 5 p.m. The end.",
            ["At 5 p.m. the sun sets.", "It sets at 5 p.m.", "The end."],
        ),
        ("Birds, trees, etc. The camera pans.", ["Birds, trees, etc.", "The camera pans."]),
        ("Really?! Yes... Wow!", ["Really?!", "Yes...", "Wow!"]),
        ('He says "Stop." Then he runs.', ['He says "Stop."', "Then he runs."]),
        ("A cat (grey.) Then a dog.", ["A cat (grey.)", "Then a dog."]),
        ("Shot one\n- shot two\n\n- shot three", ["Shot one", "- shot two", "- shot three"]),
        ("He counts to 5. Then 6.", ["He counts to 5.", "Then 6."]),
        ("No full stop at the end", ["No full stop at the end"]),
        ("A dog runs. ... And stops.", ["A dog runs. ...", "And stops."]),
        ("   ", []),
    ],
)
def test_split(text: str, expected: list[str]) -> None:
    assert texts(text) == expected


def test_spans_index_the_original_text() -> None:
    text = "  A dog runs on the sand.   Dr. Lee throws 2.5 balls!\nThe sun sets.  "
    sentences = split_sentences(text)
    assert [(s.start, s.end) for s in sentences] == [(2, 25), (28, 53), (54, 67)]  # 2 + 23; 28 + 25; 54 + 13
    assert all(text[s.start : s.end] == s.text for s in sentences)
