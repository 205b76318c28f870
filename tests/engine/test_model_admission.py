"""Issue 13 items 1 and 3: the Studio's model cache (canonical names, model roots, admin-only new
folders, LRU bound, one refusal text) and per-request viewer outputs. No weights load: the backend
loader is replaced by a recorder."""

from __future__ import annotations

import gc
import os
import threading
import weakref
from pathlib import Path

import numpy as np
import pytest

import engine.backends as backends
from engine.errors import ModelLoadError
from engine.models import canonical_model, refusal
from engine.service import Studio, StudioConfig
from engine.video import load_video, write_video


class FakeBackend:
    """What load_backend returns here: remembers its name; `closed` once the Studio drops it."""

    random_weights = False

    def __init__(self, name: str) -> None:
        self.model_name = Path(name).name
        self.source = name
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture()
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The model names load_backend was called with, in order."""
    calls: list[str] = []

    def fake(_backend: str, model: str, device: str | None = None, **_: object) -> FakeBackend:
        calls.append(model)
        return FakeBackend(model)

    monkeypatch.setattr(backends, "load_backend", fake)
    return calls


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """A model root with two checkpoint folders, P and Q."""
    for name in ("P", "Q", "R"):
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "config.json").write_text("{}")
    return tmp_path / "models"


def test_five_spellings_of_one_folder_load_it_once(root: Path, loads: list[str], monkeypatch) -> None:
    monkeypatch.chdir(root)
    studio = Studio(StudioConfig(model_roots=(str(root),)))
    spellings = ["P", "P/", "P/.", f"{root}/./P", "P/../P", str(root / "P")]
    with studio.admin_access():
        backends_seen = {id(studio._backend(name)) for name in spellings}
    assert loads == [str((root / "P").resolve())]
    assert len(backends_seen) == 1 and studio.loaded_models() == [str((root / "P").resolve())]


def test_absent_and_not_allowed_folders_get_the_same_refusal(root: Path, tmp_path: Path, loads: list[str]) -> None:
    studio = Studio(StudioConfig(model_roots=(str(root),)))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    messages = {}
    for label, name in [("exists-outside", str(outside)), ("system", "/etc"), ("absent", "/no/such/dir")]:
        with studio.admin_access(), pytest.raises(ModelLoadError) as info:
            studio._backend(name)
        messages[label] = str(info.value).replace(repr(name), "NAME")
    assert len(set(messages.values())) == 1, messages
    assert loads == []
    assert str(refusal("x")) == "model 'x' " + str(refusal("y")).split("'y' ", 1)[1]
    # model_status (the picker's note) answers with the same words, without loading
    assert studio.model_status("/etc") == (False, str(refusal("/etc")))
    assert studio.model_status("/no/such/dir") == (False, str(refusal("/no/such/dir")))


def test_only_an_admin_loads_a_folder_not_loaded_before(root: Path, loads: list[str]) -> None:
    studio = Studio(StudioConfig(model_roots=(str(root),)))
    with pytest.raises(ModelLoadError, match="is not available here"):
        studio._backend(str(root / "P"))
    assert loads == []
    with studio.admin_access():
        studio._backend(str(root / "P"))
    assert studio._backend(str(root / "P") + "/") is not None  # now an annotator may use it
    assert len(loads) == 1


def test_presets_are_always_allowed_and_the_cli_takes_any_folder(root: Path, tmp_path: Path, loads) -> None:
    app_studio = Studio(StudioConfig(model_roots=()))
    app_studio._backend("tiny-random-lm")
    cli_studio = Studio(StudioConfig())  # model_roots None: the operator's own command line
    cli_studio._backend(str(tmp_path))
    assert loads == ["tiny-random-lm", str(tmp_path.resolve())]
    assert canonical_model("tiny-random-lm", ()) == "tiny-random-lm"


def test_resident_models_are_bounded_least_recently_used_first(root: Path, loads: list[str]) -> None:
    studio = Studio(StudioConfig(model_roots=(str(root),), max_models=2))
    p, q, r = (str((root / n).resolve()) for n in "PQR")
    with studio.admin_access():
        first = studio._backend(p)
        studio._backend(q)
        studio._backend(p)  # P used again: Q is now the least recent
        studio._backend(r)  # evicts Q
    assert studio.loaded_models() == [p, r]
    ref = weakref.ref(first)
    del first
    with studio.admin_access():
        studio._backend(q)  # reloads Q, evicts P
    gc.collect()
    assert ref() is None, "the evicted model is still referenced: its memory is not freed"
    assert studio.loaded_models() == [r, q] and loads == [p, q, r, q]


def test_evicted_backend_is_closed(root: Path, loads: list[str]) -> None:
    studio = Studio(StudioConfig(model_roots=(str(root),), max_models=1))
    with studio.admin_access():
        p = studio._backend(str(root / "P"))
        studio._backend(str(root / "Q"))
    assert p.closed and studio.loaded_models() == [str((root / "Q").resolve())]


def test_max_models_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_models must be >= 1"):
        StudioConfig(max_models=0)


def test_nul_bytes_and_huge_names_are_refused_in_one_line(root: Path, loads) -> None:
    studio = Studio(StudioConfig(model_roots=(str(root),)))
    for name in ["P\0", "x" * 10_000]:
        with studio.admin_access(), pytest.raises(ModelLoadError, match="is not available here") as info:
            studio._backend(name)
        assert "\n" not in str(info.value) and len(str(info.value)) < 400


# -- item 3: viewer outputs -------------------------------------------------------------------------


def _clip(folder: Path, level: int) -> Path:
    """A 12-frame 64x64 clip called clip.mp4, every pixel at `level` (users' uploads share the name)."""
    frames = np.full((12, 64, 64, 3), level, dtype=np.uint8)
    return write_video(frames, folder / "clip.mp4", fps=8)


def test_two_users_same_file_name_and_seed_get_their_own_videos(tmp_path: Path) -> None:
    dark, bright = _clip(tmp_path / "u1", 20), _clip(tmp_path / "u2", 230)
    studio, out = Studio(), tmp_path / "viewer"
    results: dict[str, dict] = {}
    barrier = threading.Barrier(2)

    def run(label: str, video: Path) -> None:
        barrier.wait()
        results[label] = studio.hallucinate_video(video, out, shuffle=True, paste_ratio=None, num_frames=6, seed=3)

    threads = [threading.Thread(target=run, args=a) for a in (("dark", dark), ("bright", bright))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    paths = {results[k][side] for k in results for side in ("original", "perturbed")}
    assert len(paths) == 4  # nobody's file is anybody else's
    for label, expect in (("dark", 20), ("bright", 230)):
        for side in ("original", "perturbed"):
            frames, _ = load_video(results[label][side], num_frames=4)
            assert abs(float(frames.mean()) - expect) < 12, (label, side, float(frames.mean()))
    leftovers = [p for p in out.rglob("*") if p.is_file() and ".part" in p.name]
    assert leftovers == []
    assert all(Path(p).parent.parent == out and os.path.basename(p).startswith("clip-s3-") for p in paths)
