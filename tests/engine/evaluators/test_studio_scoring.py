"""`Studio.score`: one road for scoring (the UI, the CLI, mining and evaluation all call it).

Unusable evaluators are left out with one line each, the rest score together; the mean is the mean of
the members that scored; each evaluator loads once per Studio.
"""

from __future__ import annotations

import pytest

from engine.errors import ModelLoadError
from engine.evaluators.registry import PAPER_EVALUATORS, get_preset
from engine.service import Studio, StudioConfig

CLIP, LONG = "tiny-random-clip", "tiny-random-long-clip"
TEXTS = ["a rabbit wakes up in a meadow", "a red car drives away"]


@pytest.fixture
def no_real_weights(monkeypatch, tmp_path) -> None:
    """The paper's presets have nothing to load from: an empty HF cache, no overrides, no downloads."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.delenv("VIDPROMPTER_ALLOW_DOWNLOAD", raising=False)
    for name in PAPER_EVALUATORS:
        monkeypatch.delenv(get_preset(name).env_var, raising=False)


def studio() -> Studio:
    return Studio(StudioConfig(device="cpu"))


def test_an_unusable_evaluator_is_one_note_and_the_rest_still_score(tiny_env, no_real_weights, sample_video):
    s = studio()
    report = s.score(sample_video, TEXTS, [CLIP, "clip-vit-l-14", LONG])
    assert report.evaluators == [CLIP, LONG]
    assert len(report.notes) == 1
    note = report.notes[0]
    assert note.startswith("clip-vit-l-14 not used: no local weights") and "\n" not in note
    assert "VIDPROMPTER_EVALUATOR_CLIP_VIT_L_14" in note and len(note) < 250
    assert report.random_weights
    for text, row in zip(TEXTS, report.rows, strict=True):
        assert set(row.scores) == {CLIP, LONG}
        alone = {name: s.ensemble.member(name).score(sample_video, [text])[0] for name in (CLIP, LONG)}
        assert row.scores == pytest.approx(alone, abs=1e-4)
        assert row.mean == pytest.approx((alone[CLIP] + alone[LONG]) / 2, abs=1e-4)  # the used members only


def test_unreadable_weights_are_a_note_too(tiny_env, sample_video, tmp_path, monkeypatch):
    bad = tmp_path / "longclip-L.pt"
    bad.write_bytes(b"not a checkpoint")
    monkeypatch.setenv(get_preset("long-clip-l").env_var, str(bad))
    report = studio().score(sample_video, TEXTS[:1], ["long-clip-l", CLIP])
    assert report.evaluators == [CLIP] and set(report.rows[0].scores) == {CLIP}
    assert len(report.notes) == 1 and report.notes[0].startswith("long-clip-l not used: ")
    assert "is not a Long-CLIP checkpoint" in report.notes[0]
    assert report.rows[0].mean == pytest.approx(report.rows[0].scores[CLIP])


def test_nothing_usable_gives_notes_and_no_rows(no_real_weights, sample_video):
    s = studio()
    report = s.score(sample_video, TEXTS, ["long-clip-l", "videoclip-xl"])
    assert report.rows == [] and report.evaluators == [] and len(report.notes) == 2
    with pytest.raises(ModelLoadError) as err:
        s.require_evaluators(["long-clip-l", "videoclip-xl"])
    message = str(err.value)
    assert "long-clip-l not used" in message and "videoclip-xl not used" in message and "\n" not in message


def test_each_evaluator_loads_once_per_studio(tiny_env, sample_video, monkeypatch):
    import engine.evaluators.ensemble as ensemble_module

    loads: list[str] = []
    real = ensemble_module.load_evaluator
    monkeypatch.setattr(
        ensemble_module, "load_evaluator", lambda name, device: loads.append(name) or real(name, device)
    )
    s = studio()
    first = s.score(sample_video, TEXTS, [CLIP, LONG])
    again = s.score(sample_video, TEXTS, [LONG, CLIP])
    assert loads == [CLIP, LONG]
    assert again.evaluators == [LONG, CLIP]
    for a, b in zip(first.rows, again.rows, strict=True):
        assert a.scores == pytest.approx(b.scores) and a.mean == pytest.approx(b.mean)


def test_truncation_is_reported_per_text_and_member(tiny_env, sample_video):
    long_text = "a rabbit " * 60  # ~122 tokens: past CLIP's 77, inside Long-CLIP's 248
    report = studio().score(sample_video, [TEXTS[0], long_text], [CLIP, LONG])
    short, long_ = report.rows
    assert short.truncated == {CLIP: False, LONG: False} and short.notes() == []
    assert long_.truncated == {CLIP: True, LONG: False}
    assert long_.notes() == [f"{CLIP} read only part of this {long_.tokens}-token text"] and 77 < long_.tokens < 248


def test_no_texts_or_no_evaluators_score_nothing(tiny_env, sample_video):
    s = studio()
    assert s.score(sample_video, [], [CLIP]).rows == []
    empty = s.score(sample_video, TEXTS, [])
    assert empty.rows == [] and empty.notes == [] and empty.evaluators == []


def test_the_paper_list_is_the_default_everywhere():
    from engine.evaluate import EvalConfig
    from engine.mining import MiningConfig

    assert StudioConfig().evaluators == PAPER_EVALUATORS == ("clip-vit-l-14", "long-clip-l", "videoclip-xl")
    assert MiningConfig().evaluators == PAPER_EVALUATORS
    assert EvalConfig(models=("m",), out_dir="o").evaluators == PAPER_EVALUATORS
