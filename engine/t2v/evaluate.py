"""Table 3 of the paper (section 4.5): the videos three prompts make, scored.

For `num_samples` samples (100, as the paper) drawn at random with `sample_seed` from the split's samples that
have a short prompt (the draw is written to DIR/samples.json): the base model's and the trained model's detailed
prompts (Task 3 through the Studio, greedy, with the Table-1 harness's budget rule), then one clip from each of
the three prompts (short / base / trained) with the SAME seed, by the paper's T2V model (EasyAnimate) unless
told otherwise, each scored on

- text-video consistency against the SHORT prompt (what the user asked for) with the evaluator ensemble
  (`Studio.score`, 100 x cosine per evaluator and their mean);
- Table 3's VBench dimensions (engine.t2v.vbench_dims): VBench's own code on the clip file where the `vbench`
  package and that dimension's weights are here, else our labelled substitute (engine.t2v.quality: a per-frame
  image model's features, Farneback flow, linear-blend interpolation), else absent; the report says which, in
  one line, and where the missing weights go.

Resumable: detailed prompts are kept in DIR/prompts.json as they are written, and each clip is written to
DIR/clips/<sample>-<source>-<key>.mp4 where key hashes what made it (T2V model, prompt, seed, settings); a rerun
reuses every clip whose file exists, so a changed trained model regenerates only its own clips. Scores are
recomputed from the files each run (cheap next to generation), so a resumed report equals a fresh one.
The report (engine.t2v.report): DIR/table3.md, DIR/table3.csv (rows = dimensions, columns = sources) and
DIR/clips.csv (one row per clip), with the clips linked by relative paths.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from annotations.files import atomic_write
from engine.errors import InputError, ModelLoadError
from engine.mining import StudioVerbs
from engine.t2v.eval_config import SOURCES, ClipRow, VideoEvalConfig, VideoEvalResult
from engine.t2v.presets import resolve_t2v
from engine.t2v.report import summarise, t2v_label, write_report
from engine.t2v.vbench_dims import VBenchScorer, missing_line, plan
from engine.types import GenerationParams, Task

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    from sqlalchemy import Engine

    from annotations.store import SampleInfo
    from engine.t2v.backend import GeneratedClip, T2VPipeline
    from engine.t2v.quality import FrameQuality

#: VBench subsamples clips above 8 fps to about 8 fps before its temporal metrics.
QUALITY_FPS = 8.0


class VideoStudio(StudioVerbs, Protocol):
    """What the evaluation calls on `engine.service.Studio` (its Task-3, scoring and video verbs)."""

    def load(self, model: str | None = None, task: Task | int | None = None) -> str: ...

    def t2v_status(self, name: str) -> tuple[bool, str]: ...

    def t2v_pipeline(self, name: str | None = None, wait: bool = True) -> T2VPipeline: ...

    def generate_video(
        self,
        prompt: str,
        out: str | os.PathLike,
        model: str | None = None,
        seed: int = 0,
        *,
        frames: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        height: int | None = None,
        width: int | None = None,
    ) -> GeneratedClip: ...

    def per_frame_evaluator(self, names: Sequence[str]) -> str | None: ...

    def video_quality(self, frames: np.ndarray, fps: float = 8.0, evaluator: str | None = None) -> FrameQuality: ...


# -- prompts ----------------------------------------------------------------------------------------------
def fit_prompt(text: str, count: Any, limit: int) -> tuple[str, bool]:
    """(text, False) when count(text) <= limit; else its longest word prefix within the limit and True.
    count(text) -> tokens is monotone in the prefix length, so a binary search over word counts finds it."""
    if count(text) <= limit:
        return text, False
    words = text.split()
    lo, hi = 0, len(words)  # invariant: the first `lo` words fit; more than `hi` do not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(" ".join(words[:mid])) <= limit:
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        raise InputError(f"not even the first word of the prompt fits the text encoder's {limit} tokens")
    return " ".join(words[:lo]), True


def model_stamp(name: str) -> str:
    """What identifies a model's weights in cache keys: a folder's newest file time (a retrained checkpoint
    in the same folder is a new model); a preset's name alone."""
    path = Path(name).expanduser()
    if not path.is_dir():
        return name
    times = [p.stat().st_mtime_ns for p in path.iterdir() if p.is_file()]
    return f"{path.resolve()}@{max(times, default=0)}"


class PromptCache:
    """Detailed prompts already written, in DIR/prompts.json (rewritten atomically after each one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.items: dict[str, str] = {}
        if path.is_file():
            try:
                self.items = dict(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                raise InputError(
                    f"{path} is not a prompts file this command wrote; remove it or pick another --out"
                ) from None

    def get(self, key: str) -> str | None:
        return self.items.get(key)

    def put(self, key: str, text: str) -> None:
        self.items[key] = text
        atomic_write(self.path, json.dumps(self.items, ensure_ascii=False, indent=1))


def draw_samples(pool: Sequence[SampleInfo], num: int | None, seed: int) -> list[SampleInfo]:
    """`num` of `pool` at random (all when num is None or not smaller), in id order. Depends only on the seed and
    the set of ids, not on the order the database returns them in."""
    ordered = sorted(pool, key=lambda s: s.id)
    if num is None or num >= len(ordered):
        return ordered
    return sorted(random.Random(seed).sample(ordered, num), key=lambda s: s.id)


class VideoEvaluation:
    """Runs the three stages through a Studio's verbs; reads the annotations database only."""

    def __init__(self, studio: VideoStudio, db: Engine, config: VideoEvalConfig) -> None:
        self.studio, self.db, self.config = studio, db, config
        self.out = Path(config.out_dir).expanduser()
        self.seconds: dict[str, float] = {}
        self.draw: dict[str, Any] = {}
        self.scorer = VBenchScorer([])

    def samples(self) -> list[SampleInfo]:
        """`num_samples` of the split's samples with a short prompt, drawn at random with `sample_seed` (in id
        order); the draw is kept in `self.draw` for samples.json and the report."""
        from annotations.store import list_samples

        pool = [s for s in list_samples(self.db, self.config.split) if (s.short_prompt or "").strip()]
        if not pool:
            raise InputError(f"no sample with a short prompt in split {self.config.split!r}")
        picked = draw_samples(pool, self.config.num_samples, self.config.sample_seed)
        self.draw = {
            "split": self.config.split,
            "sample_seed": self.config.sample_seed,
            "num_samples": self.config.num_samples,
            "pool": len(pool),
            "ids": [s.id for s in picked],
        }
        return picked

    def check(self) -> tuple[T2VPipeline, str | None]:
        """Every cheap refusal, then every model loaded (VBench's too), before the first generation:
        (pipeline, the per-frame image evaluator of the substitutes)."""
        if self.out.exists() and not self.out.is_dir():
            raise InputError(f"--out {self.out} is a file; name a folder")
        ok, message = self.studio.t2v_status(self.config.t2v)
        if not ok:
            raise ModelLoadError(message)
        from engine.t2v.backend import ClipRequest, check_shape  # a bad --frames fails before minutes of prompts

        check_shape(resolve_t2v(self.config.t2v), ClipRequest("-", self.config.seed, **self.config.clip_settings()))
        evaluators = self.studio.require_evaluators(self.config.evaluators)
        subject = self.config.subject_evaluator or self.studio.per_frame_evaluator(evaluators)
        if subject is not None:
            self.studio.require_evaluators([subject])
        self.scorer = VBenchScorer(plan(evaluator=subject))
        self.scorer.load()
        for model in (self.config.base, self.config.trained):
            self.studio.load(model, Task.BEAUTIFY)
        return self.studio.t2v_pipeline(self.config.t2v), subject

    # -- stage 1: detailed prompts --------------------------------------------------------------------
    def detailed_prompts(self, samples: list[SampleInfo], progress: bool) -> dict[tuple[int, str], str]:
        from tqdm import tqdm

        from engine.evaluate import EvalConfig, Harness

        config = self.config
        models = (config.base, config.trained)
        rule = EvalConfig(models=models, out_dir=str(self.out), tasks=(3,), max_new_tokens=config.max_new_tokens)
        harness = Harness(self.studio, self.db, rule)  # its budget rule, so Table 1 and Table 3 read alike
        cache = PromptCache(self.out / "prompts.json")
        texts: dict[tuple[int, str], str] = {}
        work = [(s, source) for s in samples for source in SOURCES[1:]]
        for sample, source in tqdm(work, desc="detailed prompts", unit="prompt", disable=not progress):
            model = config.model(source)
            budget = harness.budget(model, sample, Task.BEAUTIFY)
            key = f"{sample.id}|{model_stamp(model)}|{budget}|{sample.short_prompt}"
            text = cache.get(key)
            if text is None:
                params = GenerationParams(max_new_tokens=budget)  # greedy, as Table 1
                cands = self.studio.run_task(Task.BEAUTIFY, None, sample.short_prompt, model=model, params=params)
                text = cands[0].text
                cache.put(key, text)
            texts[(sample.id, source)] = text
        return texts

    # -- stage 2: clips -------------------------------------------------------------------------------------
    def clip_row(self, pipeline: T2VPipeline, sample: SampleInfo, source: str, text: str) -> ClipRow:
        """The row of one clip, its prompt fitted to the encoder; the file made unless it already exists."""
        config, short = self.config, str(sample.short_prompt)
        row = ClipRow(sample.id, source, config.model(source), short, text, None, "ok", config.seed)
        if not text.strip():
            row.status = "skipped: the model wrote an empty prompt"
            return row
        limit = pipeline.max_tokens
        fitted, cut = fit_prompt(text, pipeline.count_tokens, limit)
        if cut and config.long_prompts == "skip":
            row.status = f"skipped: {pipeline.count_tokens(text)} tokens, over {pipeline.name}'s {limit}"
            return row
        if cut:
            row.prompt = fitted
            row.status = f"cut to {len(fitted.split())} of {len(text.split())} words ({limit}-token encoder)"
        name = f"{sample.id}-{source}-{self.clip_key(row.prompt)}.mp4"
        path = self.out / "clips" / name
        row.clip, row.reused = f"clips/{name}", path.is_file()
        if not row.reused:
            self.studio.generate_video(row.prompt, path, config.t2v, config.seed, **config.clip_settings())
        return row

    def clip_key(self, prompt: str) -> str:
        what = [model_stamp(self.config.t2v), prompt, self.config.seed, self.config.clip_settings()]
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]

    # -- stage 3: scores -----------------------------------------------------------------------------------
    def score(self, row: ClipRow, subject: str | None) -> None:
        """Consistency with the SHORT prompt, our substitutes and VBench's code, all from the written file."""
        from engine.t2v.backend import MAX_FRAMES
        from engine.t2v.quality import motion_smoothness_linear
        from engine.video import load_video

        assert row.clip is not None
        path = self.out / row.clip
        report = self.studio.score(path, [row.short_prompt], list(self.config.evaluators))
        row.consistency = report.rows[0].as_dict()
        frames, meta = load_video(path, num_frames=MAX_FRAMES)  # every frame of a generated clip
        step = max(1, round(meta.fps / QUALITY_FPS)) if meta.fps else 1
        # the image evaluator only where a substitute reads its features (VBench's DINO / CLIP may replace both)
        needs = any(r.kind == "substitute" and r.dimension.per_frame for r in self.scorer.routes)
        evaluator = subject if needs else None
        row.quality = self.studio.video_quality(frames[::step], (meta.fps or QUALITY_FPS) / step, evaluator).as_dict()
        row.quality["motion_smoothness"] = motion_smoothness_linear(frames) if len(frames) >= 3 else None
        row.vbench = self.scorer.score(path)

    def run(self, progress: bool = True) -> VideoEvalResult:
        from tqdm import tqdm

        samples = self.samples()
        pipeline, subject = self.check()
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write(self.out / "samples.json", json.dumps(self.draw, indent=1))
        start = time.perf_counter()
        texts = self.detailed_prompts(samples, progress)
        self.seconds["prompts"] = time.perf_counter() - start
        work = [(s, src) for s in samples for src in SOURCES]
        rows: list[ClipRow] = []
        for sample, source in tqdm(work, desc="clips", unit="clip", disable=not progress):
            text = str(sample.short_prompt) if source == "short" else texts[(sample.id, source)]
            rows.append(self.clip_row(pipeline, sample, source, text))
        self.seconds["clips"] = time.perf_counter() - start - self.seconds["prompts"]
        for row in tqdm([r for r in rows if r.made], desc="scores", unit="clip", disable=not progress):
            self.score(row, subject)
        self.seconds["scores"] = time.perf_counter() - start - self.seconds["prompts"] - self.seconds["clips"]
        self.seconds["total"] = time.perf_counter() - start
        self.seconds["per_sample"] = self.seconds["total"] / len(samples)
        self.seconds = {k: round(v, 3) for k, v in self.seconds.items()}
        routes = self.scorer.routes
        summary = summarise(rows, list(self.config.evaluators), routes)
        result = VideoEvalResult(rows, summary, self.config, t2v_label(pipeline), subject, self.seconds, routes)
        result.vbench_missing, result.draw = missing_line(routes, self.scorer.cache), self.draw
        return result


def evaluate_video(studio: VideoStudio, db: Engine, config: VideoEvalConfig, progress: bool = True) -> VideoEvalResult:
    """Run the evaluation and write its report (`Studio.evaluate_video` calls this)."""
    result = VideoEvaluation(studio, db, config).run(progress=progress)
    write_report(result)
    return result
