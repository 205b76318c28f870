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


def test_a_checkpoint_trained_from_a_relative_folder_finds_its_base(monkeypatch, tmp_path):
    """The DPO run trained from `runs/smollm2/sft/.../model` (relative, as the loop passes it): its checkpoint
    recorded that text and the loader looked for it beside the checkpoint, so the DPO model did not load."""
    import json

    from engine.models import adapter_base

    monkeypatch.chdir(tmp_path)
    sft = tmp_path / "runs" / "sft" / "checkpoints" / "step-000032" / "model"
    sft.mkdir(parents=True)
    dpo = tmp_path / "runs" / "dpo" / "checkpoints" / "step-000006" / "model"
    dpo.mkdir(parents=True)
    (dpo / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/elsewhere"}))
    (dpo.parent / "state.json").write_text(json.dumps({"base_model": "runs/sft/checkpoints/step-000032/model"}))
    assert adapter_base(dpo) == str(sft.resolve())
    (dpo.parent / "state.json").write_text(json.dumps({"base_model": "smollm2-135m"}))
    assert adapter_base(dpo) == "smollm2-135m"


def test_the_trainer_records_a_folder_base_as_an_absolute_path(monkeypatch, tmp_path):
    from training.trainer import _recorded_model

    monkeypatch.chdir(tmp_path)
    (tmp_path / "base").mkdir()
    assert _recorded_model("base") == str((tmp_path / "base").resolve())
    assert _recorded_model("smollm2-135m") == "smollm2-135m"
