"""User-facing error types. Every message is one line that says what went wrong and what to do."""


class StudioError(Exception):
    """Base of every error a user may see (CLI prints it, the UI shows it in a gr.Error)."""

    def __init__(self, message: str) -> None:
        # Collapse to one line: users see this verbatim in a toast or on stderr.
        super().__init__(" ".join(str(message).split()))


class VideoError(StudioError):
    """A video could not be used: missing, not a video, corrupt, empty or beyond the limits."""


class ModelLoadError(StudioError):
    """A model preset could not be loaded (no hub access, no local path, bad checkpoint)."""


class InputError(StudioError):
    """Bad user input: empty or huge prompt, unknown task, missing video for a video task."""


class BackendUnavailable(StudioError):
    """An optional backend (vLLM) or device (CUDA) is not present on this machine."""
