"""The Studio's text-to-video verbs (engine.t2v.studio.VideoVerbs): one road for the app and the evaluation."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.errors import BackendUnavailable, InputError, ModelLoadError
from engine.service import Studio, StudioConfig
from engine.t2v.backend import device_lock
from engine.t2v.errors import GenerationBusy, GenerationCancelled
from engine.t2v.presets import RANDOM_WEIGHTS_LABEL
from engine.t2v.studio import clip_path
from engine.video import load_video

TINY = "tiny-random-cogvideox"


@pytest.fixture(scope="module")
def studio() -> Studio:
    return Studio(StudioConfig(device="cpu"))


def test_generate_video_writes_a_seeded_clip_with_progress(studio, tmp_path):
    steps: list[tuple[int, int]] = []
    clip = studio.generate_video(
        "a dog runs", tmp_path / "a.mp4", TINY, seed=4, steps=3, progress=lambda s, t: steps.append((s, t))
    )
    again = studio.generate_video("a dog runs", tmp_path / "b.mp4", TINY, seed=4, steps=3)
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert clip.path == tmp_path / "a.mp4" and clip.random_weights and clip.request.seed == 4
    assert np.array_equal(load_video(clip.path, 20)[0], load_video(again.path, 20)[0])
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()  # same seed, same file
    assert studio.loaded_t2v() == TINY


def test_bad_input_refused_before_loading(studio, tmp_path):
    with pytest.raises(InputError, match="the prompt is empty"):
        studio.generate_video("  ", tmp_path / "a.mp4", TINY)
    with pytest.raises(InputError, match="the output must be an .mp4 file"):
        studio.generate_video("a cat", tmp_path / "a.gif", TINY)
    with pytest.raises(InputError, match=r"the prompt is \d+ tokens; tiny-random-cogvideox's text encoder reads"):
        studio.generate_video("dog " * 300, tmp_path / "a.mp4", TINY)
    assert not list(tmp_path.iterdir())


def test_busy_device_and_cancel_are_one_line_and_write_nothing(studio, tmp_path):
    studio.t2v_pipeline(TINY)
    lock = device_lock("cpu")
    with lock:  # another request is generating
        with pytest.raises(GenerationBusy, match="^busy: another video is being generated on cpu"):
            studio.generate_video("a cat", tmp_path / "a.mp4", TINY, wait=False)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(GenerationCancelled, match="cancelled"):
        studio.generate_video("a cat", tmp_path / "a.mp4", TINY, cancel=cancel, wait=False)
    assert not list(tmp_path.iterdir())


def test_one_pipeline_loaded_at_a_time(tmp_path):
    studio = Studio(StudioConfig(device="cpu"))
    first = studio.t2v_pipeline(TINY)
    assert studio.t2v_pipeline(TINY) is first  # cached
    studio.generate_video("a cat", tmp_path / "w.mp4", "tiny-random-wan", steps=1)
    assert studio.loaded_t2v() == "tiny-random-wan"


def test_status_default_and_folders_in_the_app(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("COGVIDEOX_2B", "COGVIDEOX_5B", "WAN2_1_T2V_1_3B", "EASYANIMATE_V5_1_7B"):
        monkeypatch.delenv(f"VIDPROMPTER_T2V_{name}", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: no real preset is here
    app = Studio(StudioConfig(model_roots=(str(tmp_path),)))
    assert app.default_t2v_model() == "cogvideox-2b"
    ok, line = app.t2v_status("cogvideox-2b")
    assert not ok and "set VIDPROMPTER_T2V_COGVIDEOX_2B=" in line
    assert app.t2v_status(TINY) == (True, RANDOM_WEIGHTS_LABEL)
    ok, line = app.t2v_status(str(tmp_path))  # the app names presets only; a folder goes through its variable
    assert not ok and "pick a preset" in line
    with pytest.raises(ModelLoadError, match="is not available here"):
        app.generate_video("a cat", tmp_path / "a.mp4", str(tmp_path))
    folder = tmp_path / "cog"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "CogVideoXPipeline"}')
    monkeypatch.setenv("VIDPROMPTER_T2V_COGVIDEOX_2B", str(folder))
    assert app.default_t2v_model() == "cogvideox-2b" and app.t2v_status("cogvideox-2b") == (True, "ready")


def test_clip_path_is_fresh_per_request(tmp_path):
    a, b = clip_path(tmp_path, "cand #1 / ../x", 3), clip_path(tmp_path, "cand #1 / ../x", 3)
    assert (
        a != b and a.parent.parent == tmp_path and a.name == "cand-1-..-x-s3.mp4"
    )  # one name in its own folder, never a path
    assert clip_path(tmp_path, "///", 0).name == "clip-s0.mp4"


def test_app_offload_flag_reaches_the_pipeline_loader(tmp_path):
    """`app.py --t2v-offload model` travels through StudioConfig to load_t2v: on this CUDA-less host the load
    is refused with the backend's one line (on a GPU host the same value sets diffusers' model offload)."""
    import app

    args = app.parse_args(["--t2v-offload", "model"])
    config = app.studio_config(None, (), t2v_offload=args.t2v_offload)
    assert config.t2v_offload == "model" and app.parse_args([]).t2v_offload == "none"
    studio = Studio(StudioConfig(device="cpu", t2v_offload=config.t2v_offload))
    with pytest.raises(BackendUnavailable, match="--offload model moves weights between the CPU and a GPU"):
        studio.generate_video("a cat", tmp_path / "a.mp4", TINY)
    assert not list(tmp_path.iterdir()) and studio.loaded_t2v() is None
