"""Backends behind one interface, chosen by a string: "transformers" (everywhere) or "vllm" (GPU hosts)."""

from __future__ import annotations

from engine.backends.base import Backend
from engine.errors import InputError

BACKENDS = ("transformers", "vllm")


def load_backend(name: str, model: str, device: str | None = None, **kwargs) -> Backend:
    """Build a backend for a model preset; imports the heavy parts only for the backend asked for."""
    if name == "transformers":
        from engine.backends.transformers_backend import TransformersBackend

        return TransformersBackend.load(model, device=device, **kwargs)
    if name == "vllm":
        from engine.backends.vllm_backend import VLLMBackend, VLLMConfig

        return VLLMBackend(model, VLLMConfig(**kwargs))
    raise InputError(f"unknown backend {name!r}: use one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Backend", "load_backend"]
