"""engine.t2v.vbench_dims: each Table-3 dimension runs VBench's own code where the package and its weights are
here, else our labelled substitute, else it is absent; one line says what is missing and where it goes.

Tests that run VBench's code need the `vbench` package (the `vbench_on_path` fixture skips without it). No test
downloads weights: those with "weights present" write small random ones in VBench's layout in a temp folder.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.errors import ModelLoadError
from engine.t2v.quality import subject_consistency, temporal_smoothness
from engine.t2v.vbench_dims import BY_KEY, DIMENSIONS, VBENCH_INSTALL, VBenchScorer, missing_line, plan
from engine.video import write_video_atomic

TABLE3 = [
    "motion_smoothness",
    "dynamic_degree",
    "aesthetic_quality",
    "imaging_quality",
    "subject_consistency",
    "background_consistency",
]


def moving_clip(path: Path, frames: int = 9, size: int = 64) -> Path:
    """A bright square sliding right over a noisy background: uint8 (T, size, size, 3) written as mp4."""
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 30, (frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        clip[t, 10:30, 4 + 3 * t : 24 + 3 * t] = 220
    return write_video_atomic(clip, path, fps=8)


def cv2_frames(path: Path) -> np.ndarray:
    """Every frame as VBench reads it (cv2, BGR: the channel order does not change these metrics)."""
    video, frames = cv2.VideoCapture(str(path)), []
    while (ok := video.read())[0]:
        frames.append(ok[1])
    video.release()
    return np.stack(frames)


def needs_module(name: str) -> None:
    from engine.t2v.vbench_dims import import_error

    if (why := import_error(name)) is not None:
        pytest.skip(why)


# -- without the package ------------------------------------------------------------------------------------
def test_the_papers_six_dimensions_are_all_routed(no_vbench, tmp_path):
    assert [d.key for d in DIMENSIONS if d.table3] == TABLE3
    routes = {r.dimension.key: r for r in plan(evaluator="tiny-random-clip", cache_dir=tmp_path)}
    assert {k: r.kind for k, r in routes.items()} == {
        "motion_smoothness": "substitute",
        "dynamic_degree": "substitute",
        "aesthetic_quality": "absent",
        "imaging_quality": "absent",
        "subject_consistency": "substitute",
        "background_consistency": "substitute",
        "temporal_flickering": "substitute",
    }
    assert all("vbench does not import" in r.why for r in routes.values())
    assert (
        "substitute, not VBench: tiny-random-clip frame features instead of DINO"
        in routes["subject_consistency"].label
    )
    assert routes["imaging_quality"].label.startswith("Imaging Quality, 0-100 (absent")


def test_without_a_frame_model_the_feature_substitutes_are_absent(no_vbench, tmp_path):
    routes = {r.dimension.key: r.kind for r in plan(evaluator=None, cache_dir=tmp_path)}
    assert routes["subject_consistency"] == routes["background_consistency"] == "absent"
    assert routes["dynamic_degree"] == "substitute"


def test_the_missing_line_is_one_line_with_the_install_and_the_files(no_vbench, tmp_path):
    (tmp_path / "raft_model" / "models").mkdir(parents=True)
    (tmp_path / "raft_model" / "models" / "raft-things.pth").write_bytes(b"x")  # present: not asked for again
    line = missing_line(plan(evaluator="e", cache_dir=tmp_path), tmp_path)
    assert line is not None and "\n" not in line
    assert line.startswith("VBench's own code not run for: Motion Smoothness (substitute), Dynamic Degree")
    assert VBENCH_INSTALL in line and str(tmp_path) in line
    assert "amt_model/amt-s.pth (Motion Smoothness)" in line and "raft-things.pth" not in line
    assert "clip_model/ViT-L-14.pt, aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth (Aesthetic Quality)" in line
    assert "Temporal Flickering (substitute)" in line  # weight-free: only the package is missing
    assert missing_line([], tmp_path) is None


def test_the_scorer_with_nothing_routed_to_vbench_scores_nothing(no_vbench, tmp_path):
    scorer = VBenchScorer(plan(evaluator="e", cache_dir=tmp_path), tmp_path)
    scorer.load()
    assert scorer.keys == [] and scorer.score(tmp_path / "any.mp4") == {}


# -- with the package: VBench's own code --------------------------------------------------------------------
def test_weight_free_temporal_flickering_runs_vbench_code(vbench_on_path, tmp_path, monkeypatch):
    needs_module("vbench.temporal_flickering")
    import vbench.temporal_flickering as tf

    calls = []
    real = tf.cal_score
    monkeypatch.setattr(tf, "cal_score", lambda path: calls.append(path) or real(path))
    empty = tmp_path / "no-weights"
    routes = {r.dimension.key: r for r in plan(evaluator="e", cache_dir=empty)}
    assert routes["temporal_flickering"].kind == "vbench" and routes["temporal_flickering"].why == ""
    assert routes["dynamic_degree"].kind == "substitute" and "weights missing" in routes["dynamic_degree"].why
    assert routes["temporal_flickering"].label.startswith("Temporal Flickering (VBench's code:")

    clip = moving_clip(tmp_path / "c.mp4")
    scores = VBenchScorer([routes["temporal_flickering"]], empty, device="cpu").score(clip)
    assert calls == [str(clip)] and set(scores) == {"temporal_flickering"}
    frames = cv2_frames(clip).astype(np.float64)
    by_hand = (255.0 - np.mean([np.abs(b - a).mean() for a, b in zip(frames[:-1], frames[1:], strict=True)])) / 255
    assert scores["temporal_flickering"] == pytest.approx(by_hand, abs=1e-6)  # VBench: float32
    assert temporal_smoothness(cv2_frames(clip)) == pytest.approx(by_hand, abs=1e-9)  # our substitute: same formula


def test_dynamic_degree_with_weights_present_runs_vbench_raft(vbench_on_path, tmp_path, monkeypatch):
    needs_module("vbench.dynamic_degree")
    import torch
    from easydict import EasyDict
    from vbench.dynamic_degree import DynamicDegree
    from vbench.third_party.RAFT.core.raft import RAFT

    torch.manual_seed(0)  # random RAFT weights in VBench's layout (its checkpoint keys carry "module.")
    weights = tmp_path / "cache" / "raft_model" / "models" / "raft-things.pth"
    weights.parent.mkdir(parents=True)
    raft = RAFT(EasyDict(small=False, mixed_precision=False, alternate_corr=False))
    torch.save({f"module.{k}": v for k, v in raft.state_dict().items()}, weights)
    (route,) = plan(cache_dir=tmp_path / "cache", dimensions=[BY_KEY["dynamic_degree"]])
    assert route.kind == "vbench"

    calls = []
    real = DynamicDegree.infer
    monkeypatch.setattr(DynamicDegree, "infer", lambda self, path: calls.append(path) or real(self, path))
    clip = moving_clip(tmp_path / "c.mp4")
    scores = VBenchScorer([route], tmp_path / "cache", device="cpu").score(clip)
    direct = DynamicDegree(
        EasyDict(model=str(weights), small=False, mixed_precision=False, alternate_corr=False), "cpu"
    )
    assert calls[0] == str(clip) and scores == {"dynamic_degree": float(direct.infer(str(clip)))}


HUBCONF = """
import torch


def dino_vitb16(pretrained=True, **kwargs):
    if pretrained:
        raise RuntimeError("would download the DINO weights")
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 16, stride=16), torch.nn.Flatten(), torch.nn.LazyLinear(16))
"""


def test_subject_consistency_with_a_local_dino_runs_vbench_code_and_our_formula_agrees(vbench_on_path, tmp_path):
    needs_module("vbench.subject_consistency")
    import torch
    from vbench.utils import dino_transform, load_video

    dino = tmp_path / "cache" / "dino_model"
    (dino / "facebookresearch_dino_main").mkdir(parents=True)
    (dino / "facebookresearch_dino_main" / "hubconf.py").write_text(HUBCONF)
    hub = importlib.util.spec_from_file_location("fake_hubconf", dino / "facebookresearch_dino_main" / "hubconf.py")
    module = importlib.util.module_from_spec(hub)
    hub.loader.exec_module(module)
    model = module.dino_vitb16(pretrained=False)
    model(torch.zeros(1, 3, 224, 224))  # materialise the lazy layer
    torch.manual_seed(2)
    for p in model.parameters():
        torch.nn.init.normal_(p)  # weights that differ from the hubconf's: the file must be what loads
    torch.save(model.state_dict(), dino / "dino_vitbase16_pretrain.pth")

    (route,) = plan(evaluator="e", cache_dir=tmp_path / "cache", dimensions=[BY_KEY["subject_consistency"]])
    assert route.kind == "vbench"
    clip = moving_clip(tmp_path / "c.mp4")
    scores = VBenchScorer([route], tmp_path / "cache", device="cpu").score(clip)
    with torch.no_grad():
        features = model.eval()(dino_transform(224)(load_video(str(clip)))).numpy()  # VBench's frames and transform
    assert scores["subject_consistency"] == pytest.approx(subject_consistency(features), abs=1e-5)


def test_a_vbench_model_that_cannot_load_is_one_line(vbench_on_path, tmp_path):
    needs_module("vbench.dynamic_degree")
    weights = tmp_path / "raft_model" / "models" / "raft-things.pth"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"not a checkpoint")
    (route,) = plan(cache_dir=tmp_path, dimensions=[BY_KEY["dynamic_degree"]])
    with pytest.raises(ModelLoadError, match=r"^VBench Dynamic Degree could not load \(raft_model/models/raft"):
        VBenchScorer([route], tmp_path, device="cpu").load()
