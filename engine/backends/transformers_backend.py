"""transformers backend: text LMs (Task 3) and video LMs (Tasks 1-3), batched, CPU or CUDA (bf16)."""

from __future__ import annotations

import torch

from engine.encoding import encode_for_logps, encode_prompts, gather_logps
from engine.models import LoadedModel, load_model
from engine.tasks import Request
from engine.types import GenerationParams


class TransformersBackend:
    """Runs a LoadedModel with `model.generate` and one forward pass for log-probs."""

    name = "transformers"

    def __init__(self, lm: LoadedModel, batch_size: int = 8) -> None:
        self.lm = lm
        self.batch_size = batch_size
        self.model_name = lm.preset.name
        self.random_weights = lm.preset.random_weights

    @classmethod
    def load(cls, model: str, device: str | None = None, batch_size: int = 8) -> TransformersBackend:
        return cls(load_model(model, device=device), batch_size=batch_size)

    def _chunks(self, items: list, size: int):
        for i in range(0, len(items), size):
            yield items[i : i + size]

    @torch.inference_mode()
    def generate(self, requests: list[Request], params: GenerationParams) -> list[list[str]]:
        out: list[list[str]] = []
        # Beam search multiplies the batch by num_beams; keep the effective batch near batch_size.
        size = max(1, self.batch_size // max(1, params.num_beams))
        for chunk in self._chunks(requests, size):
            out.extend(self._generate_chunk(chunk, params))
        return out

    def _generate_chunk(self, requests: list[Request], params: GenerationParams) -> list[list[str]]:
        batch = encode_prompts(self.lm, requests)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        kwargs = dict(
            max_new_tokens=params.max_new_tokens,
            num_beams=params.num_beams,
            num_return_sequences=params.num_return_sequences,
            do_sample=params.do_sample,
            pad_token_id=self.lm.tokenizer.pad_token_id,
            repetition_penalty=params.repetition_penalty or self.lm.preset.repetition_penalty,
        )
        if params.do_sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        else:
            # Unset sampling defaults a checkpoint may carry, so greedy/beam runs without warnings.
            kwargs.update(temperature=None, top_p=None, top_k=None)
        ids = self.lm.model.generate(**batch, **kwargs)
        # (B * n, L_prompt + L_new): prompts are left-padded so new tokens start at one column.
        new = ids[:, batch["input_ids"].shape[1] :]
        texts = [t.strip() for t in self.lm.tokenizer.batch_decode(new, skip_special_tokens=True)]
        n = params.num_return_sequences
        return [texts[i * n : (i + 1) * n] for i in range(len(requests))]

    @torch.inference_mode()
    def sequence_logps(self, requests: list[Request], responses: list[str]) -> torch.Tensor:
        parts = []
        pairs = list(zip(requests, responses, strict=True))
        for chunk in self._chunks(pairs, self.batch_size):
            reqs, resps = zip(*chunk, strict=True)
            parts.append(self.forward_logps(list(reqs), list(resps)))
        return torch.cat(parts).cpu() if parts else torch.zeros(0)

    def forward_logps(self, requests: list[Request], responses: list[str]) -> torch.Tensor:
        """One forward over a batch; differentiable when called outside inference mode (training)."""
        batch = encode_for_logps(self.lm, requests, responses)
        labels = batch.pop("labels")
        logits = self.lm.model(**batch, use_cache=False).logits
        return gather_logps(logits, labels)
