"""Reference log-prob cache: log pi_ref(y | x, q) for every sequence, computed once, kept on disk.

Key = (reference model id, sequence content hash). The model id hashes what determines the weights
(config, weight files' names / sizes / mtimes, or the tensors themselves when there are no files)
plus the dtype, so a changed checkpoint never hits stale entries. One JSON file per model id under
the cache folder, written atomically; runs of one model share it.

The trainer fills it in one no-grad pass before step 0 with the policy itself (at step 0 the policy
IS the reference; with LoRA, adapters are disabled) so no second model is ever loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from annotations.files import atomic_write


def model_id(model: Any, source: str | None, dtype: torch.dtype | None = None) -> str:
    """A short stable id for a model's reference weights."""
    h = hashlib.sha256()
    h.update(json.dumps(model.config.to_dict(), sort_keys=True, default=str).encode())
    h.update(str(dtype).encode())
    folder = Path(source) if source else None
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) if folder and folder.is_dir() else []
    if weights:
        for f in weights:
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    else:  # in-memory weights: hash the tensors (fine for small models; large ones come from files)
        for name, tensor in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:20]


class RefCache:
    """key -> float, backed by <root>/<model id>.json."""

    def __init__(self, root: str | os.PathLike, model_key: str) -> None:
        self.path = Path(root) / f"{model_key}.json"
        self.values: dict[str, float] = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.hits = 0
        self.misses = 0

    def missing(self, keys: list[str]) -> list[str]:
        return list(dict.fromkeys(k for k in keys if k not in self.values))

    def lookup(self, keys: list[str]) -> torch.Tensor:
        """(S,) float32 for keys that must all be present (KeyError names the first missing one)."""
        out = []
        for k in keys:
            if k not in self.values:
                self.misses += 1
                raise KeyError(f"reference log-prob of sequence {k[:12]} is not cached")
            out.append(self.values[k])
        self.hits += len(keys)
        return torch.tensor(out, dtype=torch.float32)

    def update(self, values: dict[str, float]) -> None:
        self.values.update(values)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(self.values))
