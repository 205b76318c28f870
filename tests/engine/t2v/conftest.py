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
