"""Adapter folders load merged over their base; a chain folds into one shipped adapter exactly."""

from __future__ import annotations

import json

import pytest
import torch

from engine.errors import ModelLoadError
from engine.models import BASE_FILE, load_model, resolve
from training.ship import adapter_chain, fold_chain, ship


def _adapter(base_name: str, base_model, out, seed: int, targets=("q_proj", "v_proj")):
    """A LoRA adapter with non-zero B (a trained one), saved with BASE_FILE naming its base."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = get_peft_model(base_model, LoraConfig(r=4, lora_alpha=8, target_modules=list(targets)))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    model.save_pretrained(out)
    (out / BASE_FILE).write_text(json.dumps({"base": base_name}))
    return model.merge_and_unload()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """tiny-random-lm -> sft adapter -> hdpo adapter (on the merged sft), like the loop's runs."""
    root = tmp_path_factory.mktemp("chain")
    sft, hdpo = root / "sft", root / "hdpo"
    merged_sft = _adapter("tiny-random-lm", load_model("tiny-random-lm").model, sft, seed=1)
    merged_all = _adapter(str(sft), merged_sft, hdpo, seed=2)
    return sft, hdpo, {k: v.clone() for k, v in merged_all.state_dict().items()}


def test_an_adapter_chain_loads_merged_over_its_preset(chain):
    sft, hdpo, expected = chain
    assert adapter_chain(hdpo) == ([sft, hdpo], "tiny-random-lm")
    lm = load_model(str(hdpo))
    got = lm.model.state_dict()
    assert not any("lora" in k for k in got)  # merged: a plain model, decoding at the base's speed
    for key, value in expected.items():
        assert torch.allclose(got[key], value, atol=1e-6), key
    folder = resolve(str(hdpo))
    assert folder.guards and folder.kind == "text" and folder.base == "tiny-random-lm"  # decodes as its root preset


def test_the_folded_adapter_equals_the_chain(chain, tmp_path):
    sft, hdpo, expected = chain
    weights, config = fold_chain([sft, hdpo])
    assert config["r"] == config["lora_alpha"] == 8
    out = ship(hdpo, tmp_path / "shipped", dtype="float32")
    assert json.loads((out / BASE_FILE).read_text())["base"] == "tiny-random-lm"
    got = load_model(str(out)).model.state_dict()
    for key, value in expected.items():
        assert torch.allclose(got[key], value, atol=1e-5), key


def test_a_folder_naming_no_base_is_one_line(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 4, "lora_alpha": 8}))
    with pytest.raises(ModelLoadError, match="names no base model"):
        load_model(str(tmp_path))
