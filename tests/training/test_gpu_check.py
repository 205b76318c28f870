import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_tiny_runs_on_cpu():
    out = subprocess.run([sys.executable, "bench/gpu_check.py", "--tiny"], cwd=ROOT, capture_output=True, text=True)
    report = json.loads(out.stdout[out.stdout.index("{") :])
    assert out.returncode == 0, report
    assert report["step"]["tokens_per_s"] > 0 and report["trainer"]["status"] == "finished"


def test_gpu_check_imports_without_trl_spacy_gradio():
    code = (
        "import sys; sys.path.insert(0, 'bench'); import gpu_check, training.trainer, training.data; "
        "bad = {'trl', 'spacy', 'gradio'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
