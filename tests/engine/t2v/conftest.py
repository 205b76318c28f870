"""Tiny random T2V pipelines, built in code once and loaded back through diffusers' from_pretrained."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_cog():
    from engine.t2v.backend import load_t2v

    return load_t2v("tiny-random-cogvideox", device="cpu")


@pytest.fixture(scope="session")
def tiny_wan():
    from engine.t2v.backend import load_t2v

    return load_t2v("tiny-random-wan", device="cpu")


@pytest.fixture(scope="session")
def tiny_easyanimate():
    from engine.t2v.backend import load_t2v

    return load_t2v("tiny-random-easyanimate", device="cpu")


@pytest.fixture
def no_vbench(monkeypatch):
    """`import vbench` fails, whether or not the package is installed (engine.t2v.vbench_dims then routes every
    dimension to our substitute or marks it absent)."""
    import sys

    monkeypatch.setitem(sys.modules, "vbench", None)


@pytest.fixture
def vbench_on_path(monkeypatch):
    """The vbench package, importable: installed, or the folder in VIDPROMPTER_VBENCH_SITE put on sys.path
    (`pip install --no-deps --target DIR vbench==0.1.5`). Skips otherwise (CI has none: its dependency pins
    conflict with ours, so it is no dependency of the project)."""
    import importlib.util
    import os

    site = os.environ.get("VIDPROMPTER_VBENCH_SITE")
    if site:
        monkeypatch.syspath_prepend(site)
    if importlib.util.find_spec("vbench") is None:
        pytest.skip(
            "vbench is not installed: pip install --no-deps vbench==0.1.5, or set VIDPROMPTER_VBENCH_SITE to a "
            "folder from pip install --no-deps --target DIR vbench==0.1.5"
        )
