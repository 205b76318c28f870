"""The Table-1 baselines through the real trainer on the tiny random VLM: SFT (its loss, its checkpoint as
the start and reference of an HDPO run), KTO (mismatched KL rows, z_ref), IPO (token counts reach the loss),
and the baseline configs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine.encoding import IGNORE_INDEX
from engine.models import load_model
from tests.toy_data import fake_frames, fake_text
from training.config import load_config
from training.data import KTO_KL, Augmenters
from training.logps import encode, token_counts
from training.objective import objective
from training.refcache import model_id
from training.trainer import Trainer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FAKES = Augmenters(text=fake_text, frames=fake_frames)
TINY = {
    "model.name": "tiny-random-vlm",
    "model.precision": "fp32",
    "model.gradient_checkpointing": "off",
    "data.num_frames": 4,
    "data.frame_size": 56,
    "data.tasks": [1, 2, 3],
    "optim.batch_size": 4,
    "optim.micro_batch_size": 4,
    "optim.max_steps": 2,
    "optim.lr": 1e-3,
    "optim.warmup_ratio": 0.0,
    "optim.scheduler": "constant",
    "run.tensorboard": False,
    "run.progress_bar": False,
}


def _cfg(preset: str, export, tmp_path, **over):
    base = {**TINY, "data.path": str(export), "run.output_dir": str(tmp_path)}
    return load_config(CONFIGS / preset, {**base, **over})


def _mean_token_nll(lm, seqs, frames_dir) -> float:
    """By hand from the full logits: each sequence's mean cross-entropy over its response tokens, averaged."""
    nlls = []
    for seq in seqs:
        batch = encode(lm, [seq], frames_dir, align=False)
        labels = batch.pop("labels")
        with torch.no_grad():
            logits = lm.model(**batch, use_cache=False).logits  # (1, L, V)
        nlls.append(F.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=IGNORE_INDEX).item())
    return sum(nlls) / len(nlls)


def test_sft_step_loss_is_the_mean_token_nll_and_parameters_change(full_export, tmp_path):
    trainer = Trainer(_cfg("baselines/sft.yaml", full_export, tmp_path), tmp_path / "sft", augmenters=FAKES)
    trainer.setup()
    examples = [trainer.data.examples[j] for c in trainer._step_batches(0) for j in c]
    assert all(len(e.seqs) == 1 and not e.pairs for e in examples)  # sft reads the chosen response only
    assert trainer.reference.cache is None and trainer.reference.model is None  # and needs no reference
    lm = trainer.models.lm
    by_hand = _mean_token_nll(lm, [e.seqs[0] for e in examples], trainer.data.frames_dir)
    before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    values = trainer._optimizer_step(0)
    assert values["loss"] == pytest.approx(by_hand, rel=1e-5)
    assert values["sequences"] == len(examples)
    changed = [n for n, p in lm.model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) > 10
    trainer.data.feed.close()


def test_hdpo_starts_from_the_sft_checkpoint_and_uses_it_as_reference(full_export, tmp_path):
    sft = Trainer(_cfg("baselines/sft.yaml", full_export, tmp_path), tmp_path / "sft", augmenters=FAKES).train()
    assert sft.status == "finished"
    sft_model = str(Path(sft.checkpoint) / "model")
    cfg = _cfg("hdpo.yaml", full_export, tmp_path, **{"model.name": sft_model, "optim.max_steps": 1})
    hdpo = Trainer(cfg, tmp_path / "hdpo", augmenters=FAKES)
    hdpo.setup()
    saved = load_model(sft_model)
    base = load_model("tiny-random-vlm")
    policy = dict(hdpo.models.lm.model.named_parameters())
    assert all(torch.equal(p, policy[n]) for n, p in saved.model.named_parameters())  # starts from SFT
    assert any(not torch.equal(p, policy[n]) for n, p in base.model.named_parameters())
    # the reference is the SFT model: its id keys the cache, and at step 0 every margin is 0
    for lm in (saved, base):
        lm.model.config.use_cache = False  # as the trainer loads it
    assert hdpo.models.ref_model_id == model_id(saved.model, saved.source, torch.float32)
    assert hdpo.models.ref_model_id != model_id(base.model, base.source, torch.float32)
    values = hdpo._optimizer_step(0)
    margins = [v for k, v in values.items() if k.endswith("/margin")]
    assert len(margins) >= 2 and max(abs(m) for m in margins) < 1e-5
    assert values["dpo/loss"] == pytest.approx(math.log(2), abs=1e-5)
    hdpo.data.feed.close()


def test_kto_trains_with_mismatched_kl_rows(full_export, tmp_path):
    trainer = Trainer(_cfg("baselines/kto.yaml", full_export, tmp_path), tmp_path / "kto", augmenters=FAKES)
    result = trainer.train()
    assert result.status == "finished" and result.step == 2
    examples = trainer.data.examples
    assert {t for e in examples for t, _, _ in e.pairs} == {"dpo", KTO_KL}
    chosen = {e.sample_id: e.seqs[0].response for e in examples}
    for e in examples:
        (kl,) = [e.seqs[d] for t, _, d in e.pairs if t == KTO_KL]
        assert kl.response != e.seqs[0].response and kl.response in chosen.values()  # another sample's y
        assert (kl.task, kl.short_prompt, kl.video) == (e.seqs[0].task, e.seqs[0].short_prompt, e.seqs[0].video)
    first = result.metrics[0]
    # step 0: policy = reference, so z_ref = 0 and every row's loss is lambda (1 - sigma(0)) = 0.5 (weights 2, 1)
    assert first["kto/z_ref"] == pytest.approx(0.0, abs=1e-6)
    assert first["kto/loss"] == pytest.approx((2 * 0.5 * 1 + 1 * 0.5 * 2) / 3, abs=1e-5)
    assert result.metrics[-1]["kto/reward_chosen"] != 0.0


def test_ipo_objective_reads_each_rows_token_count(full_export, tmp_path):
    cfg = _cfg("baselines/ipo.yaml", full_export, tmp_path)
    trainer = Trainer(cfg, tmp_path / "ipo", augmenters=FAKES)
    trainer.setup()
    examples = trainer.data.examples[:2]
    flat, batch, tokens = trainer._encode_examples(examples)
    lm = trainer.models.lm
    lengths = [len(lm.tokenizer(s.response, add_special_tokens=False)["input_ids"]) + 1 for s in flat.seqs]
    assert tokens.tolist() == lengths == token_counts(batch).tolist()  # response tokens + EOS
    policy = -torch.arange(1.0, len(flat.seqs) + 1) * 10  # made-up log-probs, ref all 0
    out = objective(cfg.loss, policy, torch.zeros_like(policy), flat, tokens)
    pref, disp, ex = flat.pairs["dpo"].pref, flat.pairs["dpo"].disp, flat.pairs["dpo"].example
    h = policy[pref] / tokens[pref] - policy[disp] / tokens[disp]
    per_pair = (h - 1 / (2 * cfg.loss.beta)) ** 2
    by_hand = [per_pair[ex == b].mean().item() for b in range(2)]
    assert out.losses.tolist() == pytest.approx(by_hand)
    trainer.data.feed.close()


def test_baseline_configs():
    sft = load_config(CONFIGS / "baselines" / "sft.yaml")
    assert sft.loss.kind == "sft" and sft.data.pair_config(sft.loss).terms == ()
    kto = load_config(CONFIGS / "baselines" / "kto.yaml")
    assert kto.loss.kind == "kto" and kto.data.pair_config(kto.loss).terms == ("dpo",)
    mdpo = load_config(CONFIGS / "baselines" / "mdpo.yaml")
    pairs = mdpo.data.pair_config(mdpo.loss)
    # official mDPO: RandomResizedCrop(scale=(0.01, 0.2)) of the area, no shuffle, no paste, no text-only term
    assert (pairs.crop_area, pairs.crop_keep, pairs.shuffle, pairs.paste_ratio) == ((0.01, 0.2), None, False, None)
    assert pairs.task3_input == "none" and pairs.task2_input == "video" and mdpo.loss.anchor_weight == 1.0
    ipo = load_config(CONFIGS / "baselines" / "ipo.yaml")
    assert ipo.loss.kind == "ipo" and ipo.data.pair_config(ipo.loss).terms == ("dpo",)
