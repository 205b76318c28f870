"""Sharding the teacher and mining steps across processes that share one annotations database.

A shard owns the samples whose id ≡ index (mod count): every sample belongs to exactly one shard, so no
sample is done twice, and one sample's tasks stay in one process. Each step skips work already in the
database, so each shard resumes on its own after a kill.

Where i/n comes from: `--shard i/n` (a scheduler's array job, one process per task id), else the
launcher's environment (`accelerate launch` and torchrun set RANK and WORLD_SIZE; LOCAL_RANK picks
the GPU), else one shard.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from engine.errors import InputError


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based)."""

    index: int = 0
    count: int = 1
    local_rank: int | None = None
    """The launcher's LOCAL_RANK (the GPU of this process on its machine), when a launcher set it."""

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise InputError(f"shard must be i/n with 0 <= i < n, got {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`i/n`, e.g. `0/4` .. `3/4`."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise InputError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
        return cls(index, count)

    @classmethod
    def from_env(cls) -> Shard | None:
        """The launcher's process index and count (RANK / WORLD_SIZE), or None outside a launcher."""
        world = os.environ.get("WORLD_SIZE")
        if not world or int(world) <= 1:
            return None
        local = os.environ.get("LOCAL_RANK")
        return cls(int(os.environ.get("RANK", "0")), int(world), int(local) if local is not None else None)

    def owns(self, sample_id: int) -> bool:
        return sample_id % self.count == self.index

    @property
    def label(self) -> str:
        return f"shard {self.index}/{self.count}"

    def device(self) -> str | None:
        """cuda:<LOCAL_RANK> for a launcher's process on a CUDA machine (one GPU each), else None."""
        if self.local_rank is None:
            return None
        import torch

        return f"cuda:{self.local_rank}" if torch.cuda.is_available() else None


def resolve_shard(text: str | None) -> Shard:
    """The shard of this process: `--shard i/n` when given, else the launcher's, else 0/1."""
    if text:
        return Shard.parse(text)
    return Shard.from_env() or Shard()
