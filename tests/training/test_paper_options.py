"""Where the paper is silent or a baseline differs: mDPO's area crop (official RandomResizedCrop(scale=(0.01,
0.2))), one box per clip or per frame, Task-3 input hallucination as a named option, the frame counts, and the
presets' numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.hallucination.pairs import PairConfig, build_pairs
from engine.hallucination.video import (
    VideoHallucinationConfig,
    hallucinate_frames,
    paste_patches,
    random_crop,
    random_resized_crop,
)
from engine.service import StudioConfig
from engine.video import DEFAULT_NUM_FRAMES
from training.config import ConfigError, load_config
from training.data import load_examples, materialise

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _frames(t=6, h=60, w=80, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _rng(seed=0):
    return np.random.Generator(np.random.PCG64(seed))


def test_area_crop_keeps_1_to_20_percent_of_the_area_in_mdpo_aspect_ratios():
    frames = _frames(h=224, w=224)
    for seed in range(200):
        out, (rec,) = random_resized_crop(frames, _rng(seed), (0.01, 0.2))
        ch, cw = rec["size"]
        area = ch * cw / (224 * 224)
        assert 0.009 <= area <= 0.202 and 0.7 <= cw / ch <= 1.45  # rounding of the sides to whole pixels
        assert out.shape == frames.shape and out.dtype == np.uint8
    # the old mild crop (80-100 % of each side) keeps >= 64 % of the area
    _, (mild,) = random_crop(frames, _rng(0), (0.8, 1.0))
    assert mild["size"][0] * mild["size"][1] / 224**2 >= 0.64


def test_area_crop_resizes_bilinearly_like_torchvision():
    from torchvision.transforms.v2 import functional as TF

    frames = _frames(2, 48, 64)
    out, (rec,) = random_resized_crop(frames, _rng(3), (0.01, 0.2))
    (x, y), (ch, cw) = rec["xy"], rec["size"]
    ref = TF.resized_crop(torch.from_numpy(frames).permute(0, 3, 1, 2), y, x, ch, cw, [48, 64], antialias=True)
    assert np.abs(out.astype(int) - ref.permute(0, 2, 3, 1).numpy().astype(int)).max() <= 1  # uint8 rounding


def test_one_box_per_clip_or_per_frame():
    frames = _frames()
    _, clip = random_resized_crop(frames, _rng(1), (0.01, 0.2))
    _, per_frame = random_resized_crop(frames, _rng(1), (0.01, 0.2), per_frame=True)
    assert len(clip) == 1 and len(per_frame) == 6 and len({(tuple(r["xy"]), tuple(r["size"])) for r in per_frame}) > 1
    _, keep_frames = random_crop(frames, _rng(1), (0.5, 0.9), per_frame=True)
    assert [r["frame"] for r in keep_frames] == list(range(6))
    _, pasted = paste_patches(frames, _rng(2), (1 / 3, 1 / 2), per_frame=False)
    boxes = {(tuple(r["size"]), tuple(r["src_xy"]), tuple(r["dst_xy"])) for r in pasted}
    assert len(boxes) == 1 and len(pasted) == 6  # one box for the clip, still a source frame per frame
    _, default = paste_patches(frames, _rng(2), (1 / 3, 1 / 2))
    assert len({(tuple(r["size"]), tuple(r["dst_xy"])) for r in default}) > 1  # today's default: per frame


def test_defaults_keep_todays_draws():
    """The new options default to the old behaviour, draw for draw (materialised data does not change)."""
    frames = _frames()
    config = VideoHallucinationConfig(shuffle=True, paste_ratio=(1 / 3, 1 / 2), crop_keep=(0.8, 1.0))
    explicit = VideoHallucinationConfig(
        shuffle=True, paste_ratio=(1 / 3, 1 / 2), crop_keep=(0.8, 1.0), crop_per_frame=False, paste_per_frame=True
    )
    a, ops_a = hallucinate_frames(frames, config, seed=4)
    b, ops_b = hallucinate_frames(frames, explicit, seed=4)
    assert np.array_equal(a, b) and ops_a == ops_b
    assert [op["op"] for op in ops_a] == ["shuffle", "crop"] + ["paste"] * 6 and "frame" not in ops_a[1]
    with pytest.raises(Exception, match="set one of them"):
        VideoHallucinationConfig(crop_keep=(0.8, 1.0), crop_area=(0.01, 0.2))


def test_task3_input_none_drops_the_text_only_conditional_term():
    args = (3, "a car drives", None, "A red car drives left.", ["a scene"])
    on = build_pairs(*args, PairConfig(terms=("dpo", "input_hallucination")), seed=0)
    off = build_pairs(*args, PairConfig(terms=("dpo", "input_hallucination"), task3_input="none"), seed=0)
    assert [t for t, _, _ in on.pairs] == ["dpo", "input_hallucination"]
    assert [t for t, _, _ in off.pairs] == ["dpo"]


def test_mdpo_preset_materialises_area_crops_and_no_task3_term(full_export, tmp_path):
    cfg = load_config(CONFIGS / "baselines" / "mdpo.yaml", {"data.num_frames": 4, "data.frame_size": 56})
    examples = load_examples(materialise(full_export, tmp_path / "d", cfg.data, cfg.loss, seed=0))
    for e in examples:
        terms = [t for t, _, _ in e.pairs]
        if e.task == 3:
            assert "input_hallucination" not in terms
            continue
        assert "input_hallucination" in terms
        (crop,) = e.records["input_hallucination_video"]  # one box per clip, nothing else
        ch, cw = crop["size"]
        _, h, w, _ = np.load(tmp_path / "d" / "frames" / e.seqs[0].video).shape
        assert crop["op"] == "crop" and 0.009 <= ch * cw / (h * w) <= 0.21
        assert "input_hallucination_prompt" not in e.records  # task2_input: video


def test_reading_of_the_paper_options_and_their_defaults():
    hdpo = load_config(CONFIGS / "hdpo.yaml")
    pairs = hdpo.data.pair_config(hdpo.loss)
    assert (pairs.task2_input, pairs.task3_input) == ("video", "prompt")
    assert (pairs.crop_per_frame, pairs.paste_per_frame) == (False, True)
    # one frame count: training, mining and evaluation all read engine.video.DEFAULT_NUM_FRAMES
    assert hdpo.data.num_frames == StudioConfig().num_frames == DEFAULT_NUM_FRAMES == 8
    over = load_config(CONFIGS / "hdpo.yaml", ["data.task2_input=both", "data.crop_per_frame=true"])
    assert over.data.pair_config(over.loss).task2_input == "both" and over.data.pair_config(over.loss).crop_per_frame
    with pytest.raises(ConfigError, match="data.task3_input"):
        load_config({}, ["data.task3_input=video"])
    with pytest.raises(ConfigError, match="data.crop_area"):
        load_config({}, ["data.crop_area=[0.01, 0.2]", "data.crop_keep=[0.8, 1.0]"])


@pytest.mark.parametrize("preset", sorted((CONFIGS / "ablations").glob("input-crop-paste-*.yaml")))
def test_ablation_ratios_are_exact_thirds(preset):
    cfg = load_config(preset)
    for bound in cfg.data.paste_ratio:
        assert bound in (0.25, 0.5, 1.0) or bound == 1 / 3  # 1/3 as the same double hdpo.yaml uses
    if "1_3-1_2" in preset.name:
        assert cfg.data.pair_config(cfg.loss).paste_ratio == PairConfig().paste_ratio
