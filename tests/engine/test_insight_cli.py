"""`python -m engine ground / strength / tokens`: JSON shapes, the human rendering, one-line errors."""

from __future__ import annotations

import json

import pytest

from engine.cli import main

TEXT = "A big white rabbit stands in a green meadow. A red sports car drives past quickly. Birds fly over the trees."
RESPONSE = "Two boys throw a red ball to the left while a brown dog runs across the green field."
TINY = ["--evaluator", "tiny-random-clip", "--evaluator", "tiny-random-long-clip"]


def run_json(argv: list[str], capsys) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_ground_json(sample_video, capsys) -> None:
    payload = run_json(["ground", "--video", str(sample_video), "--text", TEXT, *TINY], capsys)
    sentences = payload["sentences"]
    assert [s["text"] for s in sentences] == [TEXT[s["start"] : s["end"]] for s in sentences]
    assert len(sentences) == 3 and payload["evaluators"] == ["tiny-random-clip", "tiny-random-long-clip"]
    for s in sentences:
        assert s["mean"] == pytest.approx(sum(s["scores"].values()) / 2)
    means = [s["mean"] for s in sentences]
    assert payload["least_supported"] == means.index(min(means))
    assert payload["flagged"] == (payload["gap"] >= payload["margin"] == 1.0)
    assert payload["random_weights"] and "minus the median sentence" in payload["bar_meaning"]


def test_ground_text_marks_the_flagged_sentence(sample_video, capsys) -> None:
    argv = ["ground", "--video", str(sample_video), "--text", TEXT, *TINY, "--margin", "0"]
    assert main(argv) == 0  # margin 0: the lowest of three always stands out
    out = capsys.readouterr().out
    assert out.count("<- likely hallucination") == 1 and out.startswith("[random weights")


def test_strength_json(sample_video, capsys) -> None:
    payload = run_json(["strength", "--video", str(sample_video), "--text", RESPONSE, *TINY[:2]], capsys)
    rows = {r["condition"]: r for r in payload["rows"]}
    assert set(rows) == {"response hallucination", "input hallucination (video)"}
    video = rows["input hallucination (video)"]["components"][0]
    assert video["change"] == "video" and video["drop"] == pytest.approx(video["original"] - video["perturbed"])


def test_tokens_json(capsys) -> None:
    payload = run_json(["tokens", "--text", "A dog runs. " * 30, "--target", "clip-l"], capsys)
    (clip,) = payload["targets"]
    assert clip["exact"] and clip["tokens"] == 30 * 4 + 2 and clip["over"] == 45
    assert clip["fitted"] == ("A dog runs. " * 18).strip() and clip["beyond"].startswith("runs.")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ground", "--video", "clip.mp4", "--text", "  "], "error: --text is empty"),
        (["strength", "--video", "clip.mp4", "--text", RESPONSE, "--task", "2"], "error: task 2 needs --prompt"),
        (["tokens", "--text", ""], "error: --text is empty"),
    ],
)
def test_bad_input_is_one_line(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err


def test_ground_missing_video_is_one_line(tmp_path, capsys) -> None:
    assert main(["ground", "--video", str(tmp_path / "none.mp4"), "--text", TEXT, *TINY[:2]]) == 2
    assert capsys.readouterr().err.strip() == f"error: video not found: {tmp_path / 'none.mp4'}"
