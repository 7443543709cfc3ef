"""The steps of a study (:class:`~aiida_crystinv.workflows.study.StudyWorkChain`): their
names, the ones a plan runs, and the decorator that reports each start and end."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    from .study import StudyWorkChain


#: The steps of a study, each reported (``verdi process report``) once when it starts and
#: once when it ends: ``[step 2/5] descriptors: started (...)``, ``[step 2/5] descriptors:
#: done in 3.4 s (...)`` or ``... failed after 3.4 s``. ``crystinv study run`` prints them.
STUDY_STEPS = {
    "import": "import the sources",
    "audit": "audit the descriptors for invariance and continuity",
    "descriptors": "compute or find the descriptors",
    "training": "train and evaluate every pair",
    "summary": "summarise the metrics",
    "screening": "screen the candidates",
    "loop": "run the DFT loop",
}
#: How every step report begins.
STEP_PREFIX = "[step "


def study_steps(study: Mapping[str, Any]) -> list[str]:
    """The steps (keys of :data:`STUDY_STEPS`) a study plan runs, in order."""
    steps = ["import", *(["audit"] if study.get("audit") else []), "descriptors", "training", "summary"]
    if study.get("screening"):
        steps.append("screening")
    if study.get("loop"):
        steps.append("loop")
    return steps


def _step(name: str, start: bool = False, end: bool = False) -> Callable:
    """Report the start (before) and / or the end (after) of the study step ``name`` around
    an outline method. A method that returns a non-zero exit code ends its step as failed;
    one that sets ``ctx.step_detail`` adds it to the line."""

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def wrapper(self: "StudyWorkChain") -> Any:
            if start:
                self._step_report(name, "started")
            result = method(self)
            failed = result is not None and getattr(result, "status", 0) != 0
            if end or failed:
                self._step_report(name, "failed" if failed else "done")
            return result

        return wrapper

    return decorate
