"""The one backend interface: generate candidates, and score responses by summed log-probability."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from engine.tasks import Request
from engine.types import GenerationParams

if TYPE_CHECKING:
    import torch


@runtime_checkable
class Backend(Protocol):
    """A loaded model behind a small interface (transformers or vLLM)."""

    name: str
    model_name: str
    random_weights: bool

    def generate(self, requests: list[Request], params: GenerationParams) -> list[list[str]]:
        """Candidates per request: len(result) == len(requests); each has <= num_return_sequences texts."""
        ...

    def sequence_logps(self, requests: list[Request], responses: list[str]) -> torch.Tensor:
        """Sum of response-token log-probs, shape (B,) float32, one per (request, response) pair."""
        ...
