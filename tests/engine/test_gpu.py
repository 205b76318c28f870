"""CUDA paths of the engine: bf16 generation and log-probs. Skipped where no GPU is present."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)"),
]


def _video_request(task: int = 2):
    from engine.tasks import Request
    from engine.types import VideoMeta

    frames = np.random.default_rng(0).integers(0, 255, (8, 112, 112, 3), dtype=np.uint8)
    meta = VideoMeta("synthetic", 8.0, 1.0, 112, 112, 8, list(range(8)))
    return Request(task, "a red ball rolls left" if task == 2 else None, frames=frames, video_meta=meta)


def test_tiny_vlm_runs_bf16_on_cuda_and_matches_cpu_logps():
    from engine.backends.transformers_backend import TransformersBackend
    from engine.types import GenerationParams

    gpu = TransformersBackend.load("tiny-random-vlm", device="cuda")
    assert gpu.lm.device == "cuda" and next(gpu.lm.model.parameters()).dtype == torch.bfloat16
    reqs = [_video_request(1), _video_request(2)]
    out = gpu.generate(reqs, GenerationParams(max_new_tokens=8, num_beams=3, num_return_sequences=3))
    assert [len(c) for c in out] == [3, 3]
    responses = ["a ball", "two red cars move left"]
    lp_gpu = gpu.sequence_logps(reqs, responses)
    cpu = TransformersBackend.load("tiny-random-vlm", device="cpu")
    lp_cpu = cpu.sequence_logps(reqs, responses)
    # bf16 vs fp32: same ordering of magnitude, within bf16 rounding over ~10 tokens
    assert torch.allclose(lp_gpu, lp_cpu, rtol=0.05, atol=0.5), (lp_gpu, lp_cpu)
