import json

import numpy as np
import pytest
import torch

from engine.models import load_model
from engine.video import write_video
from tests.toy_data import fake_frames, fake_text
from training.config import load_config
from training.data import Augmenters, load_examples, materialise, micro_batches
from training.logps import encode, flatten, forward_logps

FAKES = Augmenters(text=fake_text, frames=fake_frames)


def _materialise(export, out, **over):
    cfg = load_config({}, {"data.num_frames": 4, "data.frame_size": 56, **over})
    return materialise(export, out, cfg.data, cfg.loss, seed=0, augmenters=FAKES)


def test_examples_carry_every_term_and_stored_videos(full_export, tmp_path):
    path = _materialise(full_export, tmp_path / "d")
    examples = load_examples(path)
    assert len(examples) == 9
    terms = {term for e in examples for term, _, _ in e.pairs}
    assert terms == {"dpo", "response_hallucination", "input_hallucination", "task_hallucination"}
    t3 = next(e for e in examples if e.task == 3)
    # chosen, 2 rejected, y_h, prompt-hallucinated, task 1 and task 2 displaced
    assert [s.task for s in t3.seqs] == [3, 3, 3, 3, 3, 1, 2]
    assert len({s.response for s in t3.seqs[-2:]} | {t3.seqs[0].response}) == 1
    t1 = next(e for e in examples if e.task == 1)
    hall = t1.seqs[[p[2] for p in t1.pairs if p[0] == "input_hallucination"][0]]
    clean = np.load(tmp_path / "d" / "frames" / t1.seqs[0].video)
    assert hall.video != t1.seqs[0].video
    assert np.load(tmp_path / "d" / "frames" / hall.video).shape == clean.shape


def test_materialisation_is_seeded_and_reused(full_export, tmp_path):
    a = _materialise(full_export, tmp_path / "a").read_text()
    b = _materialise(full_export, tmp_path / "b").read_text()
    assert a == b
    mtime = (tmp_path / "a" / "examples.jsonl").stat().st_mtime_ns
    _materialise(full_export, tmp_path / "a")
    assert (tmp_path / "a" / "examples.jsonl").stat().st_mtime_ns == mtime  # manifest matched: reused


def test_micro_batches_cover_epoch_and_shard():
    chunks = micro_batches(10, 3, seed=0, epoch=0)
    assert sorted(i for c in chunks for i in c) == list(range(10))
    assert micro_batches(10, 3, 0, 0) != micro_batches(10, 3, 0, 1)
    r0, r1 = micro_batches(10, 3, 0, 0, rank=0, world=2), micro_batches(10, 3, 0, 0, rank=1, world=2)
    assert len(r0) == len(r1) == 2 and not set(map(tuple, r0)) & set(map(tuple, r1))


def test_flat_batch_layout_and_aligned_forward_match(full_export, tmp_path):
    path = _materialise(full_export, tmp_path / "d")
    examples = load_examples(path)[:3]
    flat = flatten(examples)
    # the toy export reuses one chosen text across tasks, so Task 3's displaced (task 1/2, y_g) rows
    # equal the Task 1/2 chosen rows: scored once
    unique = {s.key() for e in examples for s in e.seqs}
    assert flat.n_examples == 3 and len(flat.seqs) == len(unique) < sum(len(e.seqs) for e in examples)
    assert flat.pairs["dpo"].example.tolist() == [0, 0, 1, 1, 2, 2]
    lm = load_model("tiny-random-vlm")
    frames = tmp_path / "d" / "frames"
    with torch.no_grad():
        plain = forward_logps(lm.model, encode(lm, flat.seqs, frames, align=False), "cpu")
        aligned = forward_logps(lm.model, encode(lm, flat.seqs, frames, align=True), "cpu")
    assert torch.allclose(plain, aligned, atol=1e-4)


def _never(*args):
    raise AssertionError("a hallucination the export already has must not be drawn again")


def test_hallucinations_in_the_export_are_used_as_they_are(tmp_path):
    frames = np.random.default_rng(1).integers(0, 255, (6, 48, 64, 3), dtype=np.uint8)
    clip, other = write_video(frames, tmp_path / "a.mp4"), write_video(frames[:3], tmp_path / "b.mp4")
    base = {"chosen": "A red car drives left.", "video": str(clip), "short_prompt": "a car", "sample_id": 1}
    rows = [
        {**base, "task": 1, "rejected": "a scene", "pair_id": 1},
        {
            **base,
            "task": 1,
            "rejected": "A blue car drives left.",
            "hdpo_term": "response_hallucination",
            "pair_id": 2,
        },
        {**base, "task": 1, "rejected": base["chosen"], "hdpo_term": "input_hallucination", "pair_id": 3}
        | {"rejected_video": str(other)},
        {**base, "task": 3, "rejected": "A red bus drives left.", "hdpo_term": "response_hallucination", "pair_id": 4},
        {**base, "task": 3, "rejected": base["chosen"], "hdpo_term": "input_hallucination", "pair_id": 5}
        | {"rejected_short_prompt": "a cat"},
    ]
    export = tmp_path / "export.jsonl"
    export.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = load_config({}, {"data.num_frames": 4, "data.frame_size": None, "loss.task_hallucination": False})
    t1, t3 = load_examples(materialise(export, tmp_path / "d", cfg.data, cfg.loss, 0, Augmenters(_never, _never)))
    assert [(term, t1.seqs[d].response) for term, _, d in t1.pairs[:2]] == [
        ("dpo", "a scene"),
        ("response_hallucination", "A blue car drives left."),
    ]
    shown = t1.seqs[t1.pairs[2][2]]  # the exported video, decoded with its own metadata (3 frames)
    assert t1.pairs[2][0] == "input_hallucination" and shown.response == base["chosen"]
    assert np.load(tmp_path / "d" / "frames" / shown.video).shape[0] == shown.video_meta["total_frames"] == 3
    assert t1.records["input_hallucination"] == {"source": "export", "pair_id": 3}
    assert [(term, t3.seqs[d].short_prompt, t3.seqs[d].response) for term, _, d in t3.pairs] == [
        ("response_hallucination", "a car", "A red bus drives left."),
        ("input_hallucination", "a cat", base["chosen"]),
    ]


def test_a_video_task_without_its_video_is_one_clear_error(tmp_path):
    row = {"chosen": "A red car.", "rejected": "a scene", "task": 2, "short_prompt": "a car", "sample_id": 7}
    export = tmp_path / "export.jsonl"
    export.write_text(json.dumps(row | {"video": None}) + "\n")
    cfg = load_config({}, {})
    with pytest.raises(ValueError, match=r"export.jsonl: sample 7, task 2: task 2 pairs need the sample's video"):
        materialise(export, tmp_path / "d", cfg.data, cfg.loss, 0, FAKES)
