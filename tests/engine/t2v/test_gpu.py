"""CUDA paths of the T2V backend on the tiny pipelines: bf16 placement, fp32 Wan VAE, both offload modes.
Skipped where no GPU is present."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)"),
]


def test_bf16_on_cuda_with_the_wan_vae_kept_in_fp32():
    from engine.t2v.backend import ClipRequest, load_t2v

    wan = load_t2v("tiny-random-wan", device="cuda")
    assert wan.dtype == "bfloat16" and wan.pipe.transformer.dtype == torch.bfloat16
    assert wan.pipe.vae.dtype == torch.float32
    clip = wan.generate(ClipRequest("a dog runs", seed=0))
    assert clip.frames.shape == (9, 32, 32, 3) and clip.device == "cuda"


@pytest.mark.parametrize("offload", ["model", "sequential"])
def test_cpu_offload_modes_generate(offload, tmp_path):
    from engine.t2v.backend import ClipRequest, generate_clip, load_t2v

    cog = load_t2v("tiny-random-cogvideox", device="cuda", offload=offload, vae_tiling=True)
    clip = generate_clip(cog, ClipRequest("a dog runs", steps=2), tmp_path / "clip.mp4")
    assert clip.frames.shape == (9, 32, 32, 3) and clip.path.stat().st_size > 0


def test_cuda_and_cuda_index_share_one_generation_lock():
    from engine.t2v.backend import device_lock

    assert device_lock("cuda") is device_lock(f"cuda:{torch.cuda.current_device()}")
    assert device_lock("cuda") is not device_lock("cpu")
