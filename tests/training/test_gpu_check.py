import io
import json
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_check  # noqa: E402

VARIANTS = [f"step[vision={v},logps={lp}]" for v in ("stock", "blocks") for lp in ("full", "chunked")]


@pytest.mark.slow
def test_gpu_check_tiny_runs_on_cpu():
    out = subprocess.run([sys.executable, "bench/gpu_check.py", "--tiny"], cwd=ROOT, capture_output=True, text=True)
    report = json.loads(out.stdout[out.stdout.index("{") :])
    assert out.returncode == 0, report
    assert all(report[v]["tokens_per_s"] > 0 for v in VARIANTS)
    assert list(report)[list(report).index("model") + 1] == "step[vision=stock,logps=full]"  # before, first
    # 2 videos x 2 frame pairs, one window each: stock 4 + 4 vision calls per forward, blocks 1 + 1; plus
    # 2 decoder layers; every call twice (gradient checkpointing recomputes in backward)
    assert report["step[vision=stock,logps=full]"]["attention_calls"] == (8 + 2) * 2
    assert report["step[vision=blocks,logps=chunked]"]["attention_calls"] == (2 + 2) * 2
    checks = report["checks"]
    assert checks["vision_max_abs_diff"] <= 1e-5 and checks["block_attention_kernel"] == "sdpa"
    assert checks["logps_max_abs_diff"] <= 1e-6 * checks["logps_max_abs"]  # fp32 rounding of ~200
    assert report["summary"]["attention_calls_ratio"] == pytest.approx(0.4)
    assert report["trainer"]["status"] == "finished"


@pytest.mark.slow
def test_gpu_check_flags_pick_one_variant_and_skip_the_trainer():
    stdout = io.StringIO()
    with redirect_stdout(stdout):
        rc = gpu_check.main(["--tiny", "--vision-attention", "blocks", "--logps", "chunked", "--no-trainer"])
    report = json.loads(stdout.getvalue())
    assert rc == 0
    assert [k for k in report if k.startswith("step[")] == ["step[vision=blocks,logps=chunked]"]
    assert report["step[vision=blocks,logps=chunked]"]["vision_attention_applied"] is True
    assert "trainer" not in report and report["summary"] == {}


@pytest.mark.slow
def test_gpu_check_compile_flag_compiles_the_blocks():
    stdout = io.StringIO()
    argv = ["--tiny", "--vision-attention", "blocks", "--logps", "chunked", "--no-trainer"]
    with redirect_stdout(stdout):
        rc = gpu_check.main([*argv, "--compile", "blocks", "--compile-backend", "aot_eager"])
    report = json.loads(stdout.getvalue())
    assert rc == 0 and report["model"]["compiled_blocks"] == 4  # 2 decoder layers + 2 vision blocks
    assert report["step[vision=blocks,logps=chunked]"]["tokens_per_s"] > 0


def test_variants_run_before_first_and_after_last():
    assert gpu_check._variants("both", "both") == [
        ("stock", "full"),
        ("stock", "chunked"),
        ("blocks", "full"),
        ("blocks", "chunked"),
    ]
    assert gpu_check._variants("stock", "chunked") == [("stock", "chunked")]


def test_vision_block_lengths_match_transformers_window_index():
    from transformers import Qwen2_5_VLConfig
    from transformers.vision_utils import get_vision_window_index

    vision = Qwen2_5_VLConfig().vision_config  # window 112 px, patch 14, merge 2: 4 x 4 merged tokens
    grid = [2, 12, 20]  # 6 x 10 merged tokens per frame pair
    windows, frames = gpu_check.vision_block_lengths(vision, grid)
    assert windows == [64, 64, 32, 32, 32, 16] * 2 and frames == [240, 240]
    _, cu = get_vision_window_index(torch.tensor([grid]), 2, 112, 14)
    assert sorted(cu.diff().tolist()) == sorted(windows)


def test_gpu_check_imports_without_trl_spacy_gradio():
    code = (
        "import sys; sys.path.insert(0, 'bench'); import gpu_check, training.trainer, training.data; "
        "import training.attention, training.logps; "
        "bad = {'trl', 'spacy', 'gradio'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
