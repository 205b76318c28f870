"""Materialisation: an annotations export -> HDPO examples with every augmentation drawn once and stored.

An export row is one pair (annotations.io.export_pairs): `chosen` over `rejected` for a (sample, task),
with `hdpo_term` saying which term it feeds and `rejected_video` / `rejected_short_prompt` /
`rejected_task` giving the rejected side's conditioning. Rows of one (sample, task, chosen) become one
`Example`: its chosen sequence, up to k rejected responses (dpo rows) and one sequence per enabled
hallucination term. Hallucinations already in the export (pairs mined by engine.hallucination) are used
as they are; missing ones are drawn here with a seed derived from (run seed, example id).

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
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.config import DataConfig, LossConfig

MANIFEST_VERSION = 1


@dataclass
class Sequence:
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
    seqs: list[Sequence]
    pairs: list[tuple[str, int, int]]
    sample_id: int | None = None
    records: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Example:
        raw = json.loads(line)
        raw["seqs"] = [Sequence(**s) for s in raw["seqs"]]
        raw["pairs"] = [tuple(p) for p in raw["pairs"]]
        return cls(**raw)


@dataclass
class Augmenters:
    """The hallucination functions (engine.hallucination by default; tests may pass fakes).

    text(text, min_words, max_words, seed) -> (new_text, record)
    frames(frames, shuffle, paste_ratio, crop_keep, seed) -> (new_frames, record)
    """

    text: Callable[..., tuple[str, Any]]
    frames: Callable[..., tuple[np.ndarray, Any]]


def default_augmenters() -> Augmenters:
    return Augmenters(text=_engine_text, frames=_engine_frames)


def _engine_text(text: str, min_words: int, max_words: int, seed: int) -> tuple[str, Any]:
    from engine.hallucination import TextHallucinationConfig, hallucinate_text

    out = hallucinate_text(text, TextHallucinationConfig(min_words=min_words, max_words=max_words), seed=seed)
    return out.text, [asdict(e) for e in out.edits]


def _engine_frames(frames, shuffle, paste_ratio, crop_keep, seed) -> tuple[np.ndarray, Any]:
    from engine.hallucination.video import VideoHallucinationConfig, hallucinate_frames

    cfg = VideoHallucinationConfig(
        shuffle=shuffle,
        paste_ratio=tuple(paste_ratio) if paste_ratio else None,
        crop_keep=tuple(crop_keep) if crop_keep else None,
    )
    return hallucinate_frames(frames, cfg, seed=seed)


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


def _derive_seed(seed: int, *parts: Any) -> int:
    digest = hashlib.sha256(json.dumps([seed, *parts]).encode()).digest()
    return int.from_bytes(digest[:4], "little")  # non-negative, < 2**32 (numpy seeds)


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    os.close(fd)
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- building examples


@dataclass
class _Ctx:
    cfg: DataConfig
    loss: LossConfig
    seed: int
    store: FrameStore
    aug: Augmenters


def _base_seq(group: _Group, ctx: _Ctx, task: int | None = None, response: str | None = None) -> Sequence:
    task = task or group.task
    video, meta = (None, None)
    if task in (1, 2):
        video, meta = ctx.store.decode(group.video)
    return Sequence(
        task=task,
        response=group.chosen if response is None else response,
        short_prompt=group.short_prompt if task in (2, 3) else None,
        video=video,
        video_meta=meta,
    )


def _add(example: Example, term: str, seq: Sequence) -> None:
    example.seqs.append(seq)
    example.pairs.append((term, 0, len(example.seqs) - 1))


def _response_hallucination(example: Example, group: _Group, ctx: _Ctx) -> None:
    rows = group.extra.get("response_hallucination")
    if rows:
        text, record = rows[0]["rejected"], {"source": "export", "pair_id": rows[0].get("pair_id")}
    else:
        lo, hi = ctx.cfg.response_words
        text, record = ctx.aug.text(group.chosen, lo, hi, _derive_seed(ctx.seed, example.id, "response"))
    if text == group.chosen:  # nothing swappable: a pair of identical sequences teaches nothing
        return
    _add(example, "response_hallucination", _base_seq(group, ctx, response=text))
    example.records["response_hallucination"] = record


def _hallucinated_prompt(group: _Group, ctx: _Ctx, example: Example) -> str | None:
    lo, hi = ctx.cfg.prompt_words
    text, record = ctx.aug.text(group.short_prompt, lo, hi, _derive_seed(ctx.seed, example.id, "prompt"))
    example.records["input_hallucination_prompt"] = record
    return text if text != group.short_prompt else None


def _hallucinated_video(group: _Group, ctx: _Ctx, example: Example) -> tuple[str, dict[str, Any]]:
    name, meta = ctx.store.decode(group.video)
    c = ctx.cfg
    seed = _derive_seed(ctx.seed, example.id, "video")
    frames, record = ctx.aug.frames(
        np.asarray(ctx.store.get(name)), c.shuffle_frames, c.paste_ratio, c.crop_keep, seed
    )
    example.records["input_hallucination_video"] = record
    return ctx.store.put(frames), meta


def _input_from_export(example: Example, group: _Group, ctx: _Ctx, row: dict[str, Any]) -> None:
    seq = _base_seq(group, ctx)
    if row.get("rejected_video") and row["rejected_video"] != group.video and group.task in (1, 2):
        seq.video, seq.video_meta = ctx.store.decode(row["rejected_video"])
    if row.get("rejected_short_prompt") and group.task in (2, 3):
        seq.short_prompt = row["rejected_short_prompt"]
    if seq.key() != example.seqs[0].key():
        _add(example, "input_hallucination", seq)
        example.records["input_hallucination"] = {"source": "export", "pair_id": row.get("pair_id")}


def _input_hallucination(example: Example, group: _Group, ctx: _Ctx) -> None:
    rows = group.extra.get("input_hallucination")
    if rows:
        _input_from_export(example, group, ctx, rows[0])
        return
    seq = _base_seq(group, ctx)
    perturb_video = group.task == 1 or (group.task == 2 and ctx.cfg.task2_input in ("video", "both"))
    perturb_prompt = group.task == 3 or (group.task == 2 and ctx.cfg.task2_input in ("prompt", "both"))
    if perturb_video:
        seq.video, seq.video_meta = _hallucinated_video(group, ctx, example)
    if perturb_prompt:
        seq.short_prompt = _hallucinated_prompt(group, ctx, example) or seq.short_prompt
    if seq.key() != example.seqs[0].key():
        _add(example, "input_hallucination", seq)


def _task_hallucination(example: Example, group: _Group, ctx: _Ctx) -> None:
    """Eq. 12-13: the Task-3 chosen response under the Task-1 and Task-2 conditioning of its sample."""
    if group.task != 3 or not group.video:
        return
    for other in (1, 2):
        _add(example, "task_hallucination", _base_seq(group, ctx, task=other))
    example.records["task_hallucination"] = {"tasks": [1, 2]}


def build_example(group: _Group, ctx: _Ctx) -> Example:
    ex_id = hashlib.sha256(json.dumps([str(group.sample_id), group.task, group.chosen]).encode()).hexdigest()[:16]
    example = Example(id=ex_id, task=group.task, seqs=[_base_seq(group, ctx)], pairs=[], sample_id=group.sample_id)
    if ctx.loss.dpo:
        for text in group.rejected[: ctx.cfg.num_rejected]:
            _add(example, "dpo", _base_seq(group, ctx, response=text))
    if ctx.loss.response_hallucination:
        _response_hallucination(example, group, ctx)
    if ctx.loss.input_hallucination:
        _input_hallucination(example, group, ctx)
    if ctx.loss.task_hallucination:
        _task_hallucination(example, group, ctx)
    return example


# --------------------------------------------------------------------------- the data folder


def _manifest(export_path: str, cfg: DataConfig, loss: LossConfig, seed: int) -> dict[str, Any]:
    return {
        "version": MANIFEST_VERSION,
        "export_sha256": file_sha256(export_path),
        "data": asdict(cfg) | {"path": None},  # where it came from does not matter
        "terms": loss.enabled,
        "seed": seed,
    }


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
    ctx = _Ctx(
        cfg, loss, seed, FrameStore(out / "frames", cfg.num_frames, cfg.frame_size), augmenters or default_augmenters()
    )
    groups = group_rows(read_export(export_path), cfg)
    examples = [build_example(g, ctx) for g in groups]
    examples = [e for e in examples if e.pairs]
    if cfg.max_examples is not None:
        examples = examples[: cfg.max_examples]
    if not examples:
        raise ValueError(f"{export_path}: no trainable examples (split {cfg.split!r}, tasks {cfg.tasks})")
    tmp = examples_path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(e.to_json() + "\n" for e in examples), encoding="utf-8")
    os.replace(tmp, examples_path)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return examples_path


def load_examples(path: str | os.PathLike, tasks: list[int] | None = None) -> list[Example]:
    with open(path, encoding="utf-8") as fh:
        examples = [Example.from_json(line) for line in fh if line.strip()]
    return [e for e in examples if tasks is None or e.task in tasks]


# --------------------------------------------------------------------------- batching


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """A seeded permutation per epoch: tasks mix in every batch (paper: mixed multi-task training)."""
    return np.random.default_rng(_derive_seed(seed, "order", epoch)).permutation(n).tolist()


def micro_batches(n: int, micro: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """This process's micro-batches of an epoch (example indices).

    The permutation is chunked into micro-batches; those are dealt round-robin to processes, and the
    count is cut to a multiple of `world` so every process runs the same number of steps (DDP sync).
    """
    order = epoch_order(n, seed, epoch)
    chunks = [order[i : i + micro] for i in range(0, n, micro)]
    usable = len(chunks) - len(chunks) % world if len(chunks) >= world else len(chunks)
    return chunks[rank:usable:world] or chunks[:1]


def iter_sequences(examples: list[Example]) -> Iterator[Sequence]:
    for example in examples:
        yield from example.seqs
