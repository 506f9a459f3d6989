"""Evaluation: metrics (MPJPE, PA-MPJPE, HaMuCo N-JE/PA-JE, F-score, PCK/AUC, the official
FreiHAND protocol) and writers for the FreiHAND and HO-3D submission files."""

from hand_lib.eval.bootstrap import Comparison, Interval, compare, sequence_bootstrap
from hand_lib.eval.export import (
    FREIHAND_TO_HO3D,
    HO3D_TO_FREIHAND,
    read_pred_json,
    write_freihand_pred_json,
    write_ho3d_pred_json,
    zip_submission,
)
from hand_lib.eval.metrics import (
    FreiHandEvalResult,
    FScore,
    PckCurve,
    PointErrors,
    f_score,
    freihand_official_eval,
    hamuco_nje,
    hamuco_paje,
    keypoint_errors_2d,
    mpjpe,
    nearest_neighbour_distances,
    pa_mpjpe,
    pa_mpvpe,
    pck_2d,
    pck_curve,
)

__all__ = [
    "Comparison",
    "Interval",
    "compare",
    "sequence_bootstrap",
    "FREIHAND_TO_HO3D",
    "FScore",
    "FreiHandEvalResult",
    "HO3D_TO_FREIHAND",
    "PckCurve",
    "PointErrors",
    "f_score",
    "freihand_official_eval",
    "hamuco_nje",
    "hamuco_paje",
    "keypoint_errors_2d",
    "mpjpe",
    "nearest_neighbour_distances",
    "pa_mpjpe",
    "pa_mpvpe",
    "pck_2d",
    "pck_curve",
    "read_pred_json",
    "write_freihand_pred_json",
    "write_ho3d_pred_json",
    "zip_submission",
]
