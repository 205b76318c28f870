import pytest

from engine.errors import ModelLoadError
from engine.models import PRESETS, load_model, resolve


def test_registry_has_the_required_presets():
    assert PRESETS["smollm2-135m"].kind == "text"
    videos = [p for p in PRESETS.values() if p.kind == "video" and p.hub_id]
    assert {"Qwen/Qwen2.5-VL-3B-Instruct", "HuggingFaceTB/SmolVLM2-2.2B-Instruct"} <= {p.hub_id for p in videos}
    assert PRESETS["tiny-random-vlm"].random_weights and PRESETS["tiny-random-lm"].random_weights


def test_hub_preset_without_hub_or_path_names_the_preset_and_what_to_set(monkeypatch):
    monkeypatch.delenv("VIDPROMPTER_ALLOW_DOWNLOAD", raising=False)
    monkeypatch.delenv("VIDPROMPTER_MODEL_QWEN2_5_VL_3B", raising=False)
    with pytest.raises(ModelLoadError) as info:
        load_model("qwen2.5-vl-3b")
    msg = str(info.value)
    assert "qwen2.5-vl-3b" in msg and "VIDPROMPTER_MODEL_QWEN2_5_VL_3B" in msg and "\n" not in msg


def test_env_override_to_a_missing_folder_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("VIDPROMPTER_MODEL_QWEN2_5_VL_3B", str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="is not a folder"):
        load_model("qwen2.5-vl-3b")


def test_env_override_loads_a_local_checkpoint(monkeypatch, tiny_vlm):
    # Point the real preset at the tiny model's folder: the same loading path as a real checkpoint.
    monkeypatch.setenv("VIDPROMPTER_MODEL_QWEN2_5_VL_3B", tiny_vlm.lm.source)
    lm = load_model("qwen2.5-vl-3b")
    assert type(lm.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert lm.source == tiny_vlm.lm.source and not lm.preset.random_weights


def test_folder_path_as_model_name(tiny_lm):
    assert resolve(tiny_lm.lm.source).kind == "text"


def test_broken_checkpoint_folder(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="failed to load"):
        load_model(str(tmp_path))


def test_unknown_model():
    with pytest.raises(ModelLoadError, match="unknown model 'gpt-9'"):
        resolve("gpt-9")
