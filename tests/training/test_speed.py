"""Issue 15 item 3 on the CPU: helper G's kernels on by default in the trainer (same loss on and off), the
prefetch feed (same losses, encoding in worker threads), torch.compile of the blocks (runs, or falls back
with one log line) and shape buckets (same log-probs, widths in multiples)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
import torch

from tests.toy_data import fake_frames, fake_text
from training.attention import BLOCK_ATTENTION, vision_attention
from training.config import load_config
from training.data import Augmenters
from training.feed import BatchFeed
from training.logps import encode, flatten, forward_logps
from training.speed import compile_blocks, compile_targets
from training.trainer import Trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAKES = Augmenters(text=fake_text, frames=fake_frames)


def _cfg(export, tmp_path, **over):
    base = {
        "data.path": str(export),
        "run.output_dir": str(tmp_path),
        "run.tensorboard": False,
        "data.tasks": [1, 2, 3],
        "optim.max_steps": 2,
        "optim.batch_size": 4,
        "optim.micro_batch_size": 2,
    }
    return load_config(CONFIGS / "tiny-cpu.yaml", {**base, **over})


def _run(export, tmp_path, name, **over):
    trainer = Trainer(_cfg(export, tmp_path, **over), tmp_path / name, augmenters=FAKES)
    return trainer, trainer.train()


def test_block_attention_and_chunked_logps_are_the_default_and_change_no_loss(full_export, tmp_path):
    fast, on = _run(full_export, tmp_path, "on")
    assert fast.cfg.model.vision_attention == "blocks" and fast.cfg.model.logps == "chunked"
    assert vision_attention(fast.models.lm.model) == BLOCK_ATTENTION  # the trainer switched the tower
    slow, off = _run(full_export, tmp_path, "off", **{"model.vision_attention": "stock", "model.logps": "full"})
    assert vision_attention(slow.models.lm.model) == "sdpa"
    for a, b in zip(on.metrics, off.metrics, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)


def test_prefetch_workers_encode_off_the_training_thread_with_the_same_losses(full_export, tmp_path):
    inline, plain = _run(full_export, tmp_path, "inline", **{"data.prefetch_workers": 0})
    assert inline.data.feed.prefetched == 0 and inline.data.feed.inline > 0
    trainer = Trainer(_cfg(full_export, tmp_path, **{"data.prefetch_workers": 2}), tmp_path / "fed", augmenters=FAKES)
    threads: list[str] = []
    encode_examples = trainer._encode_examples

    def recording(examples):
        threads.append(threading.current_thread().name)
        return encode_examples(examples)

    trainer._encode_examples = recording
    fed = trainer.train()
    assert [m["loss"] for m in fed.metrics] == [m["loss"] for m in plain.metrics]
    # 2 steps x 2 micro-batches: only the run's first is encoded in the training thread (nothing runs yet to
    # overlap with); each later one was handed to a worker before the micro-batch ahead of it ran
    assert len(threads) == 4 and threads.count("MainThread") == 1
    assert sum(t.startswith("feed") for t in threads) == 3
    assert trainer.data.feed.prefetched >= 3


def test_feed_returns_each_key_once_and_surfaces_worker_errors():
    feed = BatchFeed(workers=2, depth=2)
    release = threading.Event()
    feed.prefetch([("a", lambda: release.wait(5) and "A"), ("b", lambda: "B"), ("c", lambda: "C")])
    assert len(feed._pending) == 2  # depth bounds what is in flight
    release.set()
    assert (feed.take("b", lambda: "inline"), feed.take("a", lambda: "inline")) == ("B", "A")
    assert feed.take("c", lambda: "inline") == "inline"  # not prefetched: encoded now
    feed.prefetch([("d", lambda: 1 / 0)])
    with pytest.raises(ZeroDivisionError):
        feed.take("d", lambda: None)
    feed.close()


def test_bucketed_shapes_give_the_same_logps(full_export, tmp_path):
    trainer = Trainer(_cfg(full_export, tmp_path), tmp_path / "b", augmenters=FAKES)
    trainer.setup()
    seqs = flatten(trainer.data.examples[:3]).seqs
    lm, frames = trainer.models.lm, trainer.data.frames_dir
    exact = encode(lm, seqs, frames)
    padded = encode(lm, seqs, frames, multiple=16)
    assert padded["input_ids"].shape[1] % 16 == 0 and (padded["keep"] - 1) % 16 == 0
    assert padded["input_ids"].shape[1] > exact["input_ids"].shape[1]
    with torch.no_grad():
        a = forward_logps(lm.model, exact, "cpu")
        b = forward_logps(lm.model, padded, "cpu")
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)
    trainer.data.feed.close()


def test_compile_blocks_runs_with_the_same_losses(full_export, tmp_path, caplog):
    _, eager = _run(full_export, tmp_path, "eager")
    with caplog.at_level(logging.WARNING, logger="training.speed"):
        trainer, compiled = _run(
            full_export,
            tmp_path,
            "compiled",
            **{
                "model.compile": "blocks",
                "model.compile_backend": "aot_eager",
                "model.gradient_checkpointing": "on",  # compiled blocks inside non-reentrant checkpointing
            },
        )
    assert not caplog.records  # compiled, no fallback
    blocks = compile_targets(trainer.models.model)
    assert len(blocks) == 4 and all(m._compiled_call_impl is not None for m in blocks)  # 2 decoder + 2 vision
    for a, b in zip(compiled.metrics, eager.metrics, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


def _refuses_matmuls(gm, example_inputs):
    """A torch.compile backend that compiles the probe (no matmul) and fails on any block."""
    if any("linear" in str(n.target) or "matmul" in str(n.target) for n in gm.graph.nodes):
        raise RuntimeError("this backend cannot compile matmuls")
    return gm.forward


def test_compile_falls_back_to_eager_with_one_log_line(full_export, tmp_path):
    trainer = Trainer(_cfg(full_export, tmp_path), tmp_path / "s", augmenters=FAKES)
    trainer.setup()
    trainer.data.feed.close()
    lm = trainer.models.lm
    batch = encode(lm, flatten(trainer.data.examples[:2]).seqs, trainer.data.frames_dir)
    with torch.no_grad():
        eager = forward_logps(lm.model, batch, "cpu")
    lines: list[str] = []
    assert compile_blocks(lm.model, lambda gm, _: 1 / 0, torch.device("cpu"), log=lines.append) == 0  # probe fails
    assert len(lines) == 1 and "not usable here" in lines[0] and "training eager" in lines[0]
    lines.clear()
    assert compile_blocks(lm.model, _refuses_matmuls, torch.device("cpu"), log=lines.append) == 4
    with torch.no_grad():
        first = forward_logps(lm.model, batch, "cpu")  # the first block fails to compile: all go eager, once
        second = forward_logps(lm.model, batch, "cpu")
    assert len(lines) == 1 and "a compiled block failed" in lines[0]
    assert all(m._compiled_call_impl is None for m in compile_targets(lm.model))
    assert torch.equal(first, eager) and torch.equal(second, eager)


@pytest.mark.slow
def test_compile_blocks_with_inductor_on_cpu(full_export, tmp_path, caplog):
    """The default backend: compiles here (gcc present, ~1-2 min) or falls back with one line; same losses."""
    _, eager = _run(full_export, tmp_path, "eager")
    with caplog.at_level(logging.WARNING, logger="training.speed"):
        _, compiled = _run(full_export, tmp_path, "inductor", **{"model.compile": "blocks"})
    # At most our one fallback line. torch's own warnings propagate to the same capture (cpp_extension's "no CUDA
    # runtime" the first time a process imports it, dynamo's recompile limit): not ours to count.
    assert len([r for r in caplog.records if r.name.startswith("training.")]) <= 1
    for a, b in zip(compiled.metrics, eager.metrics, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
