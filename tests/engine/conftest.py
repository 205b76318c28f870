"""Engine test doubles shared by the mining, evaluation and Studio tests."""

from __future__ import annotations

from collections.abc import Callable

from engine.tasks import Request
from engine.types import GenerationParams


class ScriptedJudge:
    """A Backend whose outputs come from a function of the prompts: a stand-in for the LLM judge.

    Handed to `Studio(backends={name: ScriptedJudge(...)})`, so the Studio's judge verb runs its real
    path (prompt building, batching, parsing) around it.
    """

    name = "scripted"
    random_weights = False

    def __init__(self, reply: Callable[[list[str]], list[str]], model_name: str = "scripted-judge") -> None:
        self.reply = reply
        self.model_name = model_name
        self.prompts: list[str] = []

    def generate(self, requests: list[Request], params: GenerationParams) -> list[list[str]]:
        prompts = [r.text() for r in requests]
        self.prompts += prompts
        return [[out] for out in self.reply(prompts)]
