"""The Task-3 LLM judge: the paper's evaluation prompt (section 4.2) and a strict `Score:` parser.

The prompt is the paper's, word for word; its seven factors are numbered lines (the paper's PDF
text renders them as a list). The parser takes the final overall score and never invents a number:
a missing score, only per-factor scores, a score outside 0-10, on another scale or as a range give
`parsed=False` and `score=None`, with the reason.
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

# "Score: 8", "**Score:** 7.5", "score = 9/10", "Score (0-10): 8", "Score: 6 out of 10". The number must follow
# the colon (markdown emphasis allowed); "/N" and "out of N" are kept so that "8/100" is refused rather than
# read as 8, and a range ("7-8") is kept so that it is refused rather than read as 7.
_SCORE_RE = re.compile(
    r"\bscore\**\s*(?:\((?:out\s+of\s+10|0\s*(?:-|to)\s*10|/\s*10)\)\s*)?\**\s*[:=]\s*\**\s*"
    r"(?P<value>[-+]?\d+(?:\.\d+)?)[ \t]*\**"
    r"(?:[ \t]*(?:/|out[ \t]+of)[ \t]*(?P<den>\d+(?:\.\d+)?))?"
    r"(?P<range>[ \t]*(?:-|\u2013|to)[ \t]*\d)?",
    re.IGNORECASE,
)
# Words before "score" in its clause that name the overall verdict ("Overall score:", "Final answer - Score:").
_OVERALL = frozenset({"overall", "final", "total"})
# Word stems that name one of the seven factors (or a factor in general): "Detail score:", "Camera: ..., score:".
_FACTOR_RE = re.compile(
    r"\b(detail|subject|action|movement|motion|background|location|weather|camera|shot|angle|style|visual|artistic|"
    r"photograph|coheren|natural|repetit|redundan|length|frame|factor|criteri|clarity|accura|relevan|complete|"
    r"fluen|grammar|sentence)",
    re.IGNORECASE,
)
# "Score: 7 for detail" / "(in terms of style)": a factor named after the number, unless it is the whole text.
_FACTOR_AFTER_RE = re.compile(
    r"^\s*\)?\s*(?:points?\s+)?\(?(?:for|on|in\s+terms\s+of)\s+"
    r"(?!(?:this|it|that|overall|total|the\s+(?:description|caption|video|prompt|text|response|whole))\b)\w",
    re.IGNORECASE,
)
# A list item ("1.", "2)", "- ", "* ", "Factor 3") or a line indented under one.
_ITEM_LINE_RE = re.compile(r"^(?:\s*(?:\d+[.)]|[-*\u2022+]\s|factor\s+\d)|[ \t]{2,}\S)", re.IGNORECASE)
# "Detail: ...", "**Camera movement**: ..." at the start of a line (up to five words before the colon).
_LABEL_RE = re.compile(r"^[\s*#>_-]*((?:[\w'-]+\s*){1,5})\**\s*:")
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


def _score_kind(raw: str, m: re.Match) -> str:
    """Kind of score match m: "overall" (labelled so), "factor" (names a factor), "item" (on a list line), "plain"."""
    line_start = raw.rfind("\n", 0, m.start()) + 1
    line_end = raw.find("\n", m.end())
    before, after = raw[line_start : m.start()], raw[m.end() : None if line_end < 0 else line_end]
    words = re.findall(r"[A-Za-z]+", re.split(r"[.!?;,(:]", before)[-1])  # "score"'s clause, up to it
    if _OVERALL & {w.lower() for w in words}:
        return "overall"
    # A label is the few words right before "score" ("Camera movement score:", "Detail Score:"); a capital
    # "Score" after a lower-case word starts a new unit ("... no camera movement Score: 6").
    new_unit = m.group(0).startswith("S") and words and words[-1][:1].islower()
    label_words = " ".join([] if new_unit else words[-3:])
    line_label = _LABEL_RE.match(before)
    if _FACTOR_RE.search(label_words) or _FACTOR_AFTER_RE.match(after):
        return "factor"
    if line_label and _FACTOR_RE.search(line_label.group(1)):
        return "factor"
    return "item" if _ITEM_LINE_RE.match(before) else "plain"


def _pick_score(raw: str, matches: list[re.Match]) -> re.Match | None:
    """The overall score: the last one labelled overall / final / total, else the last plain `Score:`,
    else a lone score on a list line. Per-factor scores are never taken for the overall one."""
    kinds = [_score_kind(raw, m) for m in matches]
    for wanted in ("overall", "plain"):
        picked = [m for m, k in zip(matches, kinds, strict=True) if k == wanted]
        if picked:
            return picked[-1]
    return matches[0] if kinds == ["item"] else None


def parse_judgement(raw: str) -> JudgeResult:
    """Read the overall `Score: <0-10>` from a judge's output; anything ambiguous is `parsed=False`, never a guess.

    Small judges often score each factor first ("1. Detail: ..., score: 9") and the whole text last
    ("Score: 8", "Overall score: 7.5", "**Final Score:** 6/10"): the final overall score is taken. Refused,
    with the reason: no score, only per-factor scores, a score outside 0-10, on another scale ("8/100",
    "8 out of 100") or given as a range ("7-8").
    """
    raw = raw or ""
    matches = list(_SCORE_RE.finditer(raw))
    if not matches:
        return JudgeResult(None, _evidence(raw, None), raw, False, "no 'Score: <number>' in the output")
    m = _pick_score(raw, matches)
    if m is None:
        shown = ", ".join(x.group("value") for x in matches)
        reason = f"only per-factor scores ({shown}), no overall score"
        return JudgeResult(None, _evidence(raw, matches[0].start()), raw, False, reason)
    evidence, value, den = _evidence(raw, m.start()), float(m.group("value")), m.group("den")
    if den is not None and float(den) != 10:
        return JudgeResult(None, evidence, raw, False, f"score given out of {den}, not 10")
    if m.group("range"):
        return JudgeResult(None, evidence, raw, False, f"score given as a range ({m.group(0).split(':')[-1].strip()})")
    if not 0.0 <= value <= 10.0:
        return JudgeResult(None, evidence, raw, False, f"score {value:g} is outside 0-10")
    return JudgeResult(value, evidence, raw, True)


@dataclass
class JudgeRequest(Request):
    """A request whose model input is the judge prompt itself (no task instruction around it)."""

    prompt: str = ""

    def __post_init__(self) -> None:
        self.task = Task.BEAUTIFY  # text only

    def text(self) -> str:
        return self.prompt


#: Greedy decoding with room for an explanation and the score line.
#: The Task-3 guards (engine.guards) are for writing prompts, not for judging one: off here.
JUDGE_PARAMS = GenerationParams(max_new_tokens=384, num_beams=1, num_return_sequences=1, guards=False)

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
