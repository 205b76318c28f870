"""What `training.trainer.Trainer` builds in `setup` and returns from `train`: the materialised data and its
step arithmetic, the policy, where reference log-probs come from, the optimizer, and the run's result.
Plain records, split out of the trainer so its module holds the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from training.data import Example
from training.feed import BatchFeed
from training.logps import PromptCache
from training.refcache import RefCache

if TYPE_CHECKING:
    from engine.models import LoadedModel


@dataclass
class TrainResult:
    status: str
    """finished or cancelled."""
    step: int
    run_dir: str
    checkpoint: str | None
    metrics: list[dict[str, float]] = field(default_factory=list)
    ref_forwards: int = 0
    """Reference-model forwards (micro-batches): the cache pass plus any resident-mode forwards."""


@dataclass
class DataBundle:
    """The materialised examples and the step arithmetic they imply (built by `_setup_data`)."""

    examples: list[Example]
    frames_dir: Path
    """<data>/frames: the content-addressed frame arrays the examples' sequences name."""
    prompt_cache: PromptCache
    feed: BatchFeed
    """Encodes upcoming micro-batches in worker threads (training.feed)."""
    accum: int
    """Micro-batches per optimizer step on this process (gradient accumulation)."""
    steps_per_epoch: int
    total_steps: int


@dataclass
class ModelBundle:
    """The policy and what it was loaded from (built by `_setup_model`)."""

    lm: LoadedModel
    """Processor, tokenizer and the base model object (engine.models)."""
    model: Any
    """The policy: the base model, PEFT-wrapped with LoRA; accelerate-prepared after `_setup_optimizer`."""
    ref_model_id: str
    """Identity of the reference weights (the reference cache's key)."""


@dataclass
class Reference:
    """Where reference log-probs come from (built by `_setup_reference`)."""

    cache: RefCache | None = None
    """run.reference=cached: every sequence's log pi_ref, filled once before step 0."""
    model: Any = None
    """run.reference=resident with full FT: a frozen copy; None with LoRA (the policy, adapters off)."""


@dataclass
class Optim:
    optimizer: torch.optim.Optimizer
    scheduler: Any
