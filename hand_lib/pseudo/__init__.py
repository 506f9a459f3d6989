"""2D pseudo labels: detectors (MediaPipe Hands, a simulated detector), label files, quality.

One detector interface (:mod:`hand_lib.pseudo.detector`): an (H, W, 3) uint8 RGB image in,
(21, 2) pixels + (21,) confidences out, in hand_lib's joint order; "no hand found" is every
confidence 0.

- :mod:`~hand_lib.pseudo.mediapipe`: MediaPipe Hands (mediapipe 0.10.21, bundled models,
  offline; in a side venv because it needs numpy<2) and its pure conversion functions;
  :mod:`~hand_lib.pseudo.mediapipe_cli` labels a HanCo-layout folder with it.
- :mod:`~hand_lib.pseudo.simulated`: ground-truth projections corrupted like a real detector.
- :mod:`~hand_lib.pseudo.labels`: HanCo/HaMuCo, S2HAND and OpenPose label files (atomic writes).
- :mod:`~hand_lib.pseudo.hanco_labels`: simulated labels for a whole HanCo-layout folder.
- :mod:`~hand_lib.pseudo.agreement`: labels reweighted or filtered by multi-view agreement
  (written to a new folder; ``HanCo(..., pseudo_dir=...)`` trains on them).
- :mod:`~hand_lib.pseudo.report`: pseudo-label quality (2D error vs confidence, RANSAC
  triangulation, 3D error) as DataFrames.

Typical use on a HanCo-layout folder (real HanCo or ``python -m hand_lib.data.synthetic``)::

    from hand_lib.pseudo import label_hanco_simulated, hanco_pseudo_label_report
    label_hanco_simulated(root, seed=0)          # writes rgb_2D_keypoints/, resumable
    report = hanco_pseudo_label_report(root)     # .summary, .per_joint, .by_confidence

    # MediaPipe labels, in the side venv, then the same report in the main one:
    #   tools/mediapipe_env.sh label ROOT --image-dir rgb_merged --label-dir mp_rgb_merged
    report = hanco_pseudo_label_report(root, label_dir="mp_rgb_merged")

Names are imported lazily: the NumPy-only modules (detector, labels, mediapipe, simulated)
must load in the MediaPipe side venv, which has no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Detection": "detector", "Detections": "detector", "HandDetector": "detector",
    "detect_all": "detector",
    "HANCO_LABEL_DIR": "labels", "LabelFormatError": "labels", "S2HandDetections": "labels",
    "atomic_write_json": "labels", "hanco_label_path": "labels",
    "read_hanco_label": "labels", "write_hanco_label": "labels",
    "read_s2hand_detections": "labels", "write_s2hand_detections": "labels",
    "read_openpose_hand": "labels", "write_openpose_hand": "labels",
    "MEDIAPIPE_TO_HAND_LIB": "mediapipe", "MediaPipeHands": "mediapipe",
    "SimulatedDetectorConfig": "simulated", "SimulatedDetections": "simulated",
    "hand_box_size": "simulated", "simulate_detections": "simulated",
    "HanCoMultiView": "hanco_labels", "LabellingSummary": "hanco_labels",
    "label_hanco_simulated": "hanco_labels", "load_hanco_multiview": "hanco_labels",
    "read_visibility": "hanco_labels",
    "AGREEMENT_LABEL_DIR": "agreement", "AgreementLabels": "agreement",
    "AgreementSummary": "agreement", "label_hanco_agreement": "agreement",
    "reweight_by_agreement": "agreement",
    "PseudoLabelReport": "report", "hanco_pseudo_label_report": "report",
    "pseudo_label_report": "report",
}  # fmt: skip

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hand_lib.pseudo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"hand_lib.pseudo.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
