"""One configuration layer (issue 23 item 1): one YAML loader with base: and --set for every config, numbers read
as numbers everywhere, flags generated from the dataclasses with their defaults and docstrings."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from engine import configfile
from engine.configfile import ConfigError
from engine.errors import InputError
from engine.mining import MiningConfig, policy_model
from training.loop_config import load_loop_config

REPO = Path(__file__).resolve().parents[2]


def test_a_loop_config_reads_numbers_as_the_training_loader_does(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("name: x\nmining: {budget_margin: 2e0, num_beams: 4}\nevaluation: {limit: 3}\n")
    config = load_loop_config(path)
    assert config.mining.budget_margin == 2.0 and isinstance(config.mining.budget_margin, float)
    assert isinstance(config.mining, MiningConfig)  # the engine's dataclass, not a retyped copy


def test_a_loop_config_takes_base_and_set(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\nmining: {num_beams: 4}\n")
    (tmp_path / "top.yaml").write_text("base: base.yaml\nname: top\n")
    config = load_loop_config(tmp_path / "top.yaml", sets=["mining.num_beams=3", "evaluation.limit=7"])
    assert (config.name, config.mining.num_beams, config.evaluation.limit) == ("top", 3, 7)
    with pytest.raises(ConfigError, match="unknown key"):
        load_loop_config(tmp_path / "top.yaml", sets=["mining.beams=3"])


def test_the_mining_policy_follows_base_and_set_and_can_be_confined(tmp_path):
    (tmp_path / "a.yaml").write_text("model: {name: base-model}\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\noptim: {lr: 1e-5}\n")
    assert policy_model(tmp_path / "b.yaml") == "base-model"
    assert policy_model(tmp_path / "b.yaml", ["model.name=sft-model"]) == "sft-model"
    assert (
        MiningConfig(train_config=str(tmp_path / "b.yaml"), train_overrides=("model.name=x",)).generation_model()
        == "x"
    )
    (tmp_path / "escape.yaml").write_text("base: ../../etc/hosts.yaml\n")
    with pytest.raises(InputError, match="not a config in the configs folder"):
        policy_model(tmp_path / "escape.yaml", base_root=tmp_path)


def test_flags_carry_the_dataclass_defaults_and_docstrings():
    parser = argparse.ArgumentParser()
    configfile.add_flags(
        parser,
        MiningConfig,
        ["num_beams", "num_rejected", "budget_margin", "evaluators"],
        {"num_rejected": "--rejected"},
    )
    args = parser.parse_args([])
    assert args.num_beams == configfile.default_of(MiningConfig, "num_beams") == 5
    assert args.num_rejected == 2 and args.budget_margin == 2.0
    assert tuple(args.evaluators) == configfile.default_of(MiningConfig, "evaluators")
    assert "Beam width" in parser.format_help() and "--rejected" in parser.format_help()
    assert configfile.from_args(MiningConfig, parser.parse_args(["--rejected", "1"])).num_rejected == 1


def test_only_one_module_reads_yaml():
    readers = [
        p.relative_to(REPO)
        for top in ("annotations", "engine", "training", "ui")
        for p in (REPO / top).rglob("*.py")
        if "yaml.safe_load" in p.read_text() or "yaml.load(" in p.read_text()
    ]
    assert readers == [Path("engine/configfile.py")]


def _subparser(name: str) -> argparse.ArgumentParser:
    from engine.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize(
    ("command", "cls_path"),
    [
        ("generate", "engine.types.GenerationParams"),
        ("hallucinate-text", "engine.hallucination.text.TextHallucinationConfig"),
        ("mine-pairs", "engine.mining.MiningConfig"),
        ("evaluate", "engine.evaluate.EvalConfig"),
        ("teacher", "engine.teacher.TeacherConfig"),
    ],
)
def test_no_flag_of_the_engine_cli_carries_a_default_of_its_own(command, cls_path):
    """Issue 23 item 2: max_new_tokens was 256 / 160 / 128 in three places; every flag named after a field of
    the command's config now takes the field's default (repeatable flags: None, read as the default)."""
    import dataclasses
    import importlib

    module, name = cls_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    fields = {f.name for f in dataclasses.fields(cls)}
    checked = 0
    for action in _subparser(command)._actions:
        if action.dest not in fields or action.required or action.dest == "shard":
            continue  # --shard "i/n": unset reads the launcher's environment (engine.sharding), then 0/1
        expected = configfile.default_of(cls, action.dest)
        if isinstance(action, argparse._AppendAction):
            assert action.default is None, action.option_strings  # the handler falls back to `expected`
        else:
            got = tuple(action.default) if isinstance(action.default, list) else action.default
            assert got == expected, (action.option_strings, got, expected)
        checked += 1
    assert checked >= 2


def test_a_flag_cannot_be_given_a_default_of_its_own():
    with pytest.raises(TypeError, match="comes from MiningConfig"):
        configfile.add_flag(argparse.ArgumentParser(), MiningConfig, "num_beams", default=4)


def test_generate_reads_temperature_as_before():
    """--temperature 0 stays greedy; another value implies sampling (the old flag's meaning)."""
    from engine.cli_verbs import generate_params

    parser = _subparser("generate")
    greedy = generate_params(parser.parse_args(["--task", "3", "--temperature", "0"]))
    warm = generate_params(parser.parse_args(["--task", "3", "--temperature", "0.7"]))
    default = generate_params(parser.parse_args(["--task", "3"]))
    assert (greedy.do_sample, warm.do_sample, warm.temperature, default.do_sample) == (False, True, 0.7, False)
