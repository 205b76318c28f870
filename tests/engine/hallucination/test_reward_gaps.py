"""Studio.reward_gaps: the HDPO pairs of one response (from build_pairs), scored with the tiny random VLM."""

import numpy as np
import pytest

from engine.errors import InputError
from engine.hallucination import PairConfig, build_pairs
from engine.service import Studio, StudioConfig
from engine.tasks import Request
from engine.video import write_video

CHOSEN = "Two boys in white shirts throw a red ball to the left."
PROMPT = "boys throw a ball"
REJECTED = ["a scene", "camera camera"]
MODEL = "tiny-random-vlm"


@pytest.fixture(scope="module")
def studio() -> Studio:
    return Studio(StudioConfig(num_frames=4))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> str:
    frames = np.random.default_rng(0).integers(0, 255, (6, 48, 64, 3), dtype=np.uint8)
    return str(write_video(frames, tmp_path_factory.mktemp("clip") / "clip.mp4"))


def test_task3_with_a_video_scores_every_term_including_the_task_displaced_rows(studio, clip):
    rows = studio.reward_gaps(3, CHOSEN, PROMPT, video=clip, rejected=REJECTED, model=MODEL, seed=4)
    assert [r["term"] for r in rows] == ["dpo", "dpo", "response_hallucination", "input_hallucination"] + [
        "task_hallucination"
    ] * 2
    assert [r["condition"] for r in rows] == [
        "rejected response 1",
        "rejected response 2",
        "response hallucination",
        "input hallucination (prompt)",
        "task displaced: task 1",
        "task displaced: task 2",
    ]
    chosen = {"task": 3, "response": CHOSEN, "short_prompt": PROMPT, "frames": "none"}
    assert all(r["preferred"] == chosen for r in rows)
    assert rows[4]["displaced"] == {"task": 1, "response": CHOSEN, "short_prompt": None, "frames": "original"}
    assert rows[5]["displaced"] == {"task": 2, "response": CHOSEN, "short_prompt": PROMPT, "frames": "original"}
    for r in rows:
        assert r["gap"] == pytest.approx(r["logp_preferred"] - r["logp_displaced"])
    # the preferred log-prob is the model's own score of (Task 3 on the prompt, the chosen response)
    (own,) = studio.response_logps([Request(3, PROMPT)], [CHOSEN], model=MODEL)
    assert rows[0]["logp_preferred"] == pytest.approx(own, abs=1e-4)
    frames, meta = studio.load_frames(clip)
    (task1,) = studio.response_logps([Request(1, None, frames, meta)], [CHOSEN], model=MODEL)
    assert rows[4]["logp_displaced"] == pytest.approx(task1, abs=1e-4)


def test_task1_rows_are_response_and_video_hallucination_drawn_as_the_builder_draws_them(studio, clip):
    rows = studio.reward_gaps(1, CHOSEN, None, video=clip, model=MODEL, seed=9)
    assert [r["condition"] for r in rows] == ["response hallucination", "input hallucination (video)"]
    frames, meta = studio.load_frames(clip)
    built = build_pairs(1, None, frames, CHOSEN, [], PairConfig(), seed=9)
    y_h = built.seqs[1].response
    assert rows[0]["displaced"]["response"] == y_h != CHOSEN
    (perturbed,) = studio.response_logps([Request(1, None, built.perturbed_frames, meta)], [CHOSEN], model=MODEL)
    assert rows[1]["logp_displaced"] == pytest.approx(perturbed, abs=1e-4)
    assert rows == studio.reward_gaps(1, CHOSEN, None, video=clip, model=MODEL, seed=9)  # seeded


def test_config_switches_terms_and_ratios(studio):
    rows = studio.reward_gaps(
        3, CHOSEN, PROMPT, rejected=REJECTED, model=MODEL, config=PairConfig(terms=("dpo",), num_rejected=1)
    )
    assert [(r["term"], r["displaced"]["response"]) for r in rows] == [("dpo", "a scene")]


def test_bad_input_is_one_clear_line(studio, clip):
    cases = [
        (lambda: studio.reward_gaps(1, CHOSEN, None, model=MODEL), "task 1 needs a video"),
        (lambda: studio.reward_gaps(3, CHOSEN, "  ", model=MODEL), "task 3 needs a short prompt"),
        (lambda: studio.reward_gaps(3, "", PROMPT, model=MODEL), "need the chosen response"),
        (lambda: studio.reward_gaps(7, CHOSEN, PROMPT, model=MODEL), "unknown task 7"),
    ]
    for call, message in cases:
        with pytest.raises(InputError, match=message):
            call()
