"""What every preset registry shares: the env-var naming rule, override and local-cache lookups, the
download switch, the status line and the one-line refusal. No torch, no transformers; huggingface_hub lazily.

The registries: engine.models (text and video LMs, `VIDPROMPTER_MODEL_<NAME>`), engine.evaluators.registry
(CLIP-style evaluators, `VIDPROMPTER_EVALUATOR_<NAME>`), engine.t2v.presets (text-to-video pipelines,
`VIDPROMPTER_T2V_<NAME>`); engine.budgets names its tokenizer folders by the same rule
(`VIDPROMPTER_TOKENIZER_<NAME>`). engine.catalog lists the presets of all three with their status here.
Imports no registry (they import this).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import ClassVar, Literal

from engine.errors import ModelLoadError

#: How every random-weight model, evaluator and pipeline is labelled wherever its output is shown.
RANDOM_WEIGHTS_LABEL = "random weights — pipeline check only"
#: The opt-in for hub downloads (this project's machines have no hub).
ALLOW_DOWNLOAD_ENV = "VIDPROMPTER_ALLOW_DOWNLOAD"

Want = Literal["folder", "file"]


def env_var_name(registry: str, name: str) -> str:
    """The variable that points preset `name` of `registry` at local weights: VIDPROMPTER_<REGISTRY>_<NAME>,
    every run of other characters an underscore ("qwen2.5-vl-3b" -> VIDPROMPTER_MODEL_QWEN2_5_VL_3B)."""
    return f"VIDPROMPTER_{registry.upper()}_" + re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")


@dataclass(frozen=True)
class Preset:
    """What a preset of every registry has: a name, where real weights come from, or a tiny random build."""

    registry: ClassVar[str]
    """"model", "evaluator" or "t2v": the registry, and the middle word of the preset's env var."""
    name: str
    _: KW_ONLY
    hub_id: str | None = None
    """Hugging Face repository of the weights: used when it is in the local HF cache or downloads are on."""
    builtin: str | None = None
    """Name of a tiny random-weight build made in code (no hub, no file)."""
    notes: str = ""
    """One line for people: format, template, caveats."""

    @property
    def env_var(self) -> str:
        return env_var_name(self.registry, self.name)

    @property
    def random_weights(self) -> bool:
        return self.builtin is not None


def downloads_allowed() -> bool:
    """Hub downloads are opt-in (VIDPROMPTER_ALLOW_DOWNLOAD=1) and off under HF_HUB_OFFLINE=1."""
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "") == "1" and os.environ.get("HF_HUB_OFFLINE", "") != "1"


def require_path(path: str | os.PathLike[str], want: Want, env_var: str, subject: str = "") -> str:
    """`path` when it is an existing folder / file; otherwise ModelLoadError in one line naming `env_var`:
    "<subject>: <path> is not a folder; fix <env_var>"."""
    found = Path(path).is_dir() if want == "folder" else Path(path).is_file()
    if not found:
        problem = f"{path} is not a {want}; fix {env_var}"
        raise ModelLoadError(f"{subject}: {problem}" if subject else problem)
    return str(path)


def env_path(env_var: str, want: Want, subject: str = "") -> str | None:
    """The path $env_var names (None when unset or empty). A set variable naming no `want` is an error, never a
    reason to fall back to another source."""
    value = os.environ.get(env_var, "")
    return require_path(value, want, env_var, subject) if value else None


def hf_cached(repo: str | None, filenames: tuple[str, ...]) -> str | None:
    """The local Hugging Face cache's copy of the first of `filenames` in `repo`, or None (nothing cached, no
    repo, or no huggingface_hub). Never downloads."""
    if not repo:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        for filename in filenames:
            found = try_to_load_from_cache(repo, filename)
            if isinstance(found, str):
                return found
    except Exception:  # no hub library, an unreadable cache, a malformed repo id: nothing cached
        return None
    return None


def no_local_weights(subject: str, where: str, env_var: str, path_hint: str) -> str:
    """The one-line refusal for a preset with no local weights, naming what to set (downloads are off)."""
    return (
        f"{subject}: {where} is not in the local Hugging Face cache; set {env_var}={path_hint} "
        f"(or {ALLOW_DOWNLOAD_ENV}=1 on a host with hub access)"
    )


def status(preset: Preset, check: Callable[[], object] | None) -> tuple[bool, str]:
    """(loadable?, one line) for the UI and the CLIs. `check` finds the weights without loading them and raises
    ModelLoadError when there are none; None when nothing needs finding (a tiny build made in code)."""
    try:
        if check is not None:
            check()
    except ModelLoadError as exc:
        return False, str(exc)
    return True, (RANDOM_WEIGHTS_LABEL if preset.random_weights else "ready")
