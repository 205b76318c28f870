"""Table 3's VBench dimensions (paper section 4.5), each scored by VBench's own code where it can run here.

Per dimension, in this order:

1. **vbench**: the `vbench` package imports (with that dimension's module) and its weights lie in VBench's
   cache folder ($VBENCH_CACHE_DIR, default ~/.cache/vbench, the files VBench's `init_submodules` expects):
   VBench's per-video function runs on the clip file, exactly as `vbench evaluate` would read it. Temporal
   flickering needs no weights: it runs VBench's code whenever the package imports.
2. **substitute**: our re-implementation in engine.t2v.quality with installed models, labelled as such in the
   report (Farneback flow instead of RAFT, a CLIP-style evaluator's image tower instead of DINO / CLIP ViT-B/32,
   a linear blend of the neighbouring frames instead of AMT-S interpolation).
3. **absent**: aesthetic and imaging quality have no substitute; their row stays empty and says so.

`vbench` 0.1.5 pins numpy<2 and transformers==4.33.2, so it cannot be a dependency of this project; its
dimension modules import with our numpy 2 / torch 2.14 / transformers 5 when installed without its dependency
list: VBENCH_INSTALL below. Nothing here downloads weights (VBench's own loaders would: we call them only
when the files are present, and load DINO from the local clone without `pretrained=True`).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from annotations.errors import first_line
from engine.errors import ModelLoadError

#: How to make `import vbench` work here (its own dependency pins conflict with this project's).
VBENCH_INSTALL = (
    "pip install --no-deps vbench==0.1.5 openai-clip==1.0.1 pyiqa==0.1.16 && "
    "pip install easydict omegaconf imageio 'setuptools<81'"
)

Kind = Literal["vbench", "substitute", "absent"]

#: Per clip: a clip file path -> its value on one dimension.
ClipScorer = Callable[[str], float]


@dataclass(frozen=True)
class Dimension:
    """One VBench dimension: VBench's module and weights, and our fallback."""

    key: str
    """VBench's dimension name (its module under `vbench.`)."""
    name: str
    """As the paper's Table 3 writes it."""
    weights: tuple[str, ...]
    """Files (or folders) VBench reads, relative to its cache folder."""
    model: str
    """What VBench runs, for the report."""
    substitute: str | None = None
    """How our substitute differs from VBench (None: no substitute, the row is absent)."""
    substitute_key: str | None = None
    """The key of the substitute's value in a clip row's `quality`."""
    per_frame: bool = False
    """The substitute needs a per-frame image evaluator."""
    table3: bool = True
    """One of the paper's six (temporal flickering is an extra row)."""
    scale: str = ""
    """Unit note for the label."""


DIMENSIONS: tuple[Dimension, ...] = (
    Dimension(
        "motion_smoothness",
        "Motion Smoothness",
        ("amt_model/amt-s.pth",),
        "AMT-S frame interpolation",
        "a linear blend of the two neighbouring frames instead of AMT-S interpolation",
        "motion_smoothness",
    ),
    Dimension(
        "dynamic_degree",
        "Dynamic Degree",
        ("raft_model/models/raft-things.pth",),
        "RAFT optical flow",
        "OpenCV Farneback flow instead of RAFT, frames at about 8 fps",
        "dynamic",
        scale="share of clips that move",
    ),
    Dimension(
        "aesthetic_quality",
        "Aesthetic Quality",
        ("clip_model/ViT-L-14.pt", "aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth"),
        "LAION aesthetic head on CLIP ViT-L/14",
    ),
    Dimension(
        "imaging_quality",
        "Imaging Quality",
        ("pyiqa_model/musiq_spaq_ckpt-358bb6af.pth",),
        "MUSIQ (SPAQ)",
        scale="0-100",
    ),
    Dimension(
        "subject_consistency",
        "Subject Consistency",
        ("dino_model/facebookresearch_dino_main/hubconf.py", "dino_model/dino_vitbase16_pretrain.pth"),
        "DINO ViT-B/16 features",
        "{evaluator} frame features instead of DINO ViT-B/16, frames at about 8 fps",
        "subject_consistency",
        per_frame=True,
    ),
    Dimension(
        "background_consistency",
        "Background Consistency",
        ("clip_model/ViT-B-32.pt",),
        "CLIP ViT-B/32 features",
        "{evaluator} frame features instead of CLIP ViT-B/32, frames at about 8 fps; the same features and formula "
        "as the subject-consistency substitute",
        "subject_consistency",
        per_frame=True,
    ),
    Dimension(
        "temporal_flickering",
        "Temporal Flickering",
        (),
        "mean absolute difference of consecutive frames",
        "VBench's formula re-implemented, frames at about 8 fps",
        "temporal_smoothness",
        table3=False,
    ),
)

BY_KEY = {d.key: d for d in DIMENSIONS}


@dataclass(frozen=True)
class Route:
    """Who scores a dimension in this run, and why not VBench when it is not."""

    dimension: Dimension
    kind: Kind
    why: str = ""
    """Why VBench's code does not run (empty when it does)."""
    evaluator: str | None = None
    """The per-frame image evaluator of a substitute that needs one."""

    @property
    def label(self) -> str:
        d = self.dimension
        name = f"{d.name}, {d.scale}" if d.scale else d.name
        if self.kind == "vbench":
            return f"{name} (VBench's code: {d.model})"
        if self.kind == "substitute":
            return f"{name} (substitute, not VBench: {(d.substitute or '').format(evaluator=self.evaluator)})"
        return f"{name} (absent: VBench's {d.model} cannot run here)"


def vbench_cache_dir() -> Path:
    """VBench's weights folder, by VBench's own rule (vbench/utils.py CACHE_DIR)."""
    return Path(os.environ.get("VBENCH_CACHE_DIR") or Path.home() / ".cache" / "vbench")


@contextlib.contextmanager
def _keep_root_logging() -> Iterator[None]:
    """vbench.utils calls logging.basicConfig(level=INFO) at import: undo that for the rest of the process."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def import_error(module: str) -> str | None:
    """None when `module` imports; else one line saying why (any exception a third-party import raises)."""
    try:
        with _keep_root_logging(), contextlib.redirect_stdout(sys.stderr):
            importlib.import_module(module)
    except Exception as exc:
        return f"{module} does not import ({type(exc).__name__}: {first_line(exc)})"
    return None


def plan(
    evaluator: str | None = None, cache_dir: Path | None = None, dimensions: Sequence[Dimension] = DIMENSIONS
) -> list[Route]:
    """Each dimension's route: VBench's code where the package, the module and the weights are here; else our
    substitute (those needing a per-frame image model only when `evaluator` names one); else absent."""
    cache = cache_dir or vbench_cache_dir()
    package = import_error("vbench")
    routes = []
    for dim in dimensions:
        problems = [package or import_error(f"vbench.{dim.key}")]
        missing = [w for w in dim.weights if not (cache / w).exists()]
        if missing:
            problems.append(f"weights missing under {cache}: {', '.join(missing)}")
        why = "; ".join(p for p in problems if p)
        if not why:
            routes.append(Route(dim, "vbench"))
        elif dim.substitute and (evaluator or not dim.per_frame):
            routes.append(Route(dim, "substitute", why, evaluator if dim.per_frame else None))
        else:
            routes.append(Route(dim, "absent", why))
    return routes


def missing_line(routes: Sequence[Route], cache_dir: Path | None = None) -> str | None:
    """One line: which dimensions do not run VBench's code, and what to install / where to place which files.
    None when every dimension runs VBench's code."""
    off = [r for r in routes if r.kind != "vbench"]
    if not off:
        return None
    cache = cache_dir or vbench_cache_dir()
    names = [f"{r.dimension.name} ({r.kind})" for r in off]
    line = f"VBench's own code not run for: {', '.join(names)}."
    package = import_error("vbench")
    if package:
        line += f" {package}: {VBENCH_INSTALL}."
    else:
        broken = sorted({p for r in off for p in r.why.split("; ") if "does not import" in p})
        line += "".join(f" {p}." for p in broken)
    files = [
        f"{', '.join(w for w in r.dimension.weights if not (cache / w).exists())} ({r.dimension.name})"
        for r in off
        if any(not (cache / w).exists() for w in r.dimension.weights)
    ]
    if files:
        line += (
            f" Place VBench's weights under {cache} ($VBENCH_CACHE_DIR): {'; '.join(files)} "
            "(dino_model/facebookresearch_dino_main is a clone of github.com/facebookresearch/dino; the URLs are "
            "in vbench/utils.py init_submodules)."
        )
    return line


# -- VBench's code, per dimension (imported only when the route is "vbench") --------------------------------
def _per_video(result: tuple[Any, list[dict[str, Any]]]) -> float:
    """The one clip's value from a VBench dimension function's (mean, per-video results) on a one-clip list."""
    return float(result[1][0]["video_results"])


def _temporal_flickering(cache: Path, device: str) -> ClipScorer:
    from vbench.temporal_flickering import cal_score

    return lambda path: float(cal_score(path))


def _motion_smoothness(cache: Path, device: str) -> ClipScorer:
    import vbench
    from vbench.motion_smoothness import MotionSmoothness

    config = Path(vbench.__file__).parent / "third_party" / "amt" / "cfgs" / "AMT-S.yaml"
    model = MotionSmoothness(str(config), str(cache / "amt_model" / "amt-s.pth"), device)
    return lambda path: float(model.motion_score(path))


def _dynamic_degree(cache: Path, device: str) -> ClipScorer:
    from easydict import EasyDict
    from vbench.dynamic_degree import DynamicDegree

    weights = str(cache / "raft_model" / "models" / "raft-things.pth")
    model = DynamicDegree(EasyDict(model=weights, small=False, mixed_precision=False, alternate_corr=False), device)
    return lambda path: float(model.infer(path))


def _aesthetic_quality(cache: Path, device: str) -> ClipScorer:
    import clip
    from vbench.aesthetic_quality import get_aesthetic_model, laion_aesthetic

    head = get_aesthetic_model(str(cache / "aesthetic_model" / "emb_reader")).to(device)
    model, _ = clip.load(str(cache / "clip_model" / "ViT-L-14.pt"), device=device)
    return lambda path: _per_video(laion_aesthetic(head, model, [path], device))


def _imaging_quality(cache: Path, device: str) -> ClipScorer:
    from pyiqa.archs.musiq_arch import MUSIQ
    from vbench.imaging_quality import technical_quality

    model = MUSIQ(pretrained_model_path=str(cache / "pyiqa_model" / "musiq_spaq_ckpt-358bb6af.pth"))
    model.to(device)
    model.training = False  # as vbench.imaging_quality.compute_imaging_quality
    return lambda path: _per_video(technical_quality(model, [path], device))  # per clip 0-100, as the paper's table


def _subject_consistency(cache: Path, device: str) -> ClipScorer:
    import torch
    from vbench.subject_consistency import subject_consistency

    # VBench's own load passes pretrained=True, which fetches the weights by URL: build from the local clone,
    # then load the local file.
    repo = cache / "dino_model" / "facebookresearch_dino_main"
    model = torch.hub.load(str(repo), "dino_vitb16", source="local", pretrained=False)
    state = torch.load(cache / "dino_model" / "dino_vitbase16_pretrain.pth", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.to(device).eval()
    return lambda path: _per_video(subject_consistency(model, [path], device, False))


def _background_consistency(cache: Path, device: str) -> ClipScorer:
    import clip
    from vbench.background_consistency import background_consistency

    model, preprocess = clip.load(str(cache / "clip_model" / "ViT-B-32.pt"), device=device)
    return lambda path: _per_video(background_consistency(model, preprocess, [path], device, False))


LOADERS: dict[str, Callable[[Path, str], ClipScorer]] = {
    "temporal_flickering": _temporal_flickering,
    "motion_smoothness": _motion_smoothness,
    "dynamic_degree": _dynamic_degree,
    "aesthetic_quality": _aesthetic_quality,
    "imaging_quality": _imaging_quality,
    "subject_consistency": _subject_consistency,
    "background_consistency": _background_consistency,
}


class VBenchScorer:
    """VBench's models for the dimensions routed to it, loaded once (`load`), then run per clip file."""

    def __init__(self, routes: Sequence[Route], cache_dir: Path | None = None, device: str | None = None) -> None:
        self.routes = list(routes)
        self.cache = cache_dir or vbench_cache_dir()
        self.device = device
        self.scorers: dict[str, ClipScorer] = {}

    @property
    def keys(self) -> list[str]:
        return [r.dimension.key for r in self.routes if r.kind == "vbench"]

    def load(self) -> None:
        """Build every VBench model this run needs; a failure is one ModelLoadError naming the dimension."""
        if not self.keys or self.scorers:
            return
        import torch

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")  # VBench compares to "cuda"
        for key in self.keys:
            try:
                with _keep_root_logging(), contextlib.redirect_stdout(sys.stderr):  # VBench prints as it loads
                    self.scorers[key] = LOADERS[key](self.cache, device)
            except Exception as exc:
                files = ", ".join(BY_KEY[key].weights) or "no weights"
                raise ModelLoadError(
                    f"VBench {BY_KEY[key].name} could not load ({files} under {self.cache}): {first_line(exc)}"
                ) from exc

    def score(self, path: str | os.PathLike) -> dict[str, float]:
        """Dimension -> VBench's value for one clip file (VBench's progress bars and prints kept off stdout)."""
        import torch

        self.load()
        out: dict[str, float] = {}
        for key, scorer in self.scorers.items():
            with torch.no_grad(), contextlib.redirect_stdout(sys.stderr), contextlib.redirect_stderr(io.StringIO()):
                out[key] = scorer(str(path))
        return out
