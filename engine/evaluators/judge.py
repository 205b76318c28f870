"""The Task-3 LLM judge: the paper's evaluation prompt (section 4.2) and a strict `Score:` parser.

The prompt is the paper's, word for word; its seven factors are numbered lines (the paper's PDF
text renders them as a list). The parser never invents a number: a missing score, a score outside
0-10, or several different scores give `parsed=False` and `score=None`, with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.errors import InputError
from engine.tasks import Request
from engine.types import GenerationParams, Task

JUDGE_TEMPLATE = (
    "Description: {Detailed Caption}\n\n"
    "Please evaluate the quality of video description displayed above. A perfect (full-marks) video description "
    "needs to meet the following factors:\n"
    "1. It should be a detailed description in more than three sentences.\n"
    "2. It should contain description of the main subject actions or status sequence, including the main subjects "
    "(person, object, animal, or none) and their attributes, their action, their position, and movements.\n"
    "3. It should contain summary of the background, include the objects, location, weather, and time.\n"
    "4. It should contain summary of the view shot, camera movement and changes in shooting angles.\n"
    "5. It should contain brief summary of the visual, photographic and artistic style.\n"
    "6. It should be natural and coherent, rather than weird or confused.\n"
    "7. It should NOT describe each frame individually. It should NOT contain repetitive, redundant, or too long "
    "content\n\n"
    "Your evaluation should consider these factors. You should give an overall score on a scale of 0 to 10, where a "
    "higher score indicates better overall quality. Please first provide a comprehensive explanation of your "
    "evaluation, avoiding any potential bias. Then, output the score with the following format: Evaluation "
    "evidence: <your evaluation explanation here> Score: <score>"
)

MAX_JUDGED_CHARS = 16_000

# "Score: 8", "**Score:** 7.5", "score = 9/10", "Overall score: 6 out of 10". The number must follow the
# colon (markdown emphasis allowed); "/N" is kept so that "8/100" is refused rather than read as 8.
_SCORE_RE = re.compile(
    r"\bscore\**\s*[:=]\s*\**\s*(?P<value>[-+]?\d+(?:\.\d+)?)\s*\**\s*(?:/\s*(?P<den>\d+(?:\.\d+)?))?",
    re.IGNORECASE,
)
_EVIDENCE_RE = re.compile(r"evaluation\s+evidence\**\s*[:：]\s*\**", re.IGNORECASE)


@dataclass(frozen=True)
class JudgeResult:
    """The judge's verdict on one text."""

    score: float | None
    """0-10, or None when the output could not be parsed."""
    evidence: str
    """The judge's explanation (the text before the score)."""
    raw: str
    """The judge's whole output."""
    parsed: bool
    reason: str = ""
    """Why parsing failed (empty when parsed)."""

    def as_dict(self) -> dict[str, Any]:
        return {"score": self.score, "evidence": self.evidence, "parsed": self.parsed, "reason": self.reason}


def judge_prompt(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise InputError("nothing to judge: the text is empty")
    if len(text) > MAX_JUDGED_CHARS:
        raise InputError(f"text is {len(text)} characters; the judge takes at most {MAX_JUDGED_CHARS}")
    return JUDGE_TEMPLATE.replace("{Detailed Caption}", text)


def _evidence(raw: str, score_start: int | None) -> str:
    head = raw if score_start is None else raw[:score_start]
    found = _EVIDENCE_RE.search(head)
    body = head[found.end() :] if found else head
    return body.strip().strip("*").strip()


def parse_judgement(raw: str) -> JudgeResult:
    """Read `Score: <0-10>` from a judge's output; anything ambiguous is `parsed=False`, never a guess."""
    raw = raw or ""
    matches = list(_SCORE_RE.finditer(raw))
    if not matches:
        return JudgeResult(None, _evidence(raw, None), raw, False, "no 'Score: <number>' in the output")
    values = []
    for m in matches:
        den = m.group("den")
        if den is not None and float(den) != 10:
            return JudgeResult(None, _evidence(raw, m.start()), raw, False, f"score given out of {den}, not 10")
        values.append(float(m.group("value")))
    if len(set(values)) > 1:
        shown = ", ".join(f"{v:g}" for v in values)
        return JudgeResult(None, _evidence(raw, matches[0].start()), raw, False, f"several different scores: {shown}")
    value = values[0]
    if not 0.0 <= value <= 10.0:
        return JudgeResult(None, _evidence(raw, matches[0].start()), raw, False, f"score {value:g} is outside 0-10")
    return JudgeResult(value, _evidence(raw, matches[-1].start()), raw, True)


@dataclass
class JudgeRequest(Request):
    """A request whose model input is the judge prompt itself (no task instruction around it)."""

    prompt: str = ""

    def __post_init__(self) -> None:
        self.task = Task.BEAUTIFY  # text only

    def text(self) -> str:
        return self.prompt


#: Greedy decoding with room for an explanation and the score line.
JUDGE_PARAMS = GenerationParams(max_new_tokens=384, num_beams=1, num_return_sequences=1)

Generator = Callable[[list[str]], list[str]]


def _generate(backend: Any, prompts: list[str], params: GenerationParams) -> list[str]:
    if hasattr(backend, "generate"):
        requests = [JudgeRequest(Task.BEAUTIFY, prompt=p) for p in prompts]
        return [c[0] if c else "" for c in backend.generate(requests, params)]
    return list(backend(prompts))  # a plain callable: prompts -> outputs (tests, remote judges)


def judge_many(backend: Any, texts: list[str], params: GenerationParams | None = None) -> list[JudgeResult]:
    """Judge several texts in one batched generate call."""
    outputs = _generate(backend, [judge_prompt(t) for t in texts], params or JUDGE_PARAMS)
    return [parse_judgement(o) for o in outputs]


def judge(backend: Any, text: str, params: GenerationParams | None = None) -> JudgeResult:
    """Score one detailed prompt 0-10 with any backend (or a callable taking a list of prompts)."""
    return judge_many(backend, [text], params)[0]
