"""T2V presets: names, env vars, the one-line refusals, folder detection, the tiny tokenizer. No weights load."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.errors import ModelLoadError
from engine.t2v.presets import (
    PIPELINE_CLASSES,
    RANDOM_WEIGHTS_LABEL,
    T2V_PRESETS,
    resolve_t2v,
    t2v_source,
    t2v_status,
)


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.delenv("VIDPROMPTER_ALLOW_DOWNLOAD", raising=False)
    for preset in T2V_PRESETS.values():
        monkeypatch.delenv(preset.env_var, raising=False)


def _pipeline_folder(path, class_name: str):
    path.mkdir(parents=True, exist_ok=True)
    (path / "model_index.json").write_text(json.dumps({"_class_name": class_name}))
    return path


def test_registry_has_the_open_t2v_models_diffusers_ships():
    import diffusers

    hub_ids = {p.hub_id for p in T2V_PRESETS.values()}
    assert {"THUDM/CogVideoX-2b", "THUDM/CogVideoX-5b", "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"} <= hub_ids
    assert "alibaba-pai/EasyAnimateV5.1-7b-zh-diffusers" in hub_ids  # the paper's Table-3 generator family
    for cls in PIPELINE_CLASSES.values():
        assert hasattr(diffusers, cls), cls
    assert T2V_PRESETS["tiny-random-cogvideox"].random_weights and not T2V_PRESETS["cogvideox-2b"].random_weights


def test_env_var_names():
    assert T2V_PRESETS["cogvideox-2b"].env_var == "VIDPROMPTER_T2V_COGVIDEOX_2B"
    assert T2V_PRESETS["wan2.1-t2v-1.3b"].env_var == "VIDPROMPTER_T2V_WAN2_1_T2V_1_3B"


def test_real_preset_without_weights_is_refused_naming_what_to_set(offline):
    with pytest.raises(ModelLoadError) as info:
        t2v_source(resolve_t2v("cogvideox-2b"))
    msg = str(info.value)
    assert msg.startswith("text-to-video model 'cogvideox-2b' cannot load: THUDM/CogVideoX-2b is not in the local")
    assert "VIDPROMPTER_T2V_COGVIDEOX_2B=/path/to/diffusers/folder" in msg and "VIDPROMPTER_ALLOW_DOWNLOAD=1" in msg
    assert "\n" not in msg


def test_status_without_loading(offline):
    assert t2v_status("tiny-random-wan") == (True, RANDOM_WEIGHTS_LABEL)
    ok, msg = t2v_status("wan2.1-t2v-1.3b")
    assert not ok and "VIDPROMPTER_T2V_WAN2_1_T2V_1_3B" in msg
    assert t2v_status("sora")[0] is False


def test_unknown_preset():
    with pytest.raises(ModelLoadError, match="unknown text-to-video model 'sora': pick one of cogvideox-2b, "):
        resolve_t2v("sora")


def test_env_override_to_a_missing_folder(offline, monkeypatch, tmp_path):
    monkeypatch.setenv("VIDPROMPTER_T2V_COGVIDEOX_5B", str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="missing is not a folder; fix VIDPROMPTER_T2V_COGVIDEOX_5B"):
        t2v_source(resolve_t2v("cogvideox-5b"))


def test_env_override_to_a_folder_that_is_not_a_pipeline(offline, monkeypatch, tmp_path):
    monkeypatch.setenv("VIDPROMPTER_T2V_COGVIDEOX_2B", str(tmp_path))
    with pytest.raises(ModelLoadError, match="no readable model_index.json"):
        t2v_source(resolve_t2v("cogvideox-2b"))


def test_env_override_to_another_family_is_refused_not_substituted(offline, monkeypatch, tmp_path):
    folder = _pipeline_folder(tmp_path / "wan", "WanPipeline")
    monkeypatch.setenv("VIDPROMPTER_T2V_COGVIDEOX_2B", str(folder))
    with pytest.raises(ModelLoadError, match=r"needs a CogVideoXPipeline folder, but .*wan holds a WanPipeline"):
        t2v_source(resolve_t2v("cogvideox-2b"))


def test_env_override_wins_over_the_tiny_builder(offline, monkeypatch, tmp_path):
    folder = _pipeline_folder(tmp_path / "cog", "CogVideoXPipeline")
    monkeypatch.setenv("VIDPROMPTER_T2V_TINY_RANDOM_COGVIDEOX", str(folder))
    preset = resolve_t2v("tiny-random-cogvideox")
    assert t2v_source(preset) == str(folder) and not preset.random_weights


def test_folder_as_model_name_takes_its_family_defaults(tmp_path):
    preset = resolve_t2v(str(_pipeline_folder(tmp_path / "my-wan", "WanPipeline")))
    assert (preset.name, preset.family, preset.local_path) == ("my-wan", "wan", str(tmp_path / "my-wan"))
    assert (preset.frames, preset.fps, preset.max_tokens) == (81, 16.0, 512)  # Wan 2.1's defaults
    with pytest.raises(ModelLoadError, match="holds a StableDiffusionPipeline; a text-to-video folder holds one of"):
        resolve_t2v(str(_pipeline_folder(tmp_path / "sd", "StableDiffusionPipeline")))


def test_importing_the_package_does_not_import_torch():
    code = "import sys, engine.t2v; engine.t2v.t2v_status('cogvideox-2b'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tiny_t5_tokenizer_is_built_offline():
    from engine.t2v.tiny import build_t5_tokenizer

    tok = build_t5_tokenizer()
    assert type(tok).__name__ == "T5Tokenizer"
    assert [tok.pad_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2]  # T5's layout
    assert tok.convert_ids_to_tokens(tok("a dog runs").input_ids) == ["▁a", "▁dog", "▁runs", "</s>"]
    # Unknown words fall back to characters; nothing is lost to <unk> for plain ASCII.
    assert tok.convert_ids_to_tokens(tok("Zebu!").input_ids) == ["▁", "Z", "e", "b", "u", "!", "</s>"]


def test_ensure_tiny_t2v_builds_a_diffusers_folder(tmp_path):
    from engine.t2v.tiny import ensure_tiny_t2v

    folder = ensure_tiny_t2v("tiny-random-wan", root=tmp_path)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "WanPipeline"
    assert index["text_encoder"] == ["transformers", "UMT5EncoderModel"]
    assert index["tokenizer"] == ["transformers", "T5Tokenizer"]
    assert ensure_tiny_t2v("tiny-random-wan", root=tmp_path) == folder  # built once
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no temp folders left behind
