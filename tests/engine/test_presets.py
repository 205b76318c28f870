"""The one preset base (engine.presets) and the list of every preset (engine.catalog): env-var names, override
and cache lookups, refusals and statuses, the same for models, evaluators and text-to-video pipelines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from engine.budgets import TARGETS
from engine.catalog import all_presets
from engine.errors import ModelLoadError
from engine.evaluators.registry import EVALUATOR_PRESETS, evaluator_status, get_preset
from engine.models import PRESETS, model_status
from engine.presets import RANDOM_WEIGHTS_LABEL, Preset, env_path, env_var_name, hf_cached
from engine.t2v.presets import T2V_PRESETS, t2v_status

REPO = Path(__file__).resolve().parents[2]
#: A real preset of each registry: (status function, name, its variable).
REAL = [
    (model_status, "qwen2.5-vl-3b", "VIDPROMPTER_MODEL_QWEN2_5_VL_3B"),
    (evaluator_status, "videoclip-xl", "VIDPROMPTER_EVALUATOR_VIDEOCLIP_XL"),
    (t2v_status, "cogvideox-2b", "VIDPROMPTER_T2V_COGVIDEOX_2B"),
]


@pytest.fixture
def empty_hf_cache(monkeypatch, tmp_path) -> Path:
    """No downloads, no overrides, and a Hugging Face cache with nothing in it."""
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants

    # huggingface_hub reads HF_HOME once, at import: point the already imported module at the empty cache too.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("VIDPROMPTER_ALLOW_DOWNLOAD", raising=False)
    for preset in [*PRESETS.values(), *EVALUATOR_PRESETS.values(), *T2V_PRESETS.values()]:
        monkeypatch.delenv(preset.env_var, raising=False)
    return cache


def test_one_naming_rule_gives_every_registry_its_variables():
    assert env_var_name("model", "qwen2.5-vl-3b") == "VIDPROMPTER_MODEL_QWEN2_5_VL_3B"
    assert PRESETS["qwen2.5-vl-7b"].env_var == "VIDPROMPTER_MODEL_QWEN2_5_VL_7B"
    assert get_preset("long-clip-l").env_var == "VIDPROMPTER_EVALUATOR_LONG_CLIP_L"
    assert T2V_PRESETS["wan2.1-t2v-1.3b"].env_var == "VIDPROMPTER_T2V_WAN2_1_T2V_1_3B"
    assert TARGETS["cogvideox-2b"].env_var == "VIDPROMPTER_TOKENIZER_COGVIDEOX_2B"
    for preset in (PRESETS["smollm2-135m"], get_preset("clip-vit-l-14"), T2V_PRESETS["cogvideox-5b"]):
        assert isinstance(preset, Preset)


def test_an_override_naming_nothing_is_one_line_naming_the_variable(monkeypatch, tmp_path):
    missing = tmp_path / "missing"
    monkeypatch.setenv("VIDPROMPTER_X", str(missing))
    with pytest.raises(ModelLoadError) as info:
        env_path("VIDPROMPTER_X", "folder")
    assert str(info.value) == f"{missing} is not a folder; fix VIDPROMPTER_X"
    monkeypatch.setenv("VIDPROMPTER_X", str(tmp_path))
    assert env_path("VIDPROMPTER_X", "folder") == str(tmp_path)
    monkeypatch.delenv("VIDPROMPTER_X")
    assert env_path("VIDPROMPTER_X", "file") is None


@pytest.mark.parametrize(("check", "name", "var"), REAL)
def test_each_registry_refuses_a_missing_override_naming_it(empty_hf_cache, monkeypatch, tmp_path, check, name, var):
    monkeypatch.setenv(var, str(tmp_path / "missing"))
    ok, line = check(name)
    assert not ok and "missing is not a" in line and f"fix {var}" in line and "\n" not in line


@pytest.mark.parametrize(("check", "name", "var"), REAL)
def test_a_preset_with_no_local_weights_is_refused_in_one_line(empty_hf_cache, check, name, var):
    ok, line = check(name)
    assert not ok and "\n" not in line
    assert "is not in the local Hugging Face cache" in line
    assert f"set {var}=/path/to/" in line and "VIDPROMPTER_ALLOW_DOWNLOAD=1" in line


def test_a_preset_in_the_local_hf_cache_is_ready(empty_hf_cache):
    # The cache's own layout: models--<org>--<name>/refs/main names the snapshot holding the files.
    repo = empty_hf_cache / "models--Qwen--Qwen2.5-VL-3B-Instruct"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    assert hf_cached("Qwen/Qwen2.5-VL-3B-Instruct", ("model_index.json", "config.json")) is not None
    assert hf_cached(None, ("config.json",)) is None
    assert model_status("qwen2.5-vl-3b") == (True, "ready")


def test_builtin_random_presets_say_the_random_weights_label(empty_hf_cache):
    assert RANDOM_WEIGHTS_LABEL == "random weights — pipeline check only"
    assert model_status("tiny-random-vlm") == (True, RANDOM_WEIGHTS_LABEL)
    assert evaluator_status("tiny-random-clip") == (True, RANDOM_WEIGHTS_LABEL)
    assert t2v_status("tiny-random-wan") == (True, RANDOM_WEIGHTS_LABEL)


def test_all_presets_lists_the_three_registries_with_their_status(empty_hf_cache):
    rows = all_presets()
    by_registry: dict[str, list[str]] = {}
    for row in rows:
        by_registry.setdefault(row.registry, []).append(row.preset.name)
        assert "\n" not in row.line and row.line
        if row.preset.builtin:
            assert (row.ok, row.line) == (True, RANDOM_WEIGHTS_LABEL)
    assert set(by_registry) == {"model", "evaluator", "t2v"}
    assert by_registry["model"] == list(PRESETS) and by_registry["evaluator"] == list(EVALUATOR_PRESETS)
    assert by_registry["t2v"] == list(T2V_PRESETS)
    assert all(len(names) == len(set(names)) for names in by_registry.values())
    assert len({row.preset.env_var for row in rows}) == len(rows)
    real = {row.preset.name: row for row in rows if row.registry != "model" and not row.preset.builtin}
    assert not any(row.ok for row in real.values())  # nothing real is on this machine's empty cache


def test_all_presets_imports_no_torch():
    script = "import sys; from engine.catalog import all_presets; all_presets(); assert 'torch' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def _product_files() -> list[Path]:
    roots = [REPO / d for d in ("annotations", "engine", "training", "ui")]
    return sorted(p for root in roots for p in root.rglob("*.py")) + [REPO / "app.py"]


def _string_values(path: Path) -> list[str]:
    """The strings a module uses as values: docstrings and other bare string statements left out."""
    tree = ast.parse(path.read_text())
    bare = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in bare
    ]


def test_the_cache_lookup_and_the_label_live_in_one_module():
    cache_lookup = [p for p in _product_files() if "try_to_load_from_cache" in p.read_text()]
    label = [p for p in _product_files() if any(RANDOM_WEIGHTS_LABEL in s for s in _string_values(p))]
    assert [p.relative_to(REPO).as_posix() for p in cache_lookup] == ["engine/presets.py"]
    assert [p.relative_to(REPO).as_posix() for p in label] == ["engine/presets.py"]
