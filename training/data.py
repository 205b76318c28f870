"""Materialisation: an annotations export -> HDPO examples with every augmentation drawn once and stored.

An export row is one pair (annotations.io.export_pairs): `chosen` over `rejected` for a (sample, task),
with `hdpo_term` saying which term it feeds and `rejected_video` / `rejected_short_prompt` /
`rejected_task` giving the rejected side's conditioning. Rows of one (sample, task, chosen) become one
`Example`: its chosen sequence, up to k rejected responses (dpo rows) and one sequence per enabled
hallucination term. Hallucinations already in the export (pairs mined by engine.hallucination) are used
as they are; missing ones are drawn by engine.hallucination.pairs.build_pairs (the same builder the
viewer's reward gaps call) with a seed derived from (run seed, example id).

Everything lands in `<run>/data/`:
    examples.jsonl          one Example per line (the sequences, the pairs, the augmentation records)
    frames/<sha>.npy        uint8 (T, H, W, 3) frame arrays: decoded originals and hallucinated videos
    manifest.json           what produced it (export hash + data config + seed); a match is reused
so the reference pass, the policy pass, every epoch and a resumed run see byte-identical inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from annotations.files import atomic_path, atomic_write
from engine.errors import InputError
from engine.hallucination.pairs import (
    NONE,
    PERTURBED,
    Augmenters,
    PairConfig,
    PairSeq,
    Perturbations,
    build_pairs,
    derive_seed,
)
from engine.strength import EnsembleMeter, Meter, keep_in_band
from engine.types import Task
from training.config import DataConfig, LossConfig

MANIFEST_VERSION = 2  # 2: perturbations drawn by engine.hallucination.pairs (per-example seed, then per term)

__all__ = ["Augmenters", "Example", "TrainSeq", "load_examples", "materialise", "micro_batches"]


@dataclass
class TrainSeq:
    """One (conditioning, response) whose summed response log-prob a term needs."""

    task: int
    response: str
    short_prompt: str | None = None
    video: str | None = None
    """Frame array file name under <data>/frames (content-addressed: the name is its sha256)."""
    video_meta: dict[str, Any] | None = None
    """engine.types.VideoMeta fields of the decoded clip (fps and sampled indices for the processor)."""

    def key(self) -> str:
        """Content hash: the reference cache key and the identity of the sequence."""
        blob = json.dumps([self.task, self.short_prompt, self.video, self.response], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class Example:
    """All sequences one HDPO example needs, and which pairs of them each term compares.

    seqs[0] is always the chosen (x, q, y_g); pairs are (term, preferred index, dispreferred index).
    """

    id: str
    task: int
    seqs: list[TrainSeq]
    pairs: list[tuple[str, int, int]]
    sample_id: int | None = None
    records: dict[str, Any] = field(default_factory=dict)
    """What build_pairs changed (text edits, frame ops; "seed" is the seed it was given)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Example:
        raw = json.loads(line)
        raw["seqs"] = [TrainSeq(**s) for s in raw["seqs"]]
        raw["pairs"] = [tuple(p) for p in raw["pairs"]]
        return cls(**raw)


def default_augmenters() -> Augmenters:
    """engine.hallucination's text and frame augmenters (spaCy word swaps, frame shuffle + paste)."""
    return Augmenters()


# --------------------------------------------------------------------------- reading the export


def read_export(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of an annotations export (JSONL or Parquet)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"export {path} not found")
    if path.suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path).to_dict("records")
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class _Group:
    """Export rows of one (sample, task, chosen)."""

    task: int
    sample_id: Any
    video: str | None
    short_prompt: str | None
    chosen: str
    rejected: list[str] = field(default_factory=list)
    extra: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def group_rows(rows: list[dict[str, Any]], cfg: DataConfig) -> list[_Group]:
    """Rows of the configured split and tasks grouped into examples, in a stable order."""
    groups: dict[tuple, _Group] = {}
    for row in rows:
        if (row.get("split") or "train") != cfg.split or int(row["task"]) not in cfg.tasks:
            continue
        key = (str(row.get("sample_id")), int(row["task"]), row["chosen"])
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(
                int(row["task"]), row.get("sample_id"), row.get("video"), row.get("short_prompt"), row["chosen"]
            )
        term = row.get("hdpo_term") or "dpo"
        if term == "dpo":
            if row["rejected"] != row["chosen"] and row["rejected"] not in group.rejected:
                group.rejected.append(row["rejected"])
        else:
            group.extra.setdefault(term, []).append(row)
    return [groups[k] for k in sorted(groups, key=lambda k: (k[0], k[1], k[2]))]


# --------------------------------------------------------------------------- frames


class FrameStore:
    """Content-addressed uint8 frame arrays under <data>/frames, plus decoding of source videos."""

    def __init__(self, root: Path, num_frames: int, frame_size: int | None) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.num_frames = num_frames
        self.frame_size = frame_size
        self._decoded: dict[str, tuple[str, dict[str, Any]]] = {}

    def put(self, frames: np.ndarray) -> str:
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        digest = hashlib.sha256(frames.tobytes() + str(frames.shape).encode()).hexdigest()[:32]
        name = f"{digest}.npy"
        if not (self.root / name).exists():
            _atomic_np_save(self.root / name, frames)
        return name

    def get(self, name: str) -> np.ndarray:
        return np.load(self.root / name, mmap_mode="r")

    def decode(self, video: str) -> tuple[str, dict[str, Any]]:
        """Decode a source video once: (frame file name, VideoMeta fields)."""
        if video not in self._decoded:
            from engine.video import load_video

            frames, meta = load_video(video, num_frames=self.num_frames, resize=self.frame_size)
            self._decoded[video] = (self.put(frames), asdict(meta))
        return self._decoded[video]


def _atomic_np_save(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


# --------------------------------------------------------------------------- building examples


@dataclass
class _Ctx:
    pairs: PairConfig
    seed: int
    store: FrameStore
    aug: Augmenters
    meter: Meter | None = None
    """Measures hallucination strength when data.strength_band is set (engine.strength)."""


def example_id(group: _Group) -> str:
    return hashlib.sha256(json.dumps([str(group.sample_id), group.task, group.chosen]).encode()).hexdigest()[:16]


def _sample_video(group: _Group, ctx: _Ctx) -> tuple[str, dict[str, Any]] | None:
    """(frame file, meta) of the sample's video when a sequence of this example is conditioned on it."""
    task = Task(group.task)
    # Task 3 reads its video for task hallucination (Eq. 12-13) and to measure strength against (a band).
    wanted = task.needs_video or (
        task == Task.BEAUTIFY and ("task_hallucination" in ctx.pairs.terms or ctx.pairs.strength_band is not None)
    )
    return ctx.store.decode(group.video) if wanted and group.video else None


def _given(group: _Group, ctx: _Ctx) -> tuple[Perturbations, dict[str, Any], dict[str, Any] | None]:
    """Hallucinations already in the export: (perturbations, their records, meta of an exported video)."""
    given, records, meta = Perturbations(), {}, None
    if rows := group.extra.get("response_hallucination"):
        given.response = rows[0]["rejected"]
        records["response_hallucination"] = {"source": "export", "pair_id": rows[0].get("pair_id")}
    if rows := group.extra.get("input_hallucination"):
        row = rows[0]
        if row.get("rejected_video") and row["rejected_video"] != group.video and Task(group.task).needs_video:
            name, meta = ctx.store.decode(row["rejected_video"])
            given.frames = np.asarray(ctx.store.get(name))
        if row.get("rejected_short_prompt") and Task(group.task).needs_prompt:
            given.prompt = row["rejected_short_prompt"]
        records["input_hallucination"] = {"source": "export", "pair_id": row.get("pair_id")}
    return given, records, meta


def build_example(group: _Group, ctx: _Ctx) -> Example:
    """One example: build_pairs decides the sequences and pairs; frames land in the content-addressed store."""
    ex_id = example_id(group)
    video = _sample_video(group, ctx)
    frames = np.asarray(ctx.store.get(video[0])) if video else None
    given, export_records, given_meta = _given(group, ctx)
    seed = derive_seed(ctx.seed, ex_id)
    try:
        built = build_pairs(
            group.task, group.short_prompt, frames, group.chosen, group.rejected, ctx.pairs, seed, given, ctx.aug
        )
    except InputError as exc:
        raise ValueError(f"sample {group.sample_id}, task {group.task}: {exc}") from None
    built = keep_in_band(built, frames, ctx.meter, ctx.pairs)[0]  # no band: unchanged
    perturbed = None
    if built.perturbed_frames is not None:  # an exported video keeps its own meta; a drawn one the sample's
        drawn_meta = video[1] if video is not None else None  # drawn frames exist only where the sample has one
        perturbed = (ctx.store.put(built.perturbed_frames), given_meta if given.frames is not None else drawn_meta)
    seqs = [_train_seq(s, video, perturbed) for s in built.seqs]
    records = built.records | {k: v for k, v in export_records.items() if k in built.records}
    return Example(ex_id, group.task, seqs, built.pairs, group.sample_id, records)


StoredFrames = tuple[str, dict[str, Any] | None]
"""A frame array in the store and its VideoMeta fields: (file name, meta)."""


def _train_seq(seq: PairSeq, video: StoredFrames | None, perturbed: StoredFrames | None) -> TrainSeq:
    """The builder's sequence with its frames as a stored file (name, meta)."""
    if seq.frames == NONE:
        return TrainSeq(seq.task, seq.response, seq.short_prompt)
    stored = perturbed if seq.frames == PERTURBED else video
    if stored is None:
        raise ValueError(f"a {seq.frames} sequence of task {seq.task} without its frames")
    return TrainSeq(seq.task, seq.response, seq.short_prompt, *stored)


def strength_meter(pairs: PairConfig) -> Meter | None:
    """The evaluator ensemble that measures strength, loaded now (None without a band)."""
    if pairs.strength_band is None:
        return None
    meter = EnsembleMeter(pairs.strength_evaluators)
    meter.check()  # an evaluator that cannot load fails here, in one line, before any example is built
    return meter


# --------------------------------------------------------------------------- the data folder


def _manifest(export_path: str, cfg: DataConfig, loss: LossConfig, seed: int) -> dict[str, Any]:
    return {
        "version": MANIFEST_VERSION,
        "export_sha256": file_sha256(export_path),
        # where it came from and how it is fed (prefetch, padding) do not change the examples
        "data": {k: v for k, v in asdict(cfg).items() if k not in _FEED_FIELDS} | {"path": None},
        "terms": loss.enabled,
        "loss_kind": loss.kind,  # kto adds mismatched sequences, sft keeps examples without pairs
        "seed": seed,
    }


#: DataConfig fields that change how examples are fed, not what they are (kept out of the manifest).
_FEED_FIELDS = ("prefetch_workers", "prefetch_batches", "pad_to_multiple", "prompt_cache_items")

#: The pair term of KTO's mismatched sequence: (x_i, y_g of another sample), only its log-ratio is read.
KTO_KL = "kto_kl"


def add_kto_mismatched(examples: list[Example], seed: int) -> None:
    """KTO's KL sequences: each example gets its conditioning x with the chosen response y' of another
    example (seqs[0] of a donor), paired as (KTO_KL, 0, i). TRL rotates completions by one within each
    batch of its dataset: (x_1, y_n), (x_2, y_1), ...; here the rotation runs over a seeded order of all
    examples, the donor skipping back past examples of the same sample (Task 1 and 2 of one clip describe
    the same video, so their responses would not be mismatched)."""
    order = np.random.default_rng(derive_seed(seed, KTO_KL)).permutation(len(examples)).tolist()
    for j, i in enumerate(order):
        example = examples[i]
        chosen = example.seqs[0]
        donors = (examples[order[j - k]] for k in range(1, len(order)))  # lazily: usually the first one fits
        fits = (d for d in donors if d.sample_id != example.sample_id and d.seqs[0].response != chosen.response)
        donor = next(fits, None)
        if donor is None:  # one sample only: no mismatched response exists; z_ref comes from the others
            continue
        example.seqs.append(replace(example.seqs[0], response=donor.seqs[0].response))
        example.pairs.append((KTO_KL, 0, len(example.seqs) - 1))


def materialise(
    export_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    cfg: DataConfig,
    loss: LossConfig,
    seed: int,
    augmenters: Augmenters | None = None,
) -> Path:
    """Write <out_dir>/examples.jsonl (reused when the manifest matches) and return its path."""
    out = Path(out_dir)
    examples_path, manifest_path = out / "examples.jsonl", out / "manifest.json"
    manifest = _manifest(str(export_path), cfg, loss, seed)
    if examples_path.exists() and manifest_path.exists() and json.loads(manifest_path.read_text()) == manifest:
        return examples_path
    out.mkdir(parents=True, exist_ok=True)
    store = FrameStore(out / "frames", cfg.num_frames, cfg.frame_size)
    pairs = cfg.pair_config(loss)
    ctx = _Ctx(pairs, seed, store, augmenters or default_augmenters(), strength_meter(pairs))
    groups = group_rows(read_export(export_path), cfg)
    try:
        examples = [build_example(g, ctx) for g in groups]
    except ValueError as exc:
        raise ValueError(f"{export_path}: {exc}") from None
    examples = [e for e in examples if e.pairs or loss.kind == "sft"]  # sft reads the chosen seqs[0] only
    if cfg.max_examples is not None:
        examples = examples[: cfg.max_examples]
    if loss.kind == "kto":
        add_kto_mismatched(examples, seed)
    if not examples:
        raise ValueError(f"{export_path}: no trainable examples (split {cfg.split!r}, tasks {cfg.tasks})")
    atomic_write(examples_path, "".join(e.to_json() + "\n" for e in examples))
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return examples_path


def load_examples(path: str | os.PathLike, tasks: list[int] | None = None) -> list[Example]:
    with open(path, encoding="utf-8") as fh:
        examples = [Example.from_json(line) for line in fh if line.strip()]
    return [e for e in examples if tasks is None or e.task in tasks]


# --------------------------------------------------------------------------- batching


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """A seeded permutation per epoch: tasks mix in every batch (paper: mixed multi-task training)."""
    return np.random.default_rng(derive_seed(seed, "order", epoch)).permutation(n).tolist()


def micro_batches(n: int, micro: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """This process's micro-batches of an epoch (example indices).

    The permutation is chunked into micro-batches; those are dealt round-robin to processes, and the
    count is cut to a multiple of `world` so every process runs the same number of steps (DDP sync).
    """
    order = epoch_order(n, seed, epoch)
    chunks = [order[i : i + micro] for i in range(0, n, micro)]
    usable = len(chunks) - len(chunks) % world if len(chunks) >= world else len(chunks)
    return chunks[rank:usable:world] or chunks[:1]


def iter_sequences(examples: list[Example]) -> Iterator[TrainSeq]:
    for example in examples:
        yield from example.seqs
