"""A toy preference task: chosen responses say "red", rejected "blue". After DPO training, the implicit
reward prefers the chosen response on held-out pairs (new nouns / verbs) above chance."""

import json

import pytest
import torch

from engine.models import load_model
from tests.toy_data import bunny
from training.config import load_config
from training.data import TrainSeq
from training.logps import sequence_logps
from training.trainer import Trainer

NOUNS = "car bus bike dog cat bird horse tree man woman boy girl".split()
VERBS = "walks runs jumps sits stands drives".split()


def _rows(pairs, start):
    return [
        {
            "chosen": f"a red {n} {v}",
            "rejected": f"a blue {n} {v}",
            "task": 3,
            "video": bunny(),
            "short_prompt": "a thing moves",
            "sample_id": start + i,
            "hdpo_term": "dpo",
            "split": "train",
        }
        for i, (n, v) in enumerate(pairs)
    ]


@pytest.mark.slow
def test_reward_accuracy_rises_above_chance_on_held_out_pairs(tmp_path):
    combos = [(n, v) for n in NOUNS for v in VERBS]
    train, held = combos[::3][:16], combos[1::5][:8]
    export = tmp_path / "toy.jsonl"
    export.write_text("".join(json.dumps(r) + "\n" for r in _rows(train, 0)))
    cfg = load_config(
        {},
        {
            "model.name": "tiny-random-lm",
            "model.precision": "fp32",
            "data.path": str(export),
            "data.tasks": [3],
            "loss.response_hallucination": False,
            "loss.input_hallucination": False,
            "loss.task_hallucination": False,
            "optim.lr": 1e-2,
            "optim.batch_size": 8,
            "optim.micro_batch_size": 8,
            "optim.epochs": 3,
            "optim.warmup_ratio": 0.0,
            "optim.scheduler": "constant",
            "run.output_dir": str(tmp_path),
            "run.tensorboard": False,
            "run.progress_bar": False,
            "run.checkpoint_every": 1000,
        },
    )
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.train()
    ref = load_model("tiny-random-lm")
    chosen = [TrainSeq(3, f"a red {n} {v}", "a thing moves") for n, v in held]
    rejected = [TrainSeq(3, f"a blue {n} {v}", "a thing moves") for n, v in held]
    with torch.no_grad():
        pol = sequence_logps(trainer.models.model, trainer.models.lm, chosen + rejected, tmp_path, "cpu")
        base = sequence_logps(ref.model, ref, chosen + rejected, tmp_path, "cpu")
    reward = pol - base  # beta * this is the implicit reward; the sign is what matters
    accuracy = (reward[: len(held)] > reward[len(held) :]).float().mean().item()
    assert accuracy > 0.75
