"""transformers backend: text LMs (Task 3) and video LMs (Tasks 1-3), batched, CPU or CUDA (bf16).

Small-model guards (engine.guards) ride along as logits processors when the preset or the request
turns them on; `stream` runs one request's candidates as one batched generate in a worker thread and
yields their growing texts.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, cast

import torch
from transformers import (
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.generation.streamers import BaseStreamer

from engine.backends.prefix_cache import PrefixCache, shared_prefix_batch
from engine.encoding import encode_for_logps, encode_prompts, gather_logps
from engine.guards import (
    AllowOnly,
    GuardSettings,
    KeepWords,
    PromptPenalty,
    SequenceBan,
    content_words,
    copy_ban,
    cut_echoes,
    function_word_ids,
    label_ban,
    readable_token_ids,
    resolve_settings,
    word_starts,
)
from engine.models import LoadedModel, load_model
from engine.tasks import Request
from engine.types import GenerationParams


class TransformersBackend:
    """Runs a LoadedModel with `model.generate` and one forward pass for log-probs."""

    name = "transformers"

    def __init__(self, lm: LoadedModel, batch_size: int | None = None) -> None:
        self.lm = lm
        # Rows per generate call: 32 for text LMs (one shared cached instruction prefix; measured ~2x the
        # tokens/s of 8 rows on 2 CPU cores), 8 for video LMs, whose rows each carry their frames.
        self.batch_size = batch_size or (8 if lm.is_video else 32)
        self.model_name = lm.preset.name
        self.random_weights = lm.preset.random_weights
        self._readable: list[int] | None = None
        self._function_words: list[int] | None = None
        # Single text prompts reuse the KV cache of the previous prompt's shared prefix (the instruction).
        self._prefix = None if lm.is_video else PrefixCache(lm.model)

    @classmethod
    def load(cls, model: str, device: str | None = None, batch_size: int | None = None) -> TransformersBackend:
        return cls(load_model(model, device=device), batch_size=batch_size)

    def _chunks(self, items: list, size: int):
        for i in range(0, len(items), size):
            yield items[i : i + size]

    @torch.inference_mode()
    def generate(self, requests: list[Request], params: GenerationParams) -> list[list[str]]:
        out: dict[int, list[str]] = {}
        # Beams and sampled candidates multiply the rows; keep the rows per call near batch_size.
        size = max(1, self.batch_size // max(1, params.num_beams, params.num_return_sequences))
        for group in self._length_groups(requests):
            for chunk in self._chunks(group, size):
                for i, texts in zip(chunk, self._generate_chunk([requests[i] for i in chunk], params), strict=True):
                    out[i] = texts
        return [out[i] for i in range(len(requests))]  # every index was filled

    def _length_groups(self, requests: list[Request]) -> list[list[int]]:
        """Request indices grouped by prompt length in tokens (text LMs), in order of first appearance.

        A batch of equal-length prompts needs no padding, so its attention mask is all ones and SDPA runs
        without one (GQA natively, no key/value copy per head): decoding 32 rows of SmolLM2 took 1.6x as
        long per step with a padded mask (measured on 2 CPU cores). Video LMs: one group, in order.
        """
        if self.lm.is_video or len(requests) < 2:
            return [list(range(len(requests)))]
        from engine.encoding import prompt_text

        tok = self.lm.tokenizer
        groups: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            n = len(tok(prompt_text(self.lm, r), add_special_tokens=False)["input_ids"])
            groups.setdefault(n, []).append(i)
        return list(groups.values())

    def _generate_chunk(self, requests: list[Request], params: GenerationParams, **extra: Any) -> list[list[str]]:
        settings = resolve_settings(params, self.lm.preset)
        texts = self._decode(self._run(requests, params, settings, **extra))
        n = params.num_return_sequences
        return [[self._clean(t, r, settings) for t in texts[i * n : (i + 1) * n]] for i, r in enumerate(requests)]

    def _run(
        self, requests: list[Request], params: GenerationParams, settings: GuardSettings, **extra: Any
    ) -> list[list[int]]:
        """model.generate on one batch -> each row's new token ids (B * num_return_sequences rows)."""
        batch = encode_prompts(self.lm, requests)
        kwargs = self._generate_kwargs(requests, params, settings)
        batch, cache = self._cached_prefix(batch, max(params.num_beams, params.num_return_sequences))
        if cache is not None:
            kwargs["past_key_values"] = cache
        ids = self.lm.model.generate(**batch, **kwargs, **extra)
        # (rows, L_prompt + L_new): every prompt row ends at one column, so new tokens start there.
        return ids[:, batch["input_ids"].shape[1] :].tolist()

    def _cached_prefix(self, batch: dict[str, Any], rows: int) -> tuple[dict[str, Any], Any]:
        """(batch, cache): the prefix every prompt shares (the instruction) cached once and repeated for the
        B x `rows` generation rows, the batch laid out around it (prefix_cache.shared_prefix_batch); the
        batch unchanged and None where it cannot be cached (video inputs, a model whose cache cannot be cut).

        Each Task-3 prompt is ~310 instruction tokens and ~20 of its own: a batch of 32 prompts prefills
        ~10k tokens without this, ~640 with it.
        """
        if self._prefix is None or set(batch) - {"input_ids", "attention_mask"}:
            return batch, None
        mask = batch["attention_mask"].bool()
        prompts = [row[m].tolist() for row, m in zip(batch["input_ids"], mask, strict=True)]
        prefix, ids, new_mask = shared_prefix_batch(prompts, self.lm.tokenizer.pad_token_id)
        cache = self._prefix.prefix(prefix)
        if cache is None:
            if not self._prefix.supported:  # e.g. a sliding-window model: never try again
                self._prefix = None
            return batch, None
        cache.batch_repeat_interleave(len(prompts) * rows)  # generate() expands the prompt, not a cache it is handed
        device = batch["input_ids"].device
        return {"input_ids": ids.to(device), "attention_mask": new_mask.to(device)}, cache

    def _generate_kwargs(
        self, requests: list[Request], params: GenerationParams, settings: GuardSettings
    ) -> dict[str, Any]:
        if params.seed is not None:
            torch.manual_seed(params.seed)
        penalty = params.repetition_penalty or self.lm.preset.repetition_penalty
        processors = self._processors(requests, params, settings)
        if settings.enabled and penalty != 1.0:  # the same penalty, function words excepted
            if self._function_words is None:
                self._function_words = function_word_ids(self.lm.tokenizer, self._end_ids())
            processors.insert(0, PromptPenalty(penalty, self._function_words))
            penalty = 1.0
        kwargs: dict[str, Any] = dict(
            max_new_tokens=params.max_new_tokens,
            num_beams=params.num_beams,
            num_return_sequences=params.num_return_sequences,
            do_sample=params.do_sample,
            pad_token_id=self.lm.tokenizer.pad_token_id,
            repetition_penalty=penalty,
            logits_processor=processors,
        )
        if settings.min_new_tokens:
            kwargs["min_new_tokens"] = settings.min_new_tokens
        if params.do_sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
        else:
            # Unset sampling defaults a checkpoint may carry, so greedy/beam runs without warnings.
            kwargs.update(temperature=None, top_p=None, top_k=None)
        return kwargs

    def _end_ids(self) -> set[int]:
        """The tokens that end a turn: the tokenizer's EOS and the checkpoint's generation-config EOS ids."""
        ends = self.lm.model.generation_config.eos_token_id
        ids = set(ends if isinstance(ends, list) else [ends] if ends is not None else [])
        if self.lm.tokenizer.eos_token_id is not None:
            ids.add(self.lm.tokenizer.eos_token_id)
        return {int(i) for i in ids}

    def _processors(
        self, requests: list[Request], params: GenerationParams, settings: GuardSettings
    ) -> LogitsProcessorList:
        """The guards as logits processors; transformers runs them before temperature and top-p."""
        tok = self.lm.tokenizer
        processors = LogitsProcessorList()
        if settings.enabled:
            labels = label_ban(tok)
            per_request = [labels | copy_ban(tok, r.task, settings.copy_ngram, r.short_prompt) for r in requests]
            rows = max(params.num_beams, params.num_return_sequences)
            processors.append(SequenceBan(per_request, rows))
            if settings.keep_words > 0:
                words = [word_starts(tok, content_words(r.short_prompt or "")) for r in requests]
                processors.append(KeepWords(words, settings.keep_words, rows))
        if settings.readable_only:
            if self._readable is None:
                self._readable = readable_token_ids(tok)
            vocab = self.lm.model.get_output_embeddings().weight.shape[0]
            processors.append(AllowOnly(self._readable, vocab))
        return processors

    def _decode(self, rows: list[list[int]]) -> list[str]:
        return [t.strip() for t in self.lm.tokenizer.batch_decode(rows, skip_special_tokens=True)]

    @staticmethod
    def _clean(text: str, request: Request, settings: GuardSettings, final: bool = True) -> str:
        return cut_echoes(text, request.short_prompt, final) if settings.enabled else text

    # -- streaming -------------------------------------------------------------------------------------
    def stream(
        self, request: Request, params: GenerationParams, stop: threading.Event | None = None
    ) -> Iterator[list[str]]:
        """One request's candidates as they grow: one list of num_return_sequences texts per new token.

        Greedy and sampling stream (one batched generate; the candidates grow together); beam search
        cannot (a beam's text is not final until the search ends), so it yields once, at the end. The
        last item is always the final texts, cleaned exactly as `generate` cleans them. `stop.set()`
        from another thread ends generation after the current decoding step; what was generated is
        returned. Leaving the iterator early stops the generation too.
        """
        stop = stop or threading.Event()
        if params.num_beams > 1:  # not streamed, but stopped by the event all the same (a time limit)
            criteria = StoppingCriteriaList([StopOnEvent(stop)])
            yield self._generate_chunk([request], params, stopping_criteria=criteria)[0]
            return
        run = _StreamRun(self, request, params, stop)
        try:
            yield from run.partials()
            yield run.final()
        finally:
            stop.set()  # an abandoned iterator must not leave the worker decoding
            run.join()

    # -- log-probs -------------------------------------------------------------------------------------
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


_END = object()


class StopOnEvent(StoppingCriteria):
    """Ends every row once the event is set: checked after each decoding step."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        done = torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)
        return cast(torch.BoolTensor, done)  # transformers' signature names the legacy tensor type


class RowStreamer(BaseStreamer):
    """Collects each row's new token ids as generate() produces them and signals the consumer.

    generate() calls put() first with the expanded prompt (rows, L), then once per step with the new
    tokens (rows,); a finished row keeps receiving pad tokens, which are dropped after its end token.
    """

    def __init__(self, end_ids: set[int]) -> None:
        self.end_ids = end_ids
        self.rows: list[list[int]] = []
        self.done: list[bool] = []
        self.updates: queue.Queue = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # (rows, L): the prompt, repeated per candidate
            self._prompt_seen = True
            self.rows = [[] for _ in range(value.shape[0])]
            self.done = [False] * value.shape[0]
            return
        for row, token in enumerate(value.tolist()):
            if self.done[row]:
                continue
            if token in self.end_ids:
                self.done[row] = True
            else:
                self.rows[row].append(token)
        self.updates.put([list(r) for r in self.rows])

    def end(self) -> None:
        self.updates.put(_END)


class _StreamRun:
    """One streamed generate call: the worker thread, its streamer, and its result or error."""

    def __init__(self, backend: TransformersBackend, request: Request, params: GenerationParams, stop) -> None:
        self.backend, self.request, self.params = backend, request, params
        self.settings = resolve_settings(params, backend.lm.preset)
        self.streamer = RowStreamer(backend._end_ids())
        self.stop = stop
        self.result: list[list[int]] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name="vidprompter-stream", daemon=True)
        self.thread.start()

    @torch.inference_mode()
    def _work(self) -> None:
        try:
            criteria = StoppingCriteriaList([StopOnEvent(self.stop)])
            self.result = self.backend._run(
                [self.request], self.params, self.settings, streamer=self.streamer, stopping_criteria=criteria
            )
        except BaseException as exc:  # handed to the consumer's thread, which raises it
            self.error = exc
        finally:
            self.streamer.end()

    def partials(self) -> Iterator[list[str]]:
        """Decoded texts after each step; steps that arrived together are decoded once."""
        ended = False
        while not ended:
            latest = None
            item = self.streamer.updates.get()  # block for one step, then take whatever else is queued
            while True:
                if item is _END:
                    ended = True
                    break
                latest = item
                if self.streamer.updates.empty():
                    break
                item = self.streamer.updates.get()
            if latest is not None:
                texts = self.backend._decode(latest)
                yield [self.backend._clean(t, self.request, self.settings, final=False) for t in texts]

    def final(self) -> list[str]:
        self.join()
        if self.error is not None:
            raise self.error
        texts = self.backend._decode(self.result or [])
        return [self.backend._clean(t, self.request, self.settings) for t in texts]

    def join(self) -> None:
        self.thread.join()
