"""The Studio's scoring verbs, mixed into `engine.service.Studio` (which owns every model it serves).

`ensemble` (the one evaluator ensemble, members loaded on first use), `evaluator_status` /
`usable_evaluators` / `require_evaluators` (which evaluators load, one note per one that does not), `score`
(paper section 3.5: 100 x cosine per evaluator and their mean), `ground` (per-sentence support) and
`judge` / `judge_many` (the Task-3 LLM judge). No torch at import: the ensemble's module loads on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ModelLoadError
from engine.evaluators.registry import evaluator_status
from engine.evaluators.scores import ScoreReport
from engine.types import GenerationParams, Task

if TYPE_CHECKING:
    from engine.backends.base import Backend
    from engine.evaluators.ensemble import Ensemble
    from engine.evaluators.judge import JudgeResult
    from engine.grounding import Grounding


class ScoringVerbs:
    """Evaluator and judge verbs of the Studio. Needs from the Studio: `config` (device, evaluators, judge and text
    models), `_registry_lock` and `_ensemble` (the cached ensemble), `_backend` and `_model_call` (models)."""

    config: Any
    _registry_lock: threading.Lock
    _ensemble: Ensemble | None

    if TYPE_CHECKING:  # the Studio's (engine.service), called by the verbs below

        def _backend(self, model: str | None = None, task: Task | int | None = None) -> Backend: ...

        def _model_call(self, backend: Backend) -> AbstractContextManager[None]: ...

    # -- evaluators (engine.evaluators) ---------------------------------------------------------
    @property
    def ensemble(self) -> Ensemble:
        """The one evaluator ensemble: members load on first use and stay loaded."""
        with self._registry_lock:
            if self._ensemble is None:
                from engine.evaluators.ensemble import Ensemble

                self._ensemble = Ensemble(device=self.config.device)
            return self._ensemble

    def evaluator_status(self, name: str) -> tuple[bool, str]:
        """(usable?, one-line message) without loading weights: for pickers and notes."""
        return evaluator_status(name)

    def usable_evaluators(self, names: Sequence[str]) -> tuple[list[str], list[str]]:
        """(the evaluators that load, one '<name> not used: <why>' line per one that does not)."""
        usable, notes = [], []
        for name in dict.fromkeys(names):  # each once, in the order asked
            ok, message = self.evaluator_status(name)
            if ok:
                try:
                    self.ensemble.member(name)
                except ModelLoadError as exc:  # weights found but unreadable: say so, keep the others
                    ok, message = False, str(exc)
            if ok:
                usable.append(name)
            else:
                notes.append(f"{name} not used: {message}")
        return usable, notes

    def require_evaluators(self, names: Sequence[str]) -> list[str]:
        """Like `usable_evaluators`, but any unusable one is a ModelLoadError (mining, evaluation, the CLI)."""
        usable, notes = self.usable_evaluators(names)
        if notes:
            raise ModelLoadError("; ".join(notes))
        return usable

    def score(self, video: str | Path, texts: Sequence[str], evaluators: Sequence[str] | None = None) -> ScoreReport:
        """Score texts against one video with the ensemble (paper section 3.5: 100 x cosine, and their mean).

        evaluators: names (default: the config's). Ones that cannot load are left out with one note each;
        the rest score together (one video decode per frame count). Bad videos or texts raise.
        """
        names = list(self.config.evaluators if evaluators is None else evaluators)
        usable, notes = self.usable_evaluators(names)
        if not usable or not texts:
            return ScoreReport([], usable, notes)
        rows = self.ensemble.score_detailed(str(video), list(texts), usable)
        return ScoreReport(rows, usable, notes, self.ensemble.random_weights(usable))

    def ground(
        self, video: str | Path, texts: Sequence[str], evaluators: Sequence[str] | None = None, margin: float = 1.0
    ) -> list[Grounding]:
        """Each text's sentences scored against the video in one `score` call; the least-supported one
        flagged when it sits `margin` points below the others' median (engine.grounding)."""
        from engine.grounding import ground_texts

        return ground_texts(self, video, texts, evaluators, margin)

    # -- the Task-3 LLM judge (engine.evaluators.judge) -----------------------------------------
    def judge_many(
        self, texts: Sequence[str], model: str | None = None, params: GenerationParams | None = None
    ) -> list[JudgeResult]:
        """The paper's LLM judge on several texts in one batched call: 0-10, or score None when unparsed."""
        from engine.evaluators.judge import JUDGE_PARAMS, judge_many, judge_prompt

        for text in texts:  # refuse an empty or huge text before loading a model
            judge_prompt(text)
        backend = self._backend(model or self.config.judge_model or self.config.text_model)
        with self._model_call(backend):
            return judge_many(backend, list(texts), params or JUDGE_PARAMS)

    def judge(self, text: str, model: str | None = None, params: GenerationParams | None = None) -> JudgeResult:
        """The judge on one text."""
        return self.judge_many([text], model, params)[0]
