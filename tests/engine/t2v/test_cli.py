"""`python -m engine generate-video`: through engine.cli.main in process and as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from engine.cli import build_parser, main

TINY = ["--model", "tiny-random-cogvideox"]


def test_json_output_and_the_written_clip(tmp_path, capsys):
    from engine.video import load_video

    out = tmp_path / "clip.mp4"
    argv = ["generate-video", "--prompt", "a red car drives", *TINY, "--seed", "5", "--out", str(out), "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["out"] == str(out) and payload["seed"] == 5 and payload["random_weights"] is True
    assert (payload["frames"], payload["height"], payload["width"], payload["fps"]) == (9, 32, 32, 8.0)
    assert load_video(out, num_frames=50)[0].shape == (9, 32, 32, 3)


def test_top_level_json_flag_survives_the_subcommand(tmp_path, capsys):
    argv = ["--json", "generate-video", "--prompt", "a cat", *TINY, "--steps", "1", "--out", str(tmp_path / "c.mp4")]
    assert build_parser().parse_args(argv).json is True
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 1


def test_flags_reach_the_pipeline(tmp_path, capsys):
    out = tmp_path / "c.mp4"
    argv = ["generate-video", "--prompt", "a cat", "--model", "tiny-random-wan", "--frames", "5", "--fps", "4"]
    argv += ["--steps", "2", "--guidance", "1.0", "--height", "48", "--width", "64", "--out", str(out), "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert (payload["frames"], payload["height"], payload["width"]) == (5, 48, 64)
    assert (payload["fps"], payload["steps"], payload["guidance"]) == (4.0, 2, 1.0)


def test_same_seed_same_clip_through_the_command(tmp_path, capsys):
    from engine.video import load_video

    clips = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        out = tmp_path / f"{name}.mp4"
        assert main(["generate-video", "--prompt", "a dog", *TINY, "--seed", str(seed), "--out", str(out)]) == 0
        clips.append(load_video(out, num_frames=50)[0])
    assert np.array_equal(clips[0], clips[1]) and not np.array_equal(clips[0], clips[2])
    assert "[tiny-random-cogvideox: random weights — pipeline check only]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "sora"], "error: unknown text-to-video model 'sora': pick one of"),
        (["--model", "cogvideox-5b"], "error: text-to-video model 'cogvideox-5b' cannot load: THUDM/CogVideoX-5b"),
        ([*TINY, "--frames", "10"], "error: 10 frames: tiny-random-cogvideox makes clips of 8k+1 frames"),
        ([*TINY, "--prompt", "dog " * 300], "error: the prompt is 301 tokens; tiny-random-cogvideox's text encoder"),
        ([*TINY, "--seed", "-2"], "error: seed must be in 0 .. 2^63 - 1, got -2"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_file(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("VIDPROMPTER_ALLOW_DOWNLOAD", raising=False)
    monkeypatch.delenv("VIDPROMPTER_T2V_COGVIDEOX_5B", raising=False)
    out = tmp_path / "clip.mp4"
    full = ["generate-video", "--prompt", "a dog", *argv, "--out", str(out)]
    assert main(full) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_wrong_output_suffix(tmp_path, capsys):
    assert main(["generate-video", "--prompt", "a dog", *TINY, "--out", str(tmp_path / "clip.gif")]) == 2
    assert capsys.readouterr().err == "error: the output must be an .mp4 file, got 'clip.gif'\n"


@pytest.mark.slow
def test_python_dash_m_engine(tmp_path):
    out = tmp_path / "clip.mp4"
    cmd = [sys.executable, "-m", "engine", "--json", "generate-video", "--prompt", "a dog", *TINY]
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["out"] == str(out) and out.stat().st_size > 0
    bad = subprocess.run([*cmd, "--frames", "3", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "error: 3 frames: tiny-random-cogvideox makes clips of 8k+1 frames; ask for 1 or 9"
    ]
