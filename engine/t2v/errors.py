"""Errors of text-to-video generation; one line each, like every StudioError."""

from engine.errors import StudioError


class GenerationError(StudioError):
    """A generation could not finish: the GPU ran out of memory, or the pipeline failed mid-run."""


class GenerationCancelled(StudioError):
    """The caller cancelled a running generation (the app's Cancel button); nothing was written."""


class GenerationBusy(StudioError):
    """Another generation holds the device (one per GPU at a time); the caller asked not to wait."""
