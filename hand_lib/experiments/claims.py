"""Claims about the results table, decided with a paired bootstrap over test sequences.

A claim compares two methods' per-sample errors on the *same* test samples (S2HAND scores
every view of every test frame; HaMuCo every present view of the same frames; the mean
hand every one of them too), optionally against a multiple of the second::

    "S2HAND finetune <= 0.8 x mean hand (PA-MPJPE)"  ->  mean(a - 0.8 b) < 0 beyond noise?

The verdict is ``holds`` when the whole 95% interval of ``mean(a - r b)`` lies below 0,
``does not hold`` when it lies above 0, ``within noise`` otherwise
(:func:`hand_lib.eval.compare`). Nothing is ever called "holds" inside the interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hand_lib.eval import compare

__all__ = ["Claim", "MethodErrors", "claims_markdown", "evaluate_claims", "mean_hand_errors",
           "multi_view_errors", "single_view_errors"]


@dataclass(frozen=True)
class MethodErrors:
    """One method's per-sample errors on a test split.

    Attributes:
        errors: metric name -> (N,) per-sample values (mm), e.g. from
            :func:`hand_lib.experiments.evaluate.per_sample_metrics`.
        keys: (N, 3) int ``(seq, frame, cam)`` of each sample (pairs samples across methods).
    """

    errors: Mapping[str, np.ndarray]
    keys: np.ndarray

    def aligned_to(self, keys: np.ndarray) -> MethodErrors:
        """The same errors in the order of ``keys`` (every key must be present)."""
        index = {tuple(k): i for i, k in enumerate(np.asarray(self.keys).tolist())}
        try:
            order = np.array([index[tuple(k)] for k in np.asarray(keys).tolist()])
        except KeyError as exc:
            raise ValueError(f"sample {exc.args[0]} (seq, frame, cam) has no error of this "
                             "method: the methods were not scored on the same samples") from exc
        return MethodErrors({k: np.asarray(v)[order] for k, v in self.errors.items()},
                            np.asarray(keys))


@dataclass(frozen=True)
class Claim:
    """``a <= ratio * b`` on ``metric`` (lower is better), e.g. ``Claim("S2HAND finetune",
    "mean hand", "PA-MPJPE", 0.8)``; ``ratio`` 1 is "a is better than b"."""

    a: str
    b: str
    metric: str
    ratio: float = 1.0

    @property
    def text(self) -> str:
        factor = "" if self.ratio == 1.0 else f"{self.ratio:g} x "
        return f"{self.a} < {factor}{self.b} ({self.metric})"


def evaluate_claims(methods: Mapping[str, MethodErrors], claims: Sequence[Claim], *,
                    n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Decide every claim with a paired bootstrap over sequences.

    Args:
        methods: name -> :class:`MethodErrors`; the claims' ``a``/``b`` must be among them.
        claims: what to check.

    Returns:
        One row per claim: ``claim`` (text), ``a``, ``b`` (the means), ``difference``
        (``mean(a - ratio b)``), ``low``, ``high`` (its 95% interval) and ``verdict``.
    """
    rows = []
    for claim in claims:
        for name in (claim.a, claim.b):
            if name not in methods:
                raise KeyError(f"claim {claim.text!r}: no method {name!r} "
                               f"(have {sorted(methods)})")
        a = methods[claim.a]
        b = methods[claim.b].aligned_to(a.keys)
        if claim.metric not in a.errors or claim.metric not in b.errors:
            raise KeyError(f"claim {claim.text!r}: metric {claim.metric!r} missing")
        ea, eb = np.asarray(a.errors[claim.metric]), np.asarray(b.errors[claim.metric])
        result = compare(ea, claim.ratio * eb, a.keys[:, 0], n_resamples=n_resamples,
                         seed=seed)
        d = result.difference
        rows.append({"claim": claim.text, "a": float(ea.mean()), "b": float(eb.mean()),
                     "difference": d.mean, "low": d.low, "high": d.high,
                     "verdict": result.verdict})
    return pd.DataFrame(rows)


def single_view_errors(predictions: Mapping[str, np.ndarray]) -> MethodErrors:
    """:class:`MethodErrors` of a single-view method from its test predictions
    (:func:`hand_lib.experiments.collect_predictions`: ``pred_joints``, ``joints_cam``,
    ``seq``, ``frame``, ``cam``)."""
    from hand_lib.experiments.evaluate import per_sample_metrics

    keys = np.stack([predictions["seq"], predictions["frame"], predictions["cam"]], axis=1)
    return MethodErrors(per_sample_metrics(predictions["pred_joints"],
                                           predictions["joints_cam"]), keys.astype(np.int64))


def multi_view_errors(predictions: Mapping[str, np.ndarray], output: str) -> MethodErrors:
    """:class:`MethodErrors` of one HaMuCo output (``single``, ``cross`` or ``fused``) over
    every (frame, used view) of :func:`hand_lib.experiments.hamuco_predictions`."""
    from hand_lib.experiments.evaluate import per_sample_metrics

    used = predictions["pred_view_mask"] > 0.5
    F, N = used.shape
    seq = np.broadcast_to(np.asarray(predictions["seq"])[:, None], (F, N))[used]
    frame = np.broadcast_to(np.asarray(predictions["frame"])[:, None], (F, N))[used]
    cams = np.asarray(predictions["cams"])[used]
    errors = per_sample_metrics(predictions[f"pred_joints_{output}"][used],
                                predictions["joints_cam"][used])
    return MethodErrors(errors, np.stack([seq, frame, cams], axis=1).astype(np.int64))


def mean_hand_errors(arrays: Mapping[str, np.ndarray], which: str = "best") -> MethodErrors:
    """:class:`MethodErrors` of a mean-hand row from
    :func:`hand_lib.experiments.baselines.mean_hand_rows` (``which``: "best" or "identity"
    rotation)."""
    from hand_lib.experiments.evaluate import per_sample_metrics

    return MethodErrors(per_sample_metrics(arrays[f"pred_{which}"], arrays["joints_cam"]),
                        np.asarray(arrays["keys"]).astype(np.int64))


def claims_markdown(claims: pd.DataFrame, digits: int = 2) -> str:
    """A claims table (:func:`evaluate_claims`, optionally with a ``kind`` column) as
    Markdown: the claim, both means, ``mean(a - r b)`` with its interval, the verdict."""
    has_kind = "kind" in claims.columns
    head = "| claim | a | b | a - r b [95% interval] | verdict |"
    lines = [("| kind " if has_kind else "") + head,
             ("|---" if has_kind else "") + "|---|---:|---:|---:|---|"]
    for _, r in claims.iterrows():
        cells = [r["claim"], f"{r['a']:.{digits}f}", f"{r['b']:.{digits}f}",
                 f"{r['difference']:+.{digits}f} [{r['low']:+.{digits}f}, {r['high']:+.{digits}f}]",
                 f"**{r['verdict']}**" if r["verdict"] == "holds" else r["verdict"]]
        if has_kind:
            cells.insert(0, r["kind"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
