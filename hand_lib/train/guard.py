"""The NaN/inf guard: skip and count bad steps, stop loudly when they keep coming."""

from __future__ import annotations

import logging
import math
from typing import Any

from hand_lib.train.errors import TrainingDiverged

log = logging.getLogger("hand_lib.train")


class BadStepGuard:
    """Counts optimisation steps whose loss or gradient norm is not finite.

    A bad step is never applied and never silent: :meth:`record` logs a warning for each
    one, and raises :class:`TrainingDiverged` after ``max_consecutive`` bad steps in a row.
    Small-but-finite losses are normal steps (one of the originals skipped those too).

    A float16 *overflow* (finite loss, non-finite gradients while the loss scale is still
    >= 1) is the gradient scaler's normal calibration: it is skipped, counted in ``total``
    and ``overflows`` and logged at info level, but does not count towards divergence.
    """

    def __init__(self, max_consecutive: int) -> None:
        self.max_consecutive = max_consecutive
        self.total = 0
        self.consecutive = 0
        self.overflows = 0

    def record(
        self, bad: bool, *, step: int, epoch: int, terms: dict[str, float], grad_norm: float,
        overflow: bool = False, hint: str = "",
    ) -> None:
        """Record the outcome of the step with 1-based number ``step``.

        Raises:
            TrainingDiverged: on the ``max_consecutive``-th bad step in a row.
        """
        if not bad:
            self.consecutive = 0
            return
        self.total += 1
        shown = ", ".join(f"{k}={v:.4g}" for k, v in terms.items())
        if overflow:
            self.overflows += 1
            log.info("step %d skipped: float16 gradient overflow, the loss scale is lowered "
                     "(%d overflow steps so far)", step, self.overflows)
            return
        self.consecutive += 1
        reason = "non-finite loss" if not all(map(math.isfinite, terms.values())) \
            else f"non-finite gradient norm ({grad_norm})"
        log.warning(
            "step %d (epoch %d) skipped: %s [%s]; %d bad in a row, %d in total",
            step, epoch, reason, shown, self.consecutive, self.total,
        )
        if self.consecutive >= self.max_consecutive:
            raise TrainingDiverged(
                f"training diverged: {self.consecutive} consecutive bad steps (non-finite loss "
                f"or gradients), last at step {step} (epoch {epoch}): {reason} [{shown}]. "
                f"{self.total} bad steps in this run. {hint}".rstrip()
            )

    def state_dict(self) -> dict[str, Any]:
        """Counters, for checkpoints."""
        return {"total": self.total, "consecutive": self.consecutive,
                "overflows": self.overflows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore counters saved by :meth:`state_dict`."""
        self.total = int(state["total"])
        self.consecutive = int(state["consecutive"])
        self.overflows = int(state.get("overflows", 0))
