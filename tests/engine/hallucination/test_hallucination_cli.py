"""`hallucinate-text` / `hallucinate-video` subcommands: through the engine CLI's parser, plus `python -m engine`."""

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from engine.cli import build_parser
from engine.errors import InputError, VideoError
from engine.video import load_video, write_video


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 12-frame 64x48 clip whose frames differ (a bar that moves right)."""
    frames = np.zeros((12, 48, 64, 3), np.uint8)
    for i in range(12):
        frames[i, :, i * 5 : i * 5 + 6] = (255, 128, 0)
    return write_video(frames, tmp_path_factory.mktemp("clip") / "in.mp4", fps=12)


def _run(parser, argv):
    args = parser.parse_args(argv)
    payload = args.func(args)
    return payload, args.render(payload), getattr(args, "json", False)


def test_hallucinate_text(parser):
    payload, text, as_json = _run(
        parser, ["hallucinate-text", "Two boys throw a white ball.", "--seed", "3", "--json"]
    )
    assert as_json and set(payload) == {"text", "edits"} and 1 <= len(payload["edits"]) <= 5
    assert payload["text"] in text
    same, _, _ = _run(parser, ["hallucinate-text", "Two boys throw a white ball.", "--seed", "3"])
    assert same == payload


def test_hallucinate_text_word_range(parser):
    argv = ["hallucinate-text", "Two boys throw a white ball to the left.", "--min-words", "4", "--max-words", "4"]
    assert len(_run(parser, argv)[0]["edits"]) == 4
    with pytest.raises(InputError):
        _run(parser, ["hallucinate-text", "Two boys.", "--min-words", "3", "--max-words", "1"])


def test_hallucinate_text_noop_and_empty(parser):
    payload, text, _ = _run(parser, ["hallucinate-text", "It is what it is."])
    assert payload == {"text": "It is what it is.", "edits": []} and "nothing to swap" in text
    with pytest.raises(InputError):
        _run(parser, ["hallucinate-text", "  "])


def test_negative_seed_is_a_usage_error(parser):
    with pytest.raises(SystemExit):
        parser.parse_args(["hallucinate-text", "Two dogs.", "--seed", "-1"])


def test_hallucinate_video_default_ops(parser, clip, tmp_path):
    out = tmp_path / "out.mp4"
    payload, text, _ = _run(parser, ["hallucinate-video", str(clip), str(out), "--num-frames", "6", "--seed", "2"])
    assert payload["frames"] == 6 and [op["op"] for op in payload["ops"]] == ["shuffle"] + ["paste"] * 6
    frames, _ = load_video(out, num_frames=100)
    assert frames.shape[0] == 6 and frames.shape[1:3] == (48, 64)
    assert "6 frames" in text
    json.dumps(payload)


def test_hallucinate_video_chosen_ops(parser, clip, tmp_path):
    argv = ["hallucinate-video", str(clip), str(tmp_path / "o.mp4"), "--crop-keep", "0.8", "1", "--paste-ratio",
            "0.25", "0.33"]  # fmt: skip
    payload, _, _ = _run(parser, argv)
    assert [op["op"] for op in payload["ops"]] == ["crop"] + ["paste"] * 8


@pytest.mark.parametrize(
    "extra, error",
    [
        (["--paste-ratio", "0.6", "0.4"], InputError),
        (["--num-frames", "0"], InputError),
    ],
)
def test_hallucinate_video_bad_options(parser, clip, tmp_path, extra, error):
    with pytest.raises(error):
        _run(parser, ["hallucinate-video", str(clip), str(tmp_path / "o.mp4"), *extra])


def test_hallucinate_video_bad_paths(parser, clip, tmp_path):
    with pytest.raises(InputError):
        _run(parser, ["hallucinate-video", str(clip), str(tmp_path / "o.avi")])
    with pytest.raises(InputError):
        _run(parser, ["hallucinate-video", str(clip), str(clip)])
    (tmp_path / "junk.mp4").write_text("not a video")
    with pytest.raises(VideoError):
        _run(parser, ["hallucinate-video", str(tmp_path / "junk.mp4"), str(tmp_path / "o.mp4")])
    with pytest.raises(VideoError):
        _run(parser, ["hallucinate-video", str(tmp_path / "missing.mp4"), str(tmp_path / "o.mp4")])


def test_one_frame_video_shuffle_is_a_noop(parser, tmp_path):
    one = write_video(np.full((1, 32, 32, 3), 90, np.uint8), tmp_path / "one.mp4")
    payload, _, _ = _run(parser, ["hallucinate-video", str(one), str(tmp_path / "o.mp4"), "--shuffle"])
    assert payload == {"frames": 1, "ops": [{"op": "shuffle", "permutation": [0], "noop": True}]}


@pytest.mark.slow
def test_python_m_engine_subcommands(clip, tmp_path):
    def run(*argv):
        return subprocess.run([sys.executable, "-m", "engine", *argv], capture_output=True, text=True, timeout=120)

    done = run("hallucinate-text", "Two boys are throwing a white ball to the left.", "--seed", "1", "--json")
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"text", "edits"}
    done = run("hallucinate-video", str(clip), str(tmp_path / "o.mp4"), "--shuffle", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["frames"] == 8
    bad = run("hallucinate-text", "", "--json")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "empty" in bad.stderr
