"""The suite's experiments: profiles, datasets, stage runners and the results table.

What the notebooks call. Everything here is a thin composition of the library's layers
(data, models, tasks, train, eval) so that each notebook cell stays one readable call.
"""

from hand_lib.experiments.claims import Claim, MethodErrors, evaluate_claims
from hand_lib.experiments.data import hanco_dataset, validation_sequences
from hand_lib.experiments.evaluate import (
    METRIC_COLUMNS,
    best_constant_rotation,
    collect_predictions,
    ground_truth_vertices,
    mean_hand_keypoints,
    mean_hand_predictions,
    metrics_row,
    per_sample_errors,
    per_sample_metrics,
)
from hand_lib.experiments.s2hand import (
    StageRun,
    SupervisedTask,
    build_task,
    evaluate_s2hand,
    load_stage,
    s2hand_config,
    train_s2hand_stage,
)
from hand_lib.experiments.settings import (
    PROFILE_SETTINGS,
    SUITE_STAGES,
    SuiteSettings,
    suite_settings,
    training_config,
)

__all__ = [
    "Claim",
    "MethodErrors",
    "best_constant_rotation",
    "evaluate_claims",
    "mean_hand_keypoints",
    "mean_hand_predictions",
    "per_sample_metrics",
    "validation_sequences",
    "METRIC_COLUMNS",
    "PROFILE_SETTINGS",
    "SUITE_STAGES",
    "StageRun",
    "SuiteSettings",
    "SupervisedTask",
    "build_task",
    "evaluate_s2hand",
    "load_stage",
    "collect_predictions",
    "ground_truth_vertices",
    "hanco_dataset",
    "metrics_row",
    "per_sample_errors",
    "s2hand_config",
    "suite_settings",
    "train_s2hand_stage",
    "training_config",
]

from hand_lib.experiments.hamuco import (  # noqa: E402
    HAMUCO_OUTPUTS,
    error_vs_views,
    evaluate_hamuco,
    hamuco_config,
    hamuco_metrics,
    hamuco_predictions,
    load_hamuco,
    train_hamuco,
)

__all__ += [
    "HAMUCO_OUTPUTS",
    "error_vs_views",
    "evaluate_hamuco",
    "hamuco_config",
    "hamuco_metrics",
    "hamuco_predictions",
    "load_hamuco",
    "train_hamuco",
]

from hand_lib.experiments.freihand import (  # noqa: E402
    evaluate_freihand,
    export_freihand_pred_json,
    predict_freihand,
)

__all__ += ["evaluate_freihand", "export_freihand_pred_json", "predict_freihand"]
