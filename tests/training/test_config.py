from pathlib import Path

import pytest

from engine.hallucination import PairConfig
from training.config import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_paper_defaults():
    cfg = load_config(CONFIGS / "hdpo.yaml")
    assert (cfg.loss.beta, cfg.optim.lr, cfg.optim.batch_size, cfg.optim.epochs) == (0.1, 1e-6, 64, 2)
    assert all(cfg.loss.enabled.values()) and cfg.data.response_words == [1, 5]


@pytest.mark.parametrize(
    "path", sorted(p for p in CONFIGS.rglob("*.yaml") if p.parent.name != "loops"), ids=lambda p: p.name
)  # configs/loops/ holds loop configs (training.loop_config), checked in tests/training/test_loop.py
def test_every_preset_loads(path):
    load_config(path)


def test_ablation_rows():
    dpo = load_config(CONFIGS / "ablations" / "dpo.yaml")
    assert dpo.loss.enabled == {
        "dpo": True,
        "response_hallucination": False,
        "input_hallucination": False,
        "task_hallucination": False,
    }
    assert load_config(CONFIGS / "ablations" / "response-1-3.yaml").data.response_words == [1, 3]
    crop = load_config(CONFIGS / "ablations" / "input-random-crop.yaml").data
    assert (crop.shuffle_frames, crop.paste_ratio, crop.crop_keep) == (False, None, [0.8, 1.0])
    assert load_config(CONFIGS / "ablations" / "hdpo-separate.yaml").data.separate_tasks


def test_overrides_and_validation():
    cfg = load_config(CONFIGS / "tiny-cpu.yaml", ["optim.lr=5e-7", "loss.task_hallucination=false", "data.tasks=[3]"])
    assert cfg.optim.lr == 5e-7 and not cfg.loss.task_hallucination and cfg.data.tasks == [3]
    with pytest.raises(ConfigError, match="optim.lr"):
        load_config({}, ["optim.lr=-1"])
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config({}, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="every term is off"):
        load_config(
            {},
            {
                "loss.dpo": False,
                "loss.response_hallucination": False,
                "loss.input_hallucination": False,
                "loss.task_hallucination": False,
            },
        )


def test_hdpo_preset_converts_to_the_pair_builders_defaults():
    # one source of the augmentation numbers: the paper preset, DataConfig's defaults and the builder agree
    cfg = load_config(CONFIGS / "hdpo.yaml")
    assert cfg.data.pair_config(cfg.loss) == PairConfig()
    assert load_config({}).data.pair_config(load_config({}).loss) == PairConfig()
    dpo = load_config(CONFIGS / "ablations" / "dpo.yaml")
    assert dpo.data.pair_config(dpo.loss).terms == ("dpo",)
    crop = load_config(CONFIGS / "ablations" / "input-random-crop.yaml")
    pairs = crop.data.pair_config(crop.loss)
    assert (pairs.shuffle, pairs.paste_ratio, pairs.crop_keep) == (False, None, (0.8, 1.0))
