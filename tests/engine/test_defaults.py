"""One default per setting (issue 22 item 8 and item 5): the budget and the frame count are stated once."""

from __future__ import annotations

import gradio as gr

from engine.cli import build_parser
from engine.service import StudioConfig
from engine.types import DEFAULT_MAX_NEW_TOKENS, GenerationParams
from engine.video import DEFAULT_NUM_FRAMES
from training.config import DataConfig


def test_one_generation_budget_for_params_cli_and_ui():
    from ui.task_tabs import _settings

    assert GenerationParams().max_new_tokens == DEFAULT_MAX_NEW_TOKENS
    args = build_parser().parse_args(["generate", "--task", "3", "--prompt", "a cat"])
    assert args.max_new_tokens == DEFAULT_MAX_NEW_TOKENS
    with gr.Blocks():
        *_, max_tokens = _settings("beautify")
    assert max_tokens.value == DEFAULT_MAX_NEW_TOKENS


def test_one_frame_count_for_training_the_studio_and_every_model_cli():
    assert DataConfig().num_frames == StudioConfig().num_frames == DEFAULT_NUM_FRAMES
    parser = build_parser()
    for argv in (
        ["generate", "--task", "1", "--video", "x.mp4"],
        ["mine-pairs"],
        ["evaluate", "--model", "m", "--out", "o"],
        ["teacher"],
    ):
        assert parser.parse_args(argv).num_frames == DEFAULT_NUM_FRAMES
    assert parser.parse_args(["mine-pairs", "--num-frames", "16"]).num_frames == 16
