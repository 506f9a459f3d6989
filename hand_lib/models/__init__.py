"""Networks: image encoders, S2HAND's model-based regressor and hourglass, HaMuCo."""

from hand_lib.models.encoders import ENCODERS, FeaturePyramid, ImageEncoder
from hand_lib.models.hamuco import (
    CrossViewOutput,
    HaMuCoConfig,
    HaMuCoNet,
    HaMuCoOutput,
    SingleViewOutput,
    normalized_to_pixels,
    pixels_to_normalized,
)
from hand_lib.models.hamuco_inference import (
    MultiViewPrediction,
    TriangulationRefinement,
    fuse_views,
    predict_multiview,
    refine_with_triangulation,
)
from hand_lib.models.hourglass import HourglassOutput, StackedHourglass, soft_argmax
from hand_lib.models.s2hand import (
    S2HandConfig,
    S2HandNet,
    S2HandOutput,
    TextureLightHead,
    fit_to_keypoints,
)

__all__ = [
    "ENCODERS",
    "FeaturePyramid",
    "HourglassOutput",
    "ImageEncoder",
    "S2HandConfig",
    "S2HandNet",
    "S2HandOutput",
    "StackedHourglass",
    "TextureLightHead",
    "fit_to_keypoints",
    "soft_argmax",
    "CrossViewOutput",
    "HaMuCoConfig",
    "HaMuCoNet",
    "HaMuCoOutput",
    "SingleViewOutput",
    "normalized_to_pixels",
    "pixels_to_normalized",
    "MultiViewPrediction",
    "TriangulationRefinement",
    "fuse_views",
    "predict_multiview",
    "refine_with_triangulation",
]
