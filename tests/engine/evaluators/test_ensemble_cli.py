"""The ensemble (mean of members, members kept, one decode per video) and `python -m engine score`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.cli import main
from engine.evaluators import Ensemble, get_preset
from engine.evaluators.registry import TINY_EVALUATORS as TINY


def test_mean_of_members_and_one_decode(load_tiny, sample_video, monkeypatch):
    import engine.video

    members = [load_tiny(n) for n in TINY]
    decodes = []
    real = engine.video.load_video
    monkeypatch.setattr(engine.video, "load_video", lambda *a, **k: decodes.append(a) or real(*a, **k))
    ensemble = Ensemble(members=members)
    texts = ["a rabbit", "a car", "a bird flies over a river"]
    rows = ensemble.score(sample_video, texts)
    assert len(decodes) == 1  # all members sample 8 frames: one decode
    for i, row in enumerate(rows):
        assert set(row) == {*TINY, "mean"}
        assert row["mean"] == pytest.approx(np.mean([row[n] for n in TINY]))
        for member in members:
            assert row[member.name] == pytest.approx(member.score(sample_video, [texts[i]])[0], abs=1e-4)
    ensemble.score(sample_video, ["again"])
    assert len(decodes) == 1  # every member had it cached: no decode at all
    assert ensemble.random_weights()


def test_score_cli_json(tiny_env, sample_video, capsys):
    argv = ["score", "--video", str(sample_video), "--text", "a rabbit " * 60, "--json"]
    assert main([*argv[:5], "--evaluator", "tiny-random-clip", "--evaluator", "tiny-random-long-clip", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload["scores"]) == {"tiny-random-clip", "tiny-random-long-clip"}
    assert payload["mean"] == pytest.approx(sum(payload["scores"].values()) / 2)
    assert payload["truncated"] == {"tiny-random-clip": True, "tiny-random-long-clip": False}
    assert payload["notes"] and "100 x cosine" in payload["convention"] and payload["random_weights"]


def test_score_cli_errors_are_one_line(tiny_env, tmp_path, capsys, monkeypatch):
    assert (
        main(["score", "--video", str(tmp_path / "none.mp4"), "--text", "x", "--evaluator", "tiny-random-clip"]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: video not found") and "\n" not in err
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv(get_preset("videoclip-xl").env_var, raising=False)
    assert main(["score", "--video", str(tmp_path), "--text", "x", "--evaluator", "videoclip-xl"]) == 2
    assert "VIDPROMPTER_EVALUATOR_VIDEOCLIP_XL" in capsys.readouterr().err
