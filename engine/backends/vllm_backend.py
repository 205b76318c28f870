"""vLLM backend (GPU hosts, optional extra `vllm`): in-process `vllm.LLM`, same interface.

vLLM is imported only behind `vllm_available()`; on a machine without it, building this backend
raises BackendUnavailable with what to install.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import torch

from engine.errors import BackendUnavailable
from engine.guards import GuardSettings, copy_ban_words, cut_echoes, label_words, readable_token_ids, resolve_settings
from engine.models import ModelPreset, model_source, resolve
from engine.tasks import Request, build_messages
from engine.types import GenerationParams


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


@dataclass
class VLLMConfig:
    """Settings for the in-process vLLM engine."""

    tensor_parallel_size: int = 1
    """GPUs to shard the model over (one command serves one GPU or many)."""
    gpu_memory_utilization: float = 0.85
    """Fraction of each GPU vLLM may take."""
    max_model_len: int = 8192
    """Context length to reserve KV cache for."""
    dtype: str = "bfloat16"
    """Weights/activations dtype."""

    def __post_init__(self) -> None:
        if self.tensor_parallel_size < 1:
            raise ValueError("tensor_parallel_size must be >= 1")
        if not 0.1 <= self.gpu_memory_utilization <= 0.99:
            raise ValueError("gpu_memory_utilization must be in [0.1, 0.99]")


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: str, config: VLLMConfig | None = None) -> None:
        if not vllm_available():
            raise BackendUnavailable("the vllm backend needs vLLM: pip install '.[vllm]' on a CUDA host")
        if not torch.cuda.is_available():
            raise BackendUnavailable("the vllm backend needs a CUDA GPU; use --backend transformers on this machine")
        from vllm import LLM  # noqa: PLC0415  (optional dependency)

        self.config = config or VLLMConfig()
        self.preset: ModelPreset = resolve(model)
        self.model_name = self.preset.name
        self.random_weights = self.preset.random_weights
        self.llm = LLM(
            model=model_source(self.preset),
            tensor_parallel_size=self.config.tensor_parallel_size,
            gpu_memory_utilization=self.config.gpu_memory_utilization,
            max_model_len=self.config.max_model_len,
            dtype=self.config.dtype,
            limit_mm_per_prompt={"video": 1},
        )
        self.tokenizer = self.llm.get_tokenizer()

    def _prompt(self, request: Request) -> dict[str, Any]:
        messages = build_messages(request, video_model=self.preset.kind == "video")
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompt: dict[str, Any] = {"prompt": text}
        if request.frames is not None:
            prompt["multi_modal_data"] = {"video": request.frames}
        return prompt

    def generate(self, requests: list[Request], params: GenerationParams) -> list[list[str]]:
        prompts = [self._prompt(r) for r in requests]
        settings = resolve_settings(params, self.preset)
        if params.num_beams > 1 and not params.do_sample:
            texts = self._beam_search(prompts, params)
        else:
            from vllm import SamplingParams

            base = dict(
                n=params.num_return_sequences,
                temperature=params.temperature if params.do_sample else 0.0,
                top_p=params.top_p,
                max_tokens=params.max_new_tokens,
                seed=params.seed,
                repetition_penalty=params.repetition_penalty or self.preset.repetition_penalty,
            )
            # One SamplingParams per request: each bans its own instruction runs (its prompt's excepted).
            sps = [SamplingParams(**base, **self.guard_kwargs(r, settings)) for r in requests]
            outputs = self.llm.generate(prompts, sps)
            texts = [[c.text.strip() for c in o.outputs] for o in outputs]
        if not settings.enabled:
            return texts
        return [[cut_echoes(t, r.short_prompt) for t in ts] for r, ts in zip(requests, texts, strict=True)]

    def guard_kwargs(self, request: Request, settings: GuardSettings) -> dict[str, Any]:
        """engine.guards in vLLM's terms: the copy and label bans as bad_words, min_tokens, and allowed_token_ids
        for random-weight models. The prompt-word bonus (`keep_words`) needs per-step state that vLLM's
        per-request options lack; it is transformers-only."""
        kwargs: dict[str, Any] = {}
        if settings.enabled:
            words = copy_ban_words(request.task, settings.copy_ngram, request.short_prompt)
            kwargs["bad_words"] = [*label_words(), *words]
        if settings.min_new_tokens:
            kwargs["min_tokens"] = settings.min_new_tokens
        if settings.readable_only:
            kwargs["allowed_token_ids"] = readable_token_ids(self.tokenizer)
        return kwargs

    def _beam_search(self, prompts: list[dict[str, Any]], params: GenerationParams) -> list[list[str]]:
        """vLLM's beam search takes no bad words or token limits: guards apply as echo cutting only."""
        from vllm.sampling_params import BeamSearchParams

        bp = BeamSearchParams(beam_width=params.num_beams, max_tokens=params.max_new_tokens)
        outputs = self.llm.beam_search(prompts, bp)
        return [[s.text.strip() for s in o.sequences[: params.num_return_sequences]] for o in outputs]

    def sequence_logps(self, requests: list[Request], responses: list[str]) -> torch.Tensor:
        """Sum of response-token log-probs, read from vLLM's prompt log-probs of prompt + response.

        The response is the tail of the prompt, so its tokens are the last n of prompt_token_ids
        (multimodal placeholders expand earlier in the sequence and do not shift the tail).
        """
        from vllm import SamplingParams

        prompts, n_resp = [], []
        for r, y in zip(requests, responses, strict=True):
            p = self._prompt(r)
            p["prompt"] = p["prompt"] + y + self.tokenizer.eos_token
            prompts.append(p)
            n_resp.append(len(self.tokenizer(y, add_special_tokens=False)["input_ids"]) + 1)
        outs = self.llm.generate(prompts, SamplingParams(max_tokens=1, prompt_logprobs=0))
        return torch.tensor([_tail_logprob(o, n) for o, n in zip(outs, n_resp, strict=True)], dtype=torch.float32)


def _tail_logprob(output: Any, n: int) -> float:
    """Sum of the log-probs of the last n prompt tokens (entry i maps token id -> Logprob)."""
    ids, logprobs = output.prompt_token_ids, output.prompt_logprobs
    return float(sum(logprobs[i][ids[i]].logprob for i in range(len(ids) - n, len(ids)) if logprobs[i] is not None))
