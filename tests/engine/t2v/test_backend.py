"""The T2V backend on tiny random pipelines: loading path, seeding, request rules, OOM, cancel, atomic output."""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest
import torch

from engine.errors import BackendUnavailable, InputError, ModelLoadError
from engine.t2v.backend import ClipRequest, device_lock, generate_clip, load_t2v
from engine.t2v.errors import GenerationBusy, GenerationCancelled, GenerationError

PROMPT = "a dog runs on the beach at sunset"


def test_tiny_pipelines_load_through_from_pretrained(tiny_cog, tiny_wan):
    assert type(tiny_cog.pipe).__name__ == "CogVideoXPipeline"
    assert type(tiny_cog.pipe.text_encoder).__name__ == "T5EncoderModel"
    assert type(tiny_cog.pipe.tokenizer).__name__ == "T5Tokenizer"
    assert type(tiny_wan.pipe).__name__ == "WanPipeline"
    assert type(tiny_wan.pipe.text_encoder).__name__ == "UMT5EncoderModel"
    for pipeline in (tiny_cog, tiny_wan):
        assert pipeline.random_weights and pipeline.device == "cpu" and pipeline.dtype == "float32"
        assert pipeline.size_multiple == 16  # VAE 8x, patch 2
    assert (tiny_cog.max_tokens, tiny_wan.max_tokens) == (226, 512)  # CogVideoX's from its transformer config


def test_easyanimate_runs_with_its_chat_templated_256_token_encoder(tiny_easyanimate):
    # EasyAnimate's __call__ takes no max_sequence_length and iterates a None negative prompt under guidance:
    # both broke the first version of the backend, which called every family alike.
    ea = tiny_easyanimate
    assert type(ea.pipe).__name__ == "EasyAnimatePipeline"
    assert type(ea.pipe.text_encoder).__name__ == "Qwen2VLForConditionalGeneration"
    clip = ea.generate(ClipRequest(PROMPT, seed=2))
    assert clip.frames.shape == (9, 32, 32, 3)
    assert np.array_equal(clip.frames, ea.generate(ClipRequest(PROMPT, seed=2)).frames)
    # The limit counts the chat template's tokens too; byte-level BPE splits at spaces, so a second word adds
    # exactly its own tokens (" dog" is one learned token).
    tokenizer = ea.pipe.tokenizer
    assert ea.count_tokens("dog") > len(tokenizer("dog").input_ids)
    assert len(tokenizer(" dog").input_ids) == 1
    assert ea.count_tokens("dog dog") == ea.count_tokens("dog") + 1
    assert ea.max_tokens == 256
    with pytest.raises(InputError, match=r"the prompt is \d+ tokens; tiny-random-easyanimate's text encoder reads "):
        ea.check(ClipRequest("dog " * 256))


def test_same_seed_same_frames(tiny_cog):
    a = tiny_cog.generate(ClipRequest(PROMPT, seed=3))
    b = tiny_cog.generate(ClipRequest(PROMPT, seed=3))
    c = tiny_cog.generate(ClipRequest(PROMPT, seed=4))
    assert a.frames.shape == (9, 32, 32, 3) and a.frames.dtype == np.uint8
    assert np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)
    row = a.as_dict()
    assert row["model"] == "tiny-random-cogvideox"
    assert (row["seed"], row["frames"], row["height"], row["width"], row["steps"], row["fps"]) == (3, 9, 32, 32, 4, 8)
    assert row["random_weights"] and row["label"] == "random weights — pipeline check only"
    assert row["prompt_tokens"] == 9  # 8 known words, one token each, plus </s>


def test_asked_frame_counts_come_out(tiny_cog, tiny_wan):
    assert tiny_cog.generate(ClipRequest("a cat", frames=17, steps=1)).frames.shape == (17, 32, 32, 3)
    assert tiny_wan.generate(ClipRequest("a cat", frames=13, steps=1, height=48)).frames.shape == (13, 48, 32, 3)


def test_prompt_over_the_text_encoder_limit_says_limit_and_count(tiny_cog, tiny_wan):
    assert tiny_cog.count_tokens("dog " * 225) == 226  # one token per known word, plus </s>
    tiny_cog.check(ClipRequest("dog " * 225))  # exactly at the limit: accepted
    with pytest.raises(InputError) as info:
        tiny_cog.check(ClipRequest("dog " * 226))
    msg = str(info.value)
    assert msg == (
        "the prompt is 227 tokens; tiny-random-cogvideox's text encoder reads at most 226: shorten it by 1 tokens"
    )
    with pytest.raises(InputError, match="the prompt is 601 tokens; tiny-random-wan's text encoder reads at most 512"):
        tiny_wan.check(ClipRequest("dog " * 600))


@pytest.mark.parametrize(
    ("request_kwargs", "message"),
    [
        ({"frames": 12}, "12 frames: tiny-random-cogvideox makes clips of 8k+1 frames; ask for 9 or 17"),
        ({"frames": 5}, "5 frames: tiny-random-cogvideox makes clips of 8k+1 frames; ask for 1 or 9"),
        ({"height": 40}, "height 40: tiny-random-cogvideox needs a multiple of 16; use 32 or 48"),
        ({"width": 8}, "width 8: tiny-random-cogvideox needs a multiple of 16; use 16"),
    ],
)
def test_frame_count_and_size_rules(tiny_cog, request_kwargs, message):
    with pytest.raises(InputError) as info:
        tiny_cog.check(ClipRequest(PROMPT, **request_kwargs))
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": "  "}, "the prompt is empty"),
        ({"prompt": "x", "seed": -1}, "seed must be in 0 .. 2^63 - 1, got -1"),
        ({"prompt": "x", "frames": 0}, "frames must be in 1 .. 257, got 0"),
        ({"prompt": "x", "frames": 4900}, "frames must be in 1 .. 257, got 4900"),
        ({"prompt": "x", "steps": 0}, "steps must be in 1 .. 1000, got 0"),
        ({"prompt": "x", "width": 4096}, "width must be in 8 .. 2048, got 4096"),
        ({"prompt": "x", "fps": 0.0}, "fps must be in (0, 240], got 0"),
        ({"prompt": "x", "guidance": -1.0}, "guidance must be in 0 .. 50, got -1"),
    ],
)
def test_clip_request_refuses_bad_values(kwargs, message):
    with pytest.raises(InputError) as info:
        ClipRequest(**kwargs)
    assert str(info.value) == message


def test_gpu_out_of_memory_says_what_to_lower_and_writes_nothing(tiny_cog, tmp_path, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(type(tiny_cog.pipe), "__call__", out_of_memory)
    out = tmp_path / "clip.mp4"
    with pytest.raises(GenerationError) as info:
        generate_clip(tiny_cog, ClipRequest(PROMPT), out)
    assert str(info.value) == (
        "GPU out of memory generating 9 frames at 32x32 with tiny-random-cogvideox: try fewer frames, a smaller "
        "height/width, CPU offload (--offload model, or sequential), VAE tiling (--vae-tiling)"
    )
    assert list(tmp_path.iterdir()) == []


def test_progress_and_cancel(tiny_cog, tmp_path):
    steps: list[tuple[int, int]] = []
    tiny_cog.generate(ClipRequest(PROMPT), progress=lambda i, n: steps.append((i, n)))
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]

    cancel = threading.Event()

    def cancel_after_two(i: int, n: int) -> None:
        if i == 2:
            cancel.set()

    out = tmp_path / "clip.mp4"
    with pytest.raises(GenerationCancelled, match="cancelled after 2 of 4 steps"):
        generate_clip(tiny_cog, ClipRequest(PROMPT), out, progress=cancel_after_two, cancel=cancel)
    with pytest.raises(GenerationCancelled, match="before it started"):
        generate_clip(tiny_cog, ClipRequest(PROMPT), out, cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_one_generation_per_device_at_a_time(tiny_cog):
    results = []
    lock = device_lock("cpu")
    lock.acquire()  # another generation holds the device
    try:
        worker = threading.Thread(target=lambda: results.append(tiny_cog.generate(ClipRequest(PROMPT, steps=1))))
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive() and results == []  # waiting, not running beside it
    finally:
        lock.release()
    worker.join(timeout=120)
    assert len(results) == 1


def test_busy_device_refuses_at_once_when_asked_not_to_wait(tiny_cog, tmp_path):
    lock = device_lock("cpu")
    lock.acquire()  # another generation holds the device
    try:
        start = time.perf_counter()
        with pytest.raises(GenerationBusy, match=r"^busy: another video is being generated on cpu "):
            generate_clip(tiny_cog, ClipRequest(PROMPT, steps=1), tmp_path / "c.mp4", wait=False)
        assert time.perf_counter() - start < 5 and not (tmp_path / "c.mp4").exists()
    finally:
        lock.release()
    assert not lock.locked()
    clip = tiny_cog.generate(ClipRequest(PROMPT, steps=1), wait=False)  # free again: runs, and lets go of the lock
    assert clip.frames.shape[0] == 9 and not lock.locked()


def test_offload_and_cuda_are_refused_without_cuda():
    with pytest.raises(BackendUnavailable, match="--offload model moves weights between the CPU and a GPU"):
        load_t2v("tiny-random-cogvideox", device="cpu", offload="model")
    with pytest.raises(InputError, match="unknown offload mode 'gpu'"):
        load_t2v("tiny-random-cogvideox", device="cpu", offload="gpu")
    with pytest.raises(InputError, match="unknown dtype 'int8'"):
        load_t2v("tiny-random-cogvideox", device="cpu", dtype="int8")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="CUDA is not available"):
            load_t2v("tiny-random-cogvideox", device="cuda")


def test_real_preset_loads_a_local_folder_through_the_same_path(tiny_cog, monkeypatch):
    monkeypatch.setenv("VIDPROMPTER_T2V_COGVIDEOX_2B", tiny_cog.source)
    pipeline = load_t2v("cogvideox-2b", device="cpu")
    assert type(pipeline.pipe).__name__ == "CogVideoXPipeline" and not pipeline.random_weights
    request = pipeline.check(ClipRequest(PROMPT))
    assert (request.frames, request.height, request.width, request.steps, request.fps) == (49, 480, 720, 50, 8.0)


def test_broken_pipeline_folder_is_one_line(tiny_cog, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_cog.source, broken)
    for weights in (broken / "transformer").glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ModelLoadError) as info:
        load_t2v(str(broken), device="cpu")
    assert str(info.value).startswith(f"text-to-video model 'broken' failed to load from {broken}: ")
    assert "\n" not in str(info.value)


def test_generate_clip_writes_a_playable_mp4(tiny_wan, tmp_path):
    from engine.video import load_video

    out = tmp_path / "clips" / "dog.mp4"
    clip = generate_clip(tiny_wan, ClipRequest(PROMPT, seed=1), out)
    assert clip.path == out and clip.as_dict()["out"] == str(out)
    frames, meta = load_video(out, num_frames=100)
    assert frames.shape == (9, 32, 32, 3) and meta.fps == 16.0
    assert [p.name for p in out.parent.iterdir()] == ["dog.mp4"]  # no temp file left
    assert out.stat().st_mode & 0o777 == 0o666 & ~_umask()  # like any new file, not mkstemp's 0600


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_failed_write_leaves_no_half_written_file(tiny_cog, tmp_path, monkeypatch):
    import engine.video as video

    out = tmp_path / "clip.mp4"
    out.write_bytes(b"previous clip")

    def half_write(frames, path, fps):
        path.write_bytes(b"\x00\x00\x00\x18ftypisom")  # a few bytes of an mp4 header, then the disk fills
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(video, "write_video", half_write)
    with pytest.raises(GenerationError, match=r"could not write .*clip.mp4: \[Errno 28\] No space left on device"):
        generate_clip(tiny_cog, ClipRequest(PROMPT, steps=1), out)
    assert out.read_bytes() == b"previous clip"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_bad_output_path_is_refused_before_generating(tiny_cog, tmp_path, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("generated before checking the output path")

    monkeypatch.setattr(type(tiny_cog), "generate", must_not_run)
    with pytest.raises(InputError, match="the output must be an .mp4 file, got 'clip.avi'"):
        generate_clip(tiny_cog, ClipRequest(PROMPT), tmp_path / "clip.avi")
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(InputError, match="dir.mp4 is a folder; name the .mp4 file to write"):
        generate_clip(tiny_cog, ClipRequest(PROMPT), tmp_path / "dir.mp4")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="file is a file, not a folder"):
        generate_clip(tiny_cog, ClipRequest(PROMPT), tmp_path / "file" / "clip.mp4")


def test_same_frames_write_the_same_mp4_bytes(tmp_path):
    """x264's macroblock-tree rate control gave different bytes (and decoded frames) for the same small frames from
    one write to the next (7 variants in 20 writes of a 96-px clip): "same seed, same clip" must hold for files."""
    import hashlib

    from engine.t2v.writer import write_clip_atomic

    rng = np.random.default_rng(0)
    blocks = np.repeat(np.repeat(rng.integers(0, 256, (9, 12, 12, 3)), 8, 1), 8, 2)
    frames = (blocks + rng.integers(-20, 20, blocks.shape)).clip(0, 255).astype(np.uint8)  # (9, 96, 96, 3)
    digests = set()
    for i in range(12):
        _ = np.empty(int(rng.integers(1, 5000)), np.uint8)  # move the allocator between writes
        path = write_clip_atomic(frames, tmp_path / f"c{i}.mp4", fps=8.0)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1
