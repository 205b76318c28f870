"""data.strength_band: materialisation measures each drawn hallucination with the evaluators, keeps the ones in
the band, and stores every strength in the example's records (engine.strength.keep_in_band)."""

from __future__ import annotations

import pytest

from engine.errors import ModelLoadError
from tests.toy_data import fake_frames, fake_text
from training.config import ConfigError, load_config
from training.data import Augmenters, load_examples, materialise

FAKES = Augmenters(text=fake_text, frames=fake_frames)
MEASURED = {"response_hallucination", "input_hallucination"}


def _examples(export, out, **over):
    cfg = load_config({}, {"data.num_frames": 4, "data.frame_size": 56, **over})
    return load_examples(materialise(export, out, cfg.data, cfg.loss, seed=0, augmenters=FAKES))


def test_a_wide_band_keeps_every_pair_and_records_each_strength(full_export, tmp_path):
    plain = _examples(full_export, tmp_path / "plain")
    banded = _examples(
        full_export,
        tmp_path / "wide",
        **{"data.strength_band": [-1000.0, 1000.0], "data.strength_evaluators": ["tiny-random-clip"]},
    )
    assert [e.pairs for e in banded] == [e.pairs for e in plain]
    for example in banded:
        record = example.records["strength"]
        assert record["band"] == [-1000.0, 1000.0] and record["dropped"] == []
        measured = [p for p in example.pairs if p[0] in MEASURED]
        assert len(record["pairs"]) == len(measured)  # every sample of the toy export has a video
        for pair in record["pairs"]:
            parts = pair["components"]
            assert pair["drop"] == pytest.approx(max(c["original"] - c["perturbed"] for c in parts))


def test_an_empty_band_drops_the_hallucination_pairs_only(full_export, tmp_path):
    examples = _examples(
        full_export,
        tmp_path / "none",
        **{"data.strength_band": [999.0, 1000.0], "data.strength_evaluators": ["tiny-random-clip"]},
    )
    terms = {t for e in examples for t, _, _ in e.pairs}
    assert terms == {"dpo", "task_hallucination"}
    for example in examples:
        used = {i for _, p, d in example.pairs for i in (p, d)}
        assert used == set(range(len(example.seqs)))  # no sequence left that no pair needs
        assert all(p["drop"] < 999.0 for p in example.records["strength"]["dropped"])


def test_band_errors_are_one_line(full_export, tmp_path):
    with pytest.raises(ConfigError, match=r"data.strength_band: must be \[lo, hi\] with lo <= hi"):
        load_config({}, {"data.strength_band": [2.0, 1.0]})
    with pytest.raises(ModelLoadError, match="no-such-evaluator"):
        _examples(
            full_export,
            tmp_path / "bad",
            **{"data.strength_band": [0.0, 1.0], "data.strength_evaluators": ["no-such-evaluator"]},
        )
    assert not (tmp_path / "bad" / "examples.jsonl").exists()
