"""Networks: image encoders, S2HAND's model-based regressor and hourglass, HaMuCo."""

from hand_lib.models.encoders import ENCODERS, FeaturePyramid, ImageEncoder

__all__ = ["ENCODERS", "FeaturePyramid", "ImageEncoder"]
