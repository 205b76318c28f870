"""Table 3 (engine.t2v.evaluate): clips from the short, base and trained prompts with the same seed, scored
against the SHORT prompt, a resumable report folder, one line for bad input; the paper's EasyAnimate by
default and 100 samples drawn at random with a recorded seed.

The hand-checkable run uses scripted prompt models: "echo" writes the short prompt back (so its clip must equal
the short prompt's clip, frame for frame, though it is generated separately), "scripted" writes a longer text.
The end-to-end run goes through the CLI with tiny-random-lm, tiny-random-cogvideox and tiny-random-clip.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from annotations.db import open_db
from annotations.store import upsert_sample
from engine.cli import main
from engine.errors import InputError
from engine.evaluators.registry import get_preset
from engine.evaluators.tiny import ensure_tiny_evaluator
from engine.service import Studio
from engine.t2v.eval_config import VideoEvalConfig
from engine.t2v.evaluate import fit_prompt
from engine.video import load_video

EVAL = "tiny-random-clip"
T2V = "tiny-random-cogvideox"
SHORTS = ("a dog runs on the beach", "a red car drives in the city")


class Scripted:
    """A pinned prompt model: its Task-3 answer is a function of the short prompt; counts its calls."""

    random_weights = False

    def __init__(self, name: str, write) -> None:
        self.model_name = name
        self.write = write
        self.calls = 0

    def generate(self, requests, params):
        self.calls += len(requests)
        return [[self.write(r.short_prompt)] for r in requests]


def echo() -> Scripted:
    return Scripted("echo", lambda short: short)


def scripted(name: str = "scripted", extra: str = "at sunset, camera close view") -> Scripted:
    return Scripted(name, lambda short: f"{short} {extra}")


@pytest.fixture(autouse=True)
def _no_vbench(no_vbench):
    """Every run here without the vbench package, installed or not: substitutes and absent rows only."""


@pytest.fixture
def db_url(tmp_path, sample_video, monkeypatch) -> str:
    monkeypatch.setenv(get_preset(EVAL).env_var, str(ensure_tiny_evaluator(EVAL, root=tmp_path / "ev")))
    url = f"sqlite:///{tmp_path / 'studio.db'}"
    db = open_db(url)
    upsert_sample(db, None, SHORTS[0], "test")  # text-only
    upsert_sample(db, str(sample_video), SHORTS[1], "test")
    upsert_sample(db, str(sample_video), None, "test")  # no short prompt: nothing to beautify
    upsert_sample(db, None, "a train only prompt", "train")
    db.dispose()
    return url


def studio_with(*models: Scripted) -> Studio:
    return Studio(backends={m.model_name: m for m in models})


def config(out: Path, **kw) -> VideoEvalConfig:
    return VideoEvalConfig(**({"base": "echo", "trained": "scripted", "out_dir": str(out), "t2v": T2V} | kw))


def run(studio: Studio, db_url: str, cfg: VideoEvalConfig):
    db = open_db(db_url)
    try:
        return studio.evaluate_video(db, cfg, progress=False)
    finally:
        db.dispose()


def frames_of(out: Path, clip: str) -> np.ndarray:
    return load_video(out / clip, num_frames=100)[0]


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_three_sources_same_seed_scored_against_the_short_prompt(db_url, tmp_path):
    out = tmp_path / "report"
    studio = studio_with(echo(), scripted())
    result = run(studio, db_url, config(out, evaluators=(EVAL,), seed=7))
    rows = {(r.sample_id, r.source): r for r in result.rows}
    assert len(rows) == 6 and all(r.made and r.status == "ok" and r.seed == 7 for r in rows.values())
    ids = sorted({sid for sid, _ in rows})
    assert [rows[(i, "short")].prompt for i in ids] == list(SHORTS)  # the sample without a short prompt is out
    for i in ids:
        short, base, trained = (rows[(i, s)] for s in ("short", "base", "trained"))
        assert base.prompt == short.prompt and trained.prompt == f"{short.prompt} at sunset, camera close view"
        assert base.clip != short.clip  # two files, generated separately ...
        assert np.array_equal(frames_of(out, base.clip), frames_of(out, short.clip))  # ... same prompt + seed
        assert not np.array_equal(frames_of(out, trained.clip), frames_of(out, short.clip))
        # Consistency is against the SHORT prompt, for the trained clip too (not against its own prompt).
        own = studio.score(out / trained.clip, [short.short_prompt, trained.prompt], [EVAL]).rows
        assert trained.consistency[EVAL] == pytest.approx(own[0].scores[EVAL], abs=1e-4)
        assert trained.consistency[EVAL] != pytest.approx(own[1].scores[EVAL], abs=1e-3)
        assert base.consistency == pytest.approx(short.consistency)
        assert base.quality == pytest.approx(short.quality)
        assert set(short.quality) >= {"subject_consistency", "temporal_smoothness", "motion_mean_flow", "dynamic"}

    table = read_csv(out / "table3.csv")
    assert table[0] == ["key", "dimension", "short", "base", "trained", "scorer"]
    by_key = {r[0]: r for r in table[1:]}
    assert by_key["clips"][2:5] == ["2", "2", "2"]
    mean_short = np.mean([rows[(i, "short")].consistency[EVAL] for i in ids])
    assert float(by_key[f"consistency:{EVAL}"][2]) == pytest.approx(mean_short, rel=1e-5)
    assert by_key[f"consistency:{EVAL}"][2] == by_key[f"consistency:{EVAL}"][3]  # short == base: the same clips
    assert by_key["subject_consistency"][2] and by_key["dynamic_degree"][2] in ("0", "0.5", "1")
    assert by_key["subject_consistency"][5] == "substitute" and by_key["imaging_quality"][2:] == ["", "", "", "absent"]
    assert float(by_key["prompt_words"][4]) == pytest.approx(np.mean([len(s.split()) + 5 for s in SHORTS]))

    md = (out / "table3.md").read_text()
    assert "| Dimension | Short prompt | Base (echo) | Trained (scripted) |" in md
    assert "random weights — pipeline check only" in md
    links = [r.clip for r in result.rows]
    assert all(f"]({clip})" in md and (out / clip).is_file() for clip in links)  # relative links that resolve
    clips_csv = read_csv(out / "clips.csv")
    assert len(clips_csv) == 7 and clips_csv[0][:3] == ["sample_id", "source", "model"]


def test_rerun_reuses_clips_and_prompts_and_gives_the_same_report(db_url, tmp_path, monkeypatch):
    from engine.t2v.backend import T2VPipeline

    out = tmp_path / "report"
    base, trained = echo(), scripted()
    first = run(studio_with(base, trained), db_url, config(out, evaluators=(EVAL,)))
    table = (out / "table3.csv").read_text()
    calls = {"n": 0}
    real = T2VPipeline.generate

    def counting(self, *args, **kwargs):
        calls["n"] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(T2VPipeline, "generate", counting)
    again = run(studio_with(base, trained), db_url, config(out, evaluators=(EVAL,)))
    assert calls["n"] == 0 and (base.calls, trained.calls) == (2, 2)  # nothing generated twice
    assert all(r.reused for r in again.rows) and not any(r.reused for r in first.rows)
    assert (out / "table3.csv").read_text() == table
    assert "6 of 6 reused" in (out / "table3.md").read_text()
    # Another trained model: only its two clips are new; the short and base clips are reused.
    other = scripted("scripted-v2", extra="in the rain")
    third = run(studio_with(base, other), db_url, config(out, trained="scripted-v2", evaluators=(EVAL,)))
    assert calls["n"] == 2 and [r.source for r in third.rows if not r.reused] == ["trained", "trained"]


def test_prompts_over_the_encoder_limit_are_cut_or_skipped(db_url, tmp_path):
    long_words = " ".join(["dog"] * 400)  # one T5 token each: over CogVideoX's 226
    wordy = Scripted("wordy", lambda short: f"{short} {long_words}")
    cut = run(studio_with(echo(), wordy), db_url, config(tmp_path / "cut", trained="wordy", evaluators=(EVAL,)))
    trained = [r for r in cut.rows if r.source == "trained"]
    assert all(r.made and r.status.startswith("cut to ") and "226-token encoder" in r.status for r in trained)
    assert all(len(r.prompt.split()) < 400 for r in trained)
    skip_cfg = config(tmp_path / "skip", trained="wordy", evaluators=(EVAL,), long_prompts="skip")
    skipped = run(studio_with(echo(), wordy), db_url, skip_cfg)
    assert [r.status.split(":")[0] for r in skipped.rows if r.source == "trained"] == ["skipped", "skipped"]
    assert skipped.summary["clips"] == {"short": 2.0, "base": 2.0, "trained": 0.0}
    assert skipped.summary[f"consistency:{EVAL}"]["trained"] is None
    assert "2 clip(s) not made (trained 2)" in (tmp_path / "skip" / "table3.md").read_text()


def test_fit_prompt_by_hand():
    count = lambda text: len(text.split()) + 1  # noqa: E731 - one token per word plus the end token
    assert fit_prompt("a b c", count, 4) == ("a b c", False)
    assert fit_prompt("a b c d e f", count, 4) == ("a b c", True)
    with pytest.raises(InputError, match="not even the first word"):
        fit_prompt("a b", count, 1)


def test_end_to_end_through_the_cli_with_tiny_models(db_url, tmp_path, capsys):
    out = tmp_path / "t3"
    argv = ["evaluate-video", "--db", db_url, "--base", "tiny-random-lm", "--trained", "tiny-random-lm"]
    argv += ["--t2v", T2V, "--evaluator", EVAL, "--limit", "1", "--max-new-tokens", "12", "--seed", "3"]
    assert main([*argv, "--out", str(out), "--json", "--no-progress"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert (payload["clips"], payload["made"], payload["reused"]) == (3, 3, 0)
    assert set(payload["summary"][f"consistency:{EVAL}"]) == {"short", "base", "trained"}
    means = payload["summary"][f"consistency:{EVAL}"]
    assert means["base"] == means["trained"]  # one greedy model twice: the same prompt, seed and clip
    assert payload["seconds"]["per_sample"] > 0 and set(payload["files"]) == {"table_md", "table_csv", "clips_csv"}
    assert len(list((out / "clips").glob("*.mp4"))) == 3
    assert not [p for p in out.rglob(".*") if ".part" in p.name or p.name.endswith(".tmp")]  # no temp file left


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--t2v", "no-such-t2v"], "unknown text-to-video model 'no-such-t2v'"),
        (["--t2v", "cogvideox-2b"], "set VIDPROMPTER_T2V_COGVIDEOX_2B="),
        (["--t2v", T2V, "--limit", "0"], "--num-samples must be >= 1, got 0"),
        (["--t2v", T2V, "--num-samples", "0"], "--num-samples must be >= 1, got 0"),
        ([], "set VIDPROMPTER_T2V_EASYANIMATE_V5_1_7B="),  # no --t2v: the paper's EasyAnimate, absent here
        (["--t2v", T2V, "--split", "val"], "no sample with a short prompt in split 'val'"),
        (["--t2v", T2V, "--frames", "10"], "10 frames: tiny-random-cogvideox makes clips of 8k+1 frames"),
        (["--t2v", T2V, "--trained", "no-such-model"], "no-such-model"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(db_url, tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("VIDPROMPTER_T2V_COGVIDEOX_2B", raising=False)
    monkeypatch.delenv("VIDPROMPTER_T2V_EASYANIMATE_V5_1_7B", raising=False)
    monkeypatch.delenv("VIDPROMPTER_ALLOW_DOWNLOAD", raising=False)
    out = tmp_path / "never"
    argv = ["evaluate-video", "--db", db_url, "--base", "tiny-random-lm", "--trained", "tiny-random-lm"]
    argv += ["--evaluator", EVAL, "--out", str(out), "--no-progress", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not out.exists()


def test_out_is_a_file(db_url, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file; name a folder"):
        run(studio_with(echo(), scripted()), db_url, config(tmp_path / "file", evaluators=(EVAL,)))


# -- the paper's setting (section 4.5): EasyAnimate, 100 samples drawn at random with a recorded seed ----------
def test_the_default_t2v_model_is_the_papers_easyanimate():
    from engine.cli import build_parser
    from engine.t2v.presets import resolve_t2v

    default = VideoEvalConfig(base="a", trained="b", out_dir="o")
    assert resolve_t2v(default.t2v).family == "easyanimate" and not resolve_t2v(default.t2v).random_weights
    assert default.num_samples == 100 and default.sample_seed == 0
    args = build_parser().parse_args(["evaluate-video", "--base", "a", "--trained", "b", "--out", "o"])
    assert (args.t2v, args.num_samples, args.sample_seed) == (default.t2v, 100, 0)


class Sample:
    def __init__(self, id: int) -> None:
        self.id = id


def test_the_draw_is_seeded_random_not_the_first_by_id():
    from engine.t2v.evaluate import draw_samples

    pool = [Sample(i) for i in range(1, 201)]
    ids = lambda picked: [s.id for s in picked]  # noqa: E731
    first = ids(draw_samples(pool, 100, seed=0))
    assert len(first) == 100 == len(set(first)) and first == sorted(first)
    assert first != list(range(1, 101))  # not simply the first 100 by id
    assert ids(draw_samples(list(reversed(pool)), 100, seed=0)) == first  # the set of ids decides, not the order
    assert ids(draw_samples(pool, 100, seed=1)) != first
    assert ids(draw_samples(pool, 300, seed=0)) == ids(draw_samples(pool, None, seed=5)) == list(range(1, 201))


@pytest.fixture
def many_db_url(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv(get_preset(EVAL).env_var, str(ensure_tiny_evaluator(EVAL, root=tmp_path / "ev")))
    url = f"sqlite:///{tmp_path / 'many.db'}"
    db = open_db(url)
    for i in range(12):
        upsert_sample(db, None, f"a dog number {i} runs", "test")
    db.dispose()
    return url


def test_the_drawn_ids_and_seed_are_recorded(many_db_url, tmp_path):
    from annotations.store import list_samples
    from engine.t2v.evaluate import draw_samples

    db = open_db(many_db_url)
    pool = list_samples(db, "test")
    db.dispose()
    expected = [s.id for s in draw_samples(pool, 3, seed=5)]
    assert expected != sorted(s.id for s in pool)[:3]
    out = tmp_path / "drawn"
    result = run(
        studio_with(echo(), scripted()), many_db_url, config(out, evaluators=(EVAL,), num_samples=3, sample_seed=5)
    )
    assert sorted({r.sample_id for r in result.rows}) == expected
    recorded = json.loads((out / "samples.json").read_text())
    assert recorded == {"split": "test", "sample_seed": 5, "num_samples": 3, "pool": 12, "ids": expected}
    head = (out / "table3.md").read_text().split("\n| Dimension")[0]
    ids = ", ".join(map(str, expected))
    assert (
        "3 sample(s) drawn at random from the 12 with a short prompt" in head and f"(sample seed 5; ids {ids};" in head
    )
    assert result.as_dict()["samples"]["ids"] == expected


def test_the_report_labels_substitutes_and_names_what_vbench_lacks_in_one_line(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path / "vbench-cache"))
    out = tmp_path / "labels"
    result = run(studio_with(echo(), scripted()), db_url, config(out, evaluators=(EVAL,)))
    md = (out / "table3.md").read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines() if line.startswith("| ")}
    for name in ("Motion Smoothness", "Dynamic Degree", "Subject Consistency", "Background Consistency"):
        label = next(k for k in rows if k.startswith(name))
        assert "(substitute, not VBench:" in label, label
        assert "–" not in rows[label]  # a value in every column
    for name in ("Aesthetic Quality", "Imaging Quality"):
        label = next(k for k in rows if k.startswith(name))
        assert "(absent:" in label and rows[label].endswith("| – | – | – |")
    assert next(k for k in rows if k.startswith("Temporal Flickering")).startswith("Temporal Flickering (substitute")
    missing = [line for line in md.splitlines() if "VBench's own code not run for" in line]
    assert len(missing) == 1
    line = missing[0]
    for name in ("Motion Smoothness (substitute)", "Aesthetic Quality (absent)", "Imaging Quality (absent)"):
        assert name in line
    assert "pip install --no-deps vbench==0.1.5" in line and str(tmp_path / "vbench-cache") in line
    for file in ("amt_model/amt-s.pth", "raft_model/models/raft-things.pth", "clip_model/ViT-B-32.pt"):
        assert file in line
    assert "sa_0_4_vit_l_14_linear.pth" in line and "musiq_spaq_ckpt-358bb6af.pth" in line
    assert "dino_vitbase16_pretrain.pth" in line
    assert result.as_dict()["vbench"]["imaging_quality"] == "absent" and result.as_dict()["vbench_missing"] == line[2:]
    scorers = {r[0]: r[5] for r in read_csv(out / "table3.csv")[1:]}
    assert scorers["motion_smoothness"] == "substitute" and scorers["aesthetic_quality"] == "absent"
    assert scorers[f"consistency:{EVAL}"] == "ours"
