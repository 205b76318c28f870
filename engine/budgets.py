"""Token budgets of text-to-video targets: how much of a detailed prompt each target's text encoder reads.

A prompt past the budget is cut by the encoder (CLIP) or refused by the pipeline: the words after the cut
never reach the video. Targets and their budgets (start/end tokens included):

| target               | text encoder | budget | tokenizer here                                                       |
|----------------------|--------------|--------|----------------------------------------------------------------------|
| clip-l               | CLIP ViT-L   | 77     | open_clip's bundled BPE: exact, offline                              |
| cogvideox-2b / -5b   | T5-XXL       | 226    | the pipeline folder's tokenizer (VIDPROMPTER_T2V_<NAME>, HF cache)   |
| wan2.1-t2v-1.3b      | UMT5-XXL     | 512    | likewise                                                             |
| easyanimate-v5.1-7b  | Qwen2        | 256    | likewise (counted after its chat template, as the pipeline does)     |

The limits of the text-to-video targets are engine.t2v's presets' `max_tokens`. A tokenizer folder alone
works too: VIDPROMPTER_TOKENIZER_<NAME> (e.g. VIDPROMPTER_TOKENIZER_COGVIDEOX_2B=/models/t5-tokenizer).
Without a local tokenizer the count is an ESTIMATE, and says so: CLIP's BPE count of the text times the
target's factor (ESTIMATE_FACTORS), plus its end token. The factors are assumptions for English prose, not
measurements (no T5/UMT5/Qwen2 vocabulary exists on this machine): expect the estimate within ~15 %.

Where the cut falls: the longest prefix of whole words whose count fits (binary search over word ends,
~log2(words) encodes); the first word that does not fit and everything after it is "beyond the budget".
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from engine.errors import InputError, ModelLoadError
from engine.presets import env_path, env_var_name, hf_cached
from engine.sentences import split_sentences

CLIP_TARGET = "clip-l"
CLIP_CONTEXT = 77
#: Target tokens per CLIP BPE token assumed by an estimate (T5's 32k SentencePiece splits English a little
#: finer than CLIP's 49k BPE; UMT5's 256k and Qwen2's 151k vocabularies about as fine).
ESTIMATE_FACTORS = {"t5": 1.15, "umt5": 1.1, "qwen2": 1.0}
#: A typical detailed prompt: generation budgets convert target tokens to the generator's through it.
REFERENCE_TEXT = (
    "A golden retriever runs along a sunlit beach at sunset, its wet fur glistening as waves crash behind it. "
    "The camera tracks it from a low angle, then slowly pans right to reveal two children flying a red kite. "
    "Warm, cinematic lighting with soft lens flare; shallow depth of field, 4K, smooth slow motion."
)
_WORD_END = re.compile(r"\S+")


@dataclass(frozen=True)
class BudgetTarget:
    """A text encoder a detailed prompt is written for, and how many tokens it reads."""

    name: str
    label: str
    max_tokens: int
    """Tokens the encoder reads, start/end tokens included."""
    encoder: str
    """clip, t5, umt5 or qwen2."""
    encoder_name: str = "CLIP"
    """The text encoder as people name it (T5-XXL, UMT5-XXL, Qwen2)."""
    t2v: str | None = None
    """The engine.t2v preset whose pipeline folder holds this tokenizer."""

    @property
    def env_var(self) -> str:
        return env_var_name("tokenizer", self.name)


def _targets() -> dict[str, BudgetTarget]:
    from engine.t2v.presets import T2V_PRESETS

    encoders = {"cogvideox": ("t5", "T5-XXL"), "wan": ("umt5", "UMT5-XXL"), "easyanimate": ("qwen2", "Qwen2")}
    out = {CLIP_TARGET: BudgetTarget(CLIP_TARGET, "CLIP-L (77 tokens)", CLIP_CONTEXT, "clip")}
    for p in T2V_PRESETS.values():
        if p.builtin is None:
            encoder, name = encoders[p.family]
            label = f"{p.name}: {name} ({p.max_tokens} tokens)"
            out[p.name] = BudgetTarget(p.name, label, p.max_tokens, encoder, name, p.name)
    return out


TARGETS: dict[str, BudgetTarget] = _targets()


@dataclass
class Measure:
    """A text counted under one target: the count, where the target cuts it, and how it was counted."""

    target: str
    max_tokens: int
    tokens: int
    """Tokens the text takes, start/end tokens included."""
    fits_chars: int
    """text[:fits_chars] is read; text[fits_chars:] (after whitespace) is beyond the budget."""
    exact: bool
    """True: the target's own tokenizer; False: an estimate."""
    method: str
    """How it was counted, in words (the tokenizer's folder, or the estimate's rule and why)."""

    @property
    def over(self) -> int:
        return max(0, self.tokens - self.max_tokens)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "over": self.over}


Counter = Callable[[str], int]


class Budgets:
    """Counters per target (tokenizers loaded once, from local files only); a Studio owns one."""

    def __init__(self) -> None:
        self._counters: dict[str, tuple[Counter, bool, str]] = {}
        self._lock = threading.Lock()

    def counter(self, target: str) -> tuple[Counter, bool, str]:
        """(count(text) with start/end tokens, exact?, method) of a target."""
        spec = get_target(target)
        with self._lock:
            if target not in self._counters:
                self._counters[target] = _make_counter(spec)
            return self._counters[target]

    def measure(self, text: str, target: str) -> Measure:
        """`text` under `target`: its count and where the target cuts it."""
        if not isinstance(text, str) or not text.strip():
            raise InputError("nothing to count: the text is empty")
        count, exact, method = self.counter(target)
        spec = get_target(target)
        tokens = count(text)
        fits = len(text) if tokens <= spec.max_tokens else _fitting_prefix(text, count, spec.max_tokens)
        return Measure(target, spec.max_tokens, tokens, fits, exact, method)

    def fit(self, text: str, target: str) -> tuple[str, str]:
        """(text cut to the budget, how): after its last sentence that fits; else at the last word that fits."""
        m = self.measure(text, target)
        if m.over == 0:
            return text, "fits"
        whole = [s for s in split_sentences(text) if s.end <= m.fits_chars]
        if whole:
            return text[: whole[-1].end], f"cut after sentence {len(whole)} (the next one would pass {m.max_tokens})"
        return text[: m.fits_chars].rstrip(), f"cut inside the first sentence: it alone passes {m.max_tokens}"

    def generator_tokens(self, target: str, generator_count: Counter) -> tuple[int, float]:
        """(max_new_tokens for a generator, its tokens per target token): the target's budget, less its
        start/end tokens, in the generator's tokens as measured on REFERENCE_TEXT with both tokenizers."""
        count, _, _ = self.counter(target)
        spec = get_target(target)
        specials = count("")  # start/end tokens (and a chat template's), which no prompt word can use
        ratio = generator_count(REFERENCE_TEXT) / max(1, count(REFERENCE_TEXT) - specials)
        return max(1, math.floor((spec.max_tokens - specials) * ratio)), ratio


def get_target(name: str) -> BudgetTarget:
    if name not in TARGETS:
        raise InputError(f"unknown target {name!r}: pick one of {', '.join(TARGETS)}")
    return TARGETS[name]


def _fitting_prefix(text: str, count: Counter, budget: int) -> int:
    """The end offset of the longest whole-word prefix whose count fits `budget` (0: not even one word)."""
    ends = [m.end() for m in _WORD_END.finditer(text)]
    fits = bisect.bisect_right(ends, budget, key=lambda end: _prefix_tokens(text, end, count, budget))
    return ends[fits - 1] if fits else 0


def _prefix_tokens(text: str, end: int, count: Counter, budget: int) -> int:
    """bisect's key: `budget` when text[:end] fits (so bisect_right finds the last fitting end), else more."""
    return budget if count(text[:end]) <= budget else budget + 1


# -- counters ------------------------------------------------------------------------------------


def _make_counter(spec: BudgetTarget) -> tuple[Counter, bool, str]:
    clip = _clip_counter()
    if spec.encoder == "clip":
        return clip, True, "CLIP BPE (open_clip's bundled tokenizer)"
    folder, why = _tokenizer_folder(spec)
    if folder is not None:
        try:
            return _hf_counter(folder, spec.encoder == "qwen2"), True, f"{spec.encoder.upper()} tokenizer in {folder}"
        except Exception as exc:  # noqa: BLE001 - any failure to load means: estimate, and say why
            why = f"the tokenizer in {folder} cannot load here ({' '.join(str(exc).split())[:120]})"
    factor = ESTIMATE_FACTORS[spec.encoder]

    def estimate(text: str) -> int:
        return math.ceil((clip(text) - 2) * factor) + 1  # CLIP's start/end out, the target's end token in

    where = f"set {spec.env_var} to a tokenizer folder, or the pipeline's {_t2v_env(spec)}, for an exact count"
    return estimate, False, f"estimate: CLIP BPE tokens x {factor:g} + 1 end token; {why}; {where}"


def _clip_counter() -> Counter:
    import open_clip

    tokenizer = open_clip.SimpleTokenizer()
    return lambda text: len(tokenizer.encode(text)) + 2  # start and end tokens


def _t2v_env(spec: BudgetTarget) -> str:
    from engine.t2v.presets import T2V_PRESETS

    return T2V_PRESETS[spec.t2v].env_var if spec.t2v else "?"


def _tokenizer_folder(spec: BudgetTarget) -> tuple[Path | None, str]:
    """A local tokenizer folder for the target, or (None, why there is none)."""
    try:
        own = env_path(spec.env_var, "folder")
    except ModelLoadError as exc:
        return None, str(exc)
    if own:
        return Path(own), ""
    from engine.t2v.presets import resolve_t2v

    preset = resolve_t2v(spec.t2v or spec.name)
    if preset.local_path and (Path(preset.local_path) / "tokenizer").is_dir():
        return Path(preset.local_path) / "tokenizer", ""
    cached = hf_cached(preset.hub_id, ("tokenizer/tokenizer_config.json",))
    if cached:
        return Path(cached).parent, ""
    return None, f"{spec.encoder_name}'s tokenizer is not on this machine"


def _hf_counter(folder: Path, chat: bool) -> Counter:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))

    def count(text: str) -> int:
        if chat:  # EasyAnimate reads the prompt inside its chat template (engine.t2v.backend.count_tokens)
            messages: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "text", "text": text}]}]
            templated = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            text = cast(str, templated)  # tokenize=False gives the text; transformers types every return form
        return len(tokenizer(text).input_ids)

    return count
