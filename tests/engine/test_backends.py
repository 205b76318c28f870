import pytest
import torch

from engine.encoding import IGNORE_INDEX, encode_for_logps
from engine.tasks import Request
from engine.types import GenerationParams
from engine.video import load_video


@pytest.fixture(scope="module")
def clip(sample_video):
    return load_video(sample_video, num_frames=8)


def _requests(clip):
    frames, meta = clip
    return [
        Request(1, frames=frames, video_meta=meta),
        Request(2, "a rabbit in a meadow", frames=frames, video_meta=meta),
        Request(3, "A woman is walking."),
    ]


def test_beam_search_returns_distinct_candidates_per_request(tiny_vlm, clip):
    out = tiny_vlm.generate(_requests(clip), GenerationParams(max_new_tokens=6, num_beams=5, num_return_sequences=5))
    assert len(out) == 3
    for cands in out:
        assert len(cands) == 5
        assert len(set(cands)) == 5


def test_greedy_is_deterministic_and_batching_does_not_change_it(tiny_vlm, clip):
    reqs = _requests(clip)
    params = GenerationParams(max_new_tokens=5)
    batched = tiny_vlm.generate(reqs, params)
    single = [tiny_vlm.generate([r], params)[0] for r in reqs]
    assert batched == single


def test_sampling_with_seed_is_reproducible(tiny_lm):
    req = [Request(3, "A dog runs.")]
    params = GenerationParams(max_new_tokens=8, do_sample=True, temperature=1.0, num_return_sequences=3, seed=7)
    assert tiny_lm.generate(req, params) == tiny_lm.generate(req, params)


def test_sequence_logps_equals_a_hand_computation_from_logits(tiny_vlm, clip):
    lm = tiny_vlm.lm
    reqs = _requests(clip)
    responses = ["a man walks left", "two red cars", "blue sky"]
    got = tiny_vlm.sequence_logps(reqs, responses)
    for i, (req, resp) in enumerate(zip(reqs, responses, strict=True)):
        batch = encode_for_logps(lm, [req], [resp])
        labels = batch.pop("labels")[0]
        with torch.no_grad():
            logits = lm.model(**batch).logits[0]
        # response tokens (incl. the end-of-turn) are the non-masked labels, by construction at the tail
        resp_ids = lm.tokenizer(resp, add_special_tokens=False)["input_ids"] + [lm.tokenizer.eos_token_id]
        n = len(resp_ids)
        assert labels[-n:].tolist() == resp_ids and (labels[:-n] == IGNORE_INDEX).all()
        total = 0.0
        length = labels.shape[0]
        for pos in range(length - n, length):
            total += torch.log_softmax(logits[pos - 1].double(), -1)[labels[pos]].item()
        assert got[i].item() == pytest.approx(total, abs=1e-4)


def test_params_validation():
    from engine.errors import InputError

    with pytest.raises(InputError, match="cannot exceed num_beams"):
        GenerationParams(num_beams=2, num_return_sequences=3)
    with pytest.raises(InputError, match="max_new_tokens"):
        GenerationParams(max_new_tokens=0)


def test_vllm_backend_says_what_is_missing():
    from engine.backends import load_backend
    from engine.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="vLLM|CUDA"):
        load_backend("vllm", "tiny-random-vlm")


def test_repetition_penalty_defaults_to_the_preset_and_a_request_overrides_it(tiny_lm, monkeypatch):
    from engine.guards import PromptPenalty

    seen = []
    real = tiny_lm.lm.model.generate

    def spy(**kwargs):
        guarded = [p for p in kwargs["logits_processor"] if isinstance(p, PromptPenalty)]
        if guarded:  # guards on: the guards' penalty (function words excepted) replaces transformers' one
            assert kwargs["repetition_penalty"] == 1.0
        seen.append(guarded[0].penalty if guarded else kwargs["repetition_penalty"])
        return real(**kwargs)

    monkeypatch.setattr(tiny_lm.lm.model, "generate", spy)
    req = [Request(3, "A dog runs.")]
    tiny_lm.generate(req, GenerationParams(max_new_tokens=2))
    tiny_lm.generate(req, GenerationParams(max_new_tokens=2, repetition_penalty=1.3))
    tiny_lm.generate(req, GenerationParams(max_new_tokens=2, repetition_penalty=1.3, guards=False))
    assert seen == [tiny_lm.lm.preset.repetition_penalty, 1.3, 1.3]


def test_smollm2_preset_decodes_with_a_repetition_penalty():
    from engine.models import PRESETS

    # greedy at 1.0 it recites the Task-3 rules instead of describing the input
    assert PRESETS["smollm2-135m"].repetition_penalty == 1.2
