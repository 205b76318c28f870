"""The shipped HDPO adapter (issue 21 item 6): `smollm2-135m-hdpo` loads offline from assets/models over the
packaged SmolLM2, merged (no LoRA layers left: it decodes as the base does), and its weights differ from the
base's where the adapter trained. Real weights: slow."""

from __future__ import annotations

import pytest

from engine.models import PRESETS, SHIPPED_ADAPTER


@pytest.mark.slow
def test_the_shipped_adapter_loads_offline_merged_and_differs_from_its_base(monkeypatch) -> None:
    import torch

    from engine.models import load_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert PRESETS[SHIPPED_ADAPTER].base == "smollm2-135m"
    tuned = load_model(SHIPPED_ADAPTER)
    base = load_model("smollm2-135m")
    assert not any("lora" in name for name, _ in tuned.model.named_parameters())  # merged at load
    q_tuned = tuned.model.model.layers[0].self_attn.q_proj.weight
    q_base = base.model.model.layers[0].self_attn.q_proj.weight
    assert q_tuned.shape == q_base.shape and not torch.equal(q_tuned, q_base)
    ids = tuned.processor("A red kite over a beach.", return_tensors="pt").input_ids
    out = tuned.model.generate(ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 4
