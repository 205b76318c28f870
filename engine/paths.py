"""Where the product's data lives: configs/ and assets/ of a checkout, or of the installed package.

In a checkout (make run, make test, `pip install -e .`) they are the repository's folders. In a wheel
(`pip install .`), pyproject.toml ships them as package data of `vidprompter` (vidprompter/configs,
vidprompter/assets), found here with importlib.resources. Everything that reads a preset config, the bundled
sample set, the tagged corpus or a shipped adapter goes through DATA_ROOT, never through `__file__`.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

#: The checkout this module sits in (its parent holds configs/ and assets/), when it is one.
CHECKOUT = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    if (CHECKOUT / "configs").is_dir() and (CHECKOUT / "assets").is_dir():
        return CHECKOUT
    installed = Path(str(importlib.resources.files("vidprompter")))
    return installed


#: The folder holding configs/ and assets/: relative paths in configs ("configs/hdpo.yaml",
#: "assets/sampleset/samples.jsonl") resolve against it.
DATA_ROOT = _data_root()
CONFIGS_DIR = DATA_ROOT / "configs"
ASSETS_DIR = DATA_ROOT / "assets"
SAMPLES_DIR = ASSETS_DIR / "samples"


def in_data_root(path: str | Path) -> Path:
    """A file path as given when it is a file or absolute, else relative to DATA_ROOT (configs/..., assets/...)."""
    given = Path(path).expanduser()
    if given.is_file() or given.is_absolute():
        return given
    return DATA_ROOT / given
