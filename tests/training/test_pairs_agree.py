"""One pair builder, two callers: training's materialisation and the viewer's reward gaps see the same pairs.

A one-sample export (Tasks 1-3, two rejected each) is materialised with the real augmenters; for each
example, Studio.reward_gaps runs on the same sample, response, rejected responses, config and seed
with the tiny random VLM on CPU. What the Studio scores (captured at response_logps) must be training's
sequences one to one: tasks, texts, frames byte for byte; and each row the pair training compares.
"""

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from engine.models import load_model
from engine.service import Studio, StudioConfig
from engine.video import write_video
from training.config import load_config
from training.data import load_examples, materialise
from training.logps import sequence_logps

CHOSEN = "Two boys in white shirts throw a red ball to the left while a brown dog runs."
SHORT = "boys throw a ball to a dog"
REJECTED = ["a scene", "camera camera"]
MODEL = "tiny-random-vlm"


def _export(folder) -> str:
    frames = np.random.default_rng(3).integers(0, 255, (6, 48, 64, 3), dtype=np.uint8)
    video = str(write_video(frames, folder / "clip.mp4"))
    rows = [
        {"chosen": CHOSEN, "rejected": r, "task": t, "video": video, "short_prompt": SHORT, "sample_id": 1}
        for t in (1, 2, 3)
        for r in REJECTED
    ]
    path = folder / "export.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return video, path


class Spy(Studio):
    """The real Studio, recording what reward_gaps hands to the model."""

    scored: list

    def response_logps(self, requests, responses, model=None):
        logps = super().response_logps(requests, responses, model)
        self.scored = list(zip(requests, responses, logps, strict=True))
        return logps


def _describe(seq) -> dict:
    return {"task": seq.task, "response": seq.response, "short_prompt": seq.short_prompt}


def test_training_pairs_and_viewer_rows_are_the_same_pairs(tmp_path):
    video, export = _export(tmp_path)
    cfg = load_config({}, {"data.num_frames": 4, "data.frame_size": None, "data.task2_input": "both"})
    data = tmp_path / "data"
    examples = load_examples(materialise(export, data, cfg.data, cfg.loss, seed=5))
    assert [e.task for e in examples] == [1, 2, 3]
    studio = Spy(StudioConfig(num_frames=cfg.data.num_frames))
    lm = load_model(MODEL)
    for ex in examples:
        rows = studio.reward_gaps(
            ex.task,
            CHOSEN,
            SHORT,
            video,
            REJECTED,
            MODEL,
            seed=ex.records["seed"],
            config=cfg.data.pair_config(cfg.loss),
        )
        # the sequences, one to one: task, texts, and the frames (original or perturbed) byte for byte
        assert len(studio.scored) == len(ex.seqs)
        for seq, (request, response, _) in zip(ex.seqs, studio.scored, strict=True):
            assert (int(request.task), request.short_prompt, response) == (seq.task, seq.short_prompt, seq.response)
            if seq.video is None:
                assert request.frames is None
            else:
                assert np.load(data / "frames" / seq.video).tobytes() == request.frames.tobytes()
                assert asdict(request.video_meta) == seq.video_meta
        # the pairs: the same terms over the same sequences, in the same order
        assert [r["term"] for r in rows] == [term for term, _, _ in ex.pairs]
        for row, (_, pref, disp) in zip(rows, ex.pairs, strict=True):
            assert {k: row["preferred"][k] for k in ("task", "response", "short_prompt")} == _describe(ex.seqs[pref])
            assert {k: row["displaced"][k] for k in ("task", "response", "short_prompt")} == _describe(ex.seqs[disp])
            assert row["logp_displaced"] == studio.scored[disp][2]
        # and training's own log-prob path scores them as the viewer's does
        with torch.no_grad():
            train_logps = sequence_logps(lm.model, lm, ex.seqs, data / "frames", "cpu").tolist()
        assert [s[2] for s in studio.scored] == pytest.approx(train_logps, abs=1e-3)
    terms = {term for ex in examples for term, _, _ in ex.pairs}
    assert terms == {"dpo", "response_hallucination", "input_hallucination", "task_hallucination"}
    task2 = examples[1].seqs[examples[1].pairs[-1][2]]  # task2_input both: video and prompt hallucinated
    assert task2.video != examples[1].seqs[0].video and task2.short_prompt != SHORT
