"""HaMuCo's networks (Zheng et al., ICCV 2023): a single-view branch and a cross-view network.

Input: ``images`` (B, N, 3, H, W), B samples of N views of the same hand (any N >= 1, in any
order), RGB in [0, 1], each a crop around the hand. No camera parameters are used.

**Single-view branch** (per view): a torchvision ResNet keeps its four stages (strides 4 to
32); a head on the pooled last stage regresses 16 local joint rotations in the 6D
representation, 10 shape coefficients and a weak-perspective camera ``(s, tx, ty)``.

**Pose convention** (HaMuCo's): the 6D finger rotations are converted to axis-angle
(``pose_axis_angle``), MANO's pose parameter, to which MANO's mean finger pose is added
(layer built with ``flat_hand_mean=False``), so ``pose_axis_angle = 0`` (6D identity, where
the head starts) is the mean pose and pose priors pull ``pose_axis_angle`` toward 0. Joint 0
is the global rotation, expressed in the camera's axes (x right, y down, z forward); it is
used as a matrix (no mean pose is added to it).

**Weak perspective**: positions are root-relative at keypoint 9 (middle MCP), metres, in
the camera's axes. A point ``X`` projects to normalised crop coordinates
``(u, v) = s * (X_x, X_y) + (tx, ty)``: ``s`` is in normalised units per metre and
``(tx, ty)`` is where the middle MCP lands. Normalised coordinates follow ``grid_sample``
with ``align_corners=False``: -1 and 1 are the outer pixel edges of the crop, so with pixel
centres at integer coordinates (OpenCV, as in :mod:`hand_lib.data.transforms`)
``u_px = ((u + 1) * W - 1) / 2`` (:func:`normalized_to_pixels`). ``uvd`` is
``(u, v, s * X_z)``: depth in the same normalised units.

**Cross-view network**: per view, 21 joint tokens built from (a) 21 global tokens, a 1x1
convolution of the last stage (average-pooled to ``global_grid`` x ``global_grid``) to 21
channels, each flattened; (b) joint-aligned features, ``grid_sample`` of stages 1-3 at the
*detached* single-view 2D keypoints; (c) a 64-d embedding of each joint's single-view
``uvd`` and the 6D rotation of the MANO joint that places it (tips: the distal joint).
A learned per-joint embedding is added; there is no view embedding, so the network is
equivariant to permutations of the views. ``num_layers`` layers each sum a graph block
and a transformer block (:mod:`hand_lib.models.hamuco_blocks`). A head maps each view's
tokens to its fused pose and camera; the shape is the single-view shape, detached.

**Missing and masked views**: ``view_mask`` (B, N) marks the views that exist. Missing
views are not encoded at all (so they cannot reach the others, not even through batch-norm
statistics) and their outputs are NaN: index with ``view_mask`` before computing losses.
In training, each present view is additionally hidden from the other views with
probability ``view_mask_prob`` (never all views of a sample); a hidden view still gets a
cross-view prediction, made from the visible views and its own tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn

from hand_lib.geometry import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    rot6d_to_matrix,
)
from hand_lib.mano import MANO_TO_FREIHAND, ManoLayer
from hand_lib.models.encoders import RESNETS, FeaturePyramid, ImageEncoder
from hand_lib.models.hamuco_blocks import CrossViewLayer, sample_joint_features
from hand_lib.models.keypoint_head import KeypointHead, KeypointLifter, normalized_keypoints
from hand_lib.models.s2hand import scale_gradient, upright_rotation

__all__ = [
    "CrossViewOutput",
    "HaMuCoConfig",
    "HaMuCoNet",
    "HaMuCoOutput",
    "SingleViewOutput",
    "normalized_to_pixels",
    "pixels_to_normalized",
]

ROOT = 9  # middle MCP, HaMuCo's root joint
NUM_KEYPOINTS = 21
NUM_MANO_JOINTS = 16
#: For each of the 21 keypoints (FreiHAND order), the MANO joint whose 6D rotation goes into
#: its token: the joint itself, or for a fingertip the distal joint of that finger.
KEYPOINT_ROTATION_JOINT: tuple[int, ...] = tuple(
    m if m < NUM_MANO_JOINTS else MANO_TO_FREIHAND[k - 1] for k, m in enumerate(MANO_TO_FREIHAND)
)
_IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def normalized_to_pixels(points: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Normalised crop coordinates -> pixels (pixel centres at integers, OpenCV).

    Args:
        points: (..., 2) ``(u, v)`` in ``grid_sample``'s ``align_corners=False`` convention
            (-1 and 1 are the outer pixel edges).
        image_size: ``(H, W)`` of the crop, pixels.

    Returns:
        (..., 2) pixels, ``u`` right, ``v`` down.
    """
    H, W = image_size
    scale = points.new_tensor([W, H])
    return ((points + 1.0) * scale - 1.0) / 2.0


def pixels_to_normalized(points_px: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Inverse of :func:`normalized_to_pixels`: (..., 2) pixels -> (..., 2) normalised."""
    H, W = image_size
    scale = points_px.new_tensor([W, H])
    return (2.0 * points_px + 1.0) / scale - 1.0


@dataclass(frozen=True)
class HaMuCoConfig:
    """Network options.

    Attributes:
        encoder: torchvision ResNet ("resnet18", HaMuCo's default, "resnet34", "resnet50").
        encoder_weights: optional local ImageNet state dict; empty = random init.
        encoder_width: channel multiplier of a ResNet-18/34 encoder (1 = torchvision's).
        keypoint_features: the single-view branch also predicts 2D keypoint heatmaps and
            lifts them (:mod:`hand_lib.models.keypoint_head`, as in S2HAND's network; not in
            the paper), and its global rotation starts upright instead of at the identity.
        keypoint_width: channels of the keypoint head.
        regressor_gradient: scale of the gradient the single-view head and the cross-view
            network send back into the encoder (1: end to end, as in the paper; 0: the
            encoder learns from the keypoint head's 2D terms only, as in
            :class:`hand_lib.models.S2HandConfig`).
        train_lifter_through_image: the image path's terms also train the lifter; False
            leaves it to the task's lifter terms (as in :class:`hand_lib.models.S2HandConfig`).
        pose_pca: 0: the lifter and the cross-view correction predict the finger pose as 15
            free 6D rotations, like the paper's heads; n > 0: as n MANO pose-PCA
            coefficients (S2HAND's pose space, 30 there; the lifter's are absolute, the
            cross-view's are added to the single view's finger axis-angles), turned into
            the same 6D parameters, so the hands stay in the span of real hand poses (not in
            the paper: on the quick set, a 6D lifter trained from 2D drifted from the mean
            hand's 13.6 to 15.4 mm PA-MPJPE in 100 steps, a 30-PCA one stayed at 13.7).
        mano_path: MANO file or folder; empty = the open hand model shipped with hand_lib.
        head_hidden: width of the single-view head's MLP and the cross-view head's MLP.
        init_camera_scale: initial weak-perspective scale ``s`` (normalised crop units per
            metre; 5 maps a 0.2 m hand to half the crop).
        token_dim: channels D of the cross-view tokens.
        embed_dim: width of the uvd + 6D embedding (64 in HaMuCo).
        global_grid: the last stage is average-pooled to this grid before the 1x1 conv, so
            each global token has ``global_grid**2`` values whatever the input size.
        num_layers: cross-view layers (2).
        num_heads: attention heads (4).
        mlp_ratio: transformer MLP width, multiples of D.
        dropout: dropout in the cross-view layers (0.1).
        head_token_dim: per-token width the cross-view head reduces to before flattening.
        view_mask_prob: training only: chance that a present view is hidden from the others
            (this library's default; HaMuCo's paper does not give one).
        detach_single_view: the cross-view network reads the single-view uvd, 6D and (with
            ``cross_view_residual``) parameters detached, so cross-view losses do not train
            the single-view head (which learns from its own losses and the distillation).
        cross_view_residual: the cross-view head predicts a correction to the single-view
            pose and camera (starting training from the single-view result) instead of
            absolute values.
    """

    encoder: str = "resnet18"
    encoder_weights: str = ""
    encoder_width: float = 1.0
    keypoint_features: bool = False
    keypoint_width: int = 64
    regressor_gradient: float = 1.0
    train_lifter_through_image: bool = True
    pose_pca: int = 0
    mano_path: str = ""
    head_hidden: int = 512
    init_camera_scale: float = 5.0
    token_dim: int = 256
    embed_dim: int = 64
    global_grid: int = 8
    num_layers: int = 2
    num_heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.1
    head_token_dim: int = 32
    view_mask_prob: float = 0.2
    detach_single_view: bool = True
    cross_view_residual: bool = True

    def __post_init__(self) -> None:
        if self.encoder not in RESNETS:
            raise ValueError(f"encoder must be one of {RESNETS}, got {self.encoder!r}")
        for name in ("head_hidden", "token_dim", "embed_dim", "global_grid", "num_layers",
                     "num_heads", "head_token_dim"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.token_dim % self.num_heads:
            raise ValueError(
                f"token_dim ({self.token_dim}) must be divisible by num_heads ({self.num_heads})"
            )
        if not 0.0 <= self.view_mask_prob < 1.0:
            raise ValueError(f"view_mask_prob must be in [0, 1), got {self.view_mask_prob}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.init_camera_scale <= 0 or self.mlp_ratio <= 0:
            raise ValueError("init_camera_scale and mlp_ratio must be > 0")


@dataclass
class SingleViewOutput:
    """One branch's prediction for every view. Leading dims (B, N); entries of missing
    views are NaN.

    Attributes:
        pose_6d: (B, N, 16, 6) local joint rotations, 6D (first two matrix columns).
        pose_axis_angle: (B, N, 16, 3) the same rotations as axis-angle, radians: MANO's pose
            parameter, *offset from the mean pose* (0 = mean pose). Joint 0 = global
            rotation in the camera's axes.
        rot_mats: (B, N, 16, 3, 3) local rotations MANO applied (mean pose included).
        betas: (B, N, 10) MANO shape coefficients.
        camera: (B, N, 3) weak-perspective ``(s, tx, ty)``: s in normalised crop units per
            metre (> 0), (tx, ty) normalised crop coordinates of the middle MCP.
        vertices_rel: (B, N, 778, 3) mesh, metres, root-relative at keypoint 9, camera axes.
        joints_rel: (B, N, 21, 3) keypoints (FreiHAND order), metres, root-relative at
            keypoint 9, camera axes.
        keypoints_2d: (B, N, 21, 2) weak-perspective projection, normalised crop
            coordinates in [-1, 1] (see :func:`normalized_to_pixels`).
        uvd: (B, N, 21, 3) ``(u, v)`` of ``keypoints_2d`` and depth ``s * z_rel``, all in
            normalised crop units.
        heatmap_keypoints_2d: (B, N, 21, 2) the keypoint head's soft-argmax keypoints, crop
            pixels (single view with ``keypoint_features``; else None).
        heatmap_logits: (B, N, 21, h, w) its heatmap logits (or None).
    """

    pose_6d: Tensor
    pose_axis_angle: Tensor
    rot_mats: Tensor
    betas: Tensor
    camera: Tensor
    vertices_rel: Tensor
    joints_rel: Tensor
    keypoints_2d: Tensor
    uvd: Tensor
    heatmap_keypoints_2d: Tensor | None = None
    heatmap_logits: Tensor | None = None

    def keypoints_2d_px(self, image_size: tuple[int, int]) -> Tensor:
        """(B, N, 21, 2) ``keypoints_2d`` in crop pixels; ``image_size`` = (H, W) of the crop."""
        return normalized_to_pixels(self.keypoints_2d, image_size)

    def select_sample(self, index: int) -> SingleViewOutput:
        """The same output for sample ``index`` of the batch: every field indexed on dim 0,
        so shapes lose the B dimension ((N, 21, 3) etc.)."""
        return type(self)(**{f.name: None if getattr(self, f.name) is None else
                              getattr(self, f.name)[index] for f in fields(self)})


@dataclass
class CrossViewOutput(SingleViewOutput):
    """The cross-view network's prediction, same fields and units as
    :class:`SingleViewOutput`; ``betas`` are the single-view betas (detached)."""


@dataclass
class HaMuCoOutput:
    """Result of :class:`HaMuCoNet`.

    Attributes:
        single_view: per-view predictions of the single-view branch.
        cross_view: per-view predictions of the cross-view network.
        view_mask: (B, N) bool, the views that exist (outputs of the others are NaN).
        visible_mask: (B, N) bool, the views the cross-view network let inform the others
            (``view_mask`` minus the views hidden by random masking in training).
    """

    single_view: SingleViewOutput
    cross_view: CrossViewOutput
    view_mask: Tensor
    visible_mask: Tensor


class _MLP(nn.Sequential):
    def __init__(self, dims: list[int]) -> None:
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.LeakyReLU(0.1, inplace=True))
        super().__init__(*layers)


class HaMuCoNet(nn.Module):
    """HaMuCo: single-view branch and cross-view interaction network.

    Args:
        config: :class:`HaMuCoConfig`.
        mano: a ready :class:`ManoLayer`, shared between models; built from
            ``config.mano_path`` (with ``flat_hand_mean=False``: the 6D identity is the mean
            pose) when None. A layer with ``flat_hand_mean=True`` makes it the flat hand.
    """

    def __init__(self, config: HaMuCoConfig | None = None, mano: ManoLayer | None = None):
        super().__init__()
        self.config = config = config or HaMuCoConfig()
        self.mano = mano if mano is not None else ManoLayer(config.mano_path or None)
        self.num_betas = self.mano.num_betas
        self.encoder = ImageEncoder(config.encoder, config.encoder_weights or None,
                                    width=config.encoder_width)
        c = self.encoder.channels
        J, D = NUM_KEYPOINTS, config.token_dim
        self._num_params = NUM_MANO_JOINTS * 6 + self.num_betas + 3
        self._camera_bias = math.log(math.expm1(config.init_camera_scale))  # softplus^-1
        self._global_6d = (matrix_to_rot6d(upright_rotation(self.mano)).tolist()
                           if config.keypoint_features else list(_IDENTITY_6D))

        # single-view head: pooled stage 4 -> 16x6D pose, betas, raw camera
        if not 0 <= config.pose_pca <= self.mano.num_pca_max:
            raise ValueError(f"pose_pca must be in 0..{self.mano.num_pca_max}, got "
                             f"{config.pose_pca}")
        # with pose_pca and the lifter, the head corrects the lifted hand in PCA space
        head_out = (config.pose_pca + 6 + self.num_betas + 3
                    if config.pose_pca and config.keypoint_features else self._num_params)
        self.single_head = _MLP([c[3], config.head_hidden, config.head_hidden, head_out])
        self.keypoint_head = self.lifter = None
        if config.keypoint_features:  # the lifter carries the hand, the head corrects it
            self.keypoint_head = KeypointHead(c, width=config.keypoint_width)
            if config.pose_pca:
                n = config.pose_pca + 6 + self.num_betas + 3
                self.lifter = KeypointLifter(n, hidden=config.head_hidden)
                last = self.lifter.mlp[-1]
                nn.init.normal_(last.weight, std=1e-3)
                nn.init.zeros_(last.bias)
                with torch.no_grad():  # the mean pose, upright, at the initial camera
                    last.bias[config.pose_pca:config.pose_pca + 6] = torch.tensor(
                        self._global_6d)
                    last.bias[-3] = self._camera_bias
            else:
                self.lifter = KeypointLifter(self._num_params, hidden=config.head_hidden)
                self._init_last(self.lifter.mlp[-1], absolute=True)
            nn.init.zeros_(self.single_head[-1].weight)
            nn.init.zeros_(self.single_head[-1].bias)
        else:
            self._init_last(self.single_head[-1], absolute=True)

        # cross-view tokens
        self.global_tokens = nn.Conv2d(c[3], J, kernel_size=1)
        self.pose_embed = _MLP([3 + 6, config.embed_dim, config.embed_dim])
        token_in = config.global_grid**2 + c[0] + c[1] + c[2] + config.embed_dim
        self.token_proj = nn.Linear(token_in, D)
        self.joint_embed = nn.Parameter(torch.randn(J, D) * 0.02)
        self.register_buffer(
            "keypoint_rotation_joint", torch.tensor(KEYPOINT_ROTATION_JOINT), persistent=False
        )
        self.layers = nn.ModuleList(
            CrossViewLayer(D, J, config.num_heads, config.mlp_ratio, config.dropout)
            for _ in range(config.num_layers)
        )
        self.cross_norm = nn.LayerNorm(D)
        self.cross_reduce = nn.Linear(D, config.head_token_dim)
        cross_pose = (config.pose_pca + 6 if config.pose_pca and config.cross_view_residual
                      else NUM_MANO_JOINTS * 6)
        self.cross_head = _MLP([J * config.head_token_dim, config.head_hidden, cross_pose + 3])
        self._init_last(self.cross_head[-1], absolute=not config.cross_view_residual)

    def _init_last(self, layer: nn.Linear, *, absolute: bool) -> None:
        """Small weights; biases at the identity pose and the initial camera, or zero for a
        residual head."""
        nn.init.normal_(layer.weight, std=1e-3)
        nn.init.zeros_(layer.bias)
        if absolute:
            with torch.no_grad():
                layer.bias[: NUM_MANO_JOINTS * 6] = torch.tensor(_IDENTITY_6D).repeat(
                    NUM_MANO_JOINTS
                )
                layer.bias[:6] = torch.tensor(self._global_6d)
                layer.bias[-3] = self._camera_bias

    # ------------------------------------------------------------------------------------
    def decode(self, pose_6d: Tensor, betas: Tensor, camera: Tensor) -> dict[str, Tensor]:
        """Pose MANO and project it with a weak-perspective camera.

        Args:
            pose_6d: (P, 16, 6) local rotations, 6D, offset from the mean pose.
            betas: (P, 10) shape.
            camera: (P, 3) ``(s, tx, ty)``, s > 0.

        Returns:
            the fields of :class:`SingleViewOutput` with leading dim P instead of (B, N).
        """
        rot = rot6d_to_matrix(pose_6d)
        pose_aa = matrix_to_axis_angle(rot)
        # Fingers: MANO's axis-angle parameter plus the layer's mean pose, as MANO does it.
        # The global rotation goes in as a matrix: no mean to add, and no trip through
        # axis-angle, whose branch cut at pi the +-180 degree rotation augmentation reaches.
        mean = self.mano.hands_mean.view(NUM_MANO_JOINTS - 1, 3)
        fingers = axis_angle_to_matrix(pose_aa[:, 1:] + mean)
        rot_mats = torch.cat([rot[:, :1], fingers], dim=1)
        mano = self.mano(rot_mats, betas, pose_type="rotmat")
        root = mano.keypoints[:, ROOT : ROOT + 1]
        joints_rel = mano.keypoints - root
        vertices_rel = mano.vertices - root
        s = camera[:, None, 0:1]
        uv = s * joints_rel[..., :2] + camera[:, None, 1:3]
        return {
            "pose_6d": pose_6d, "pose_axis_angle": pose_aa, "rot_mats": rot_mats,
            "betas": betas, "camera": camera, "vertices_rel": vertices_rel,
            "joints_rel": joints_rel, "keypoints_2d": uv,
            "uvd": torch.cat([uv, s * joints_rel[..., 2:3]], dim=-1),
        }  # fmt: skip

    def lift(self, keypoints_px: Tensor, image_size: tuple[int, int]) -> Tensor:
        """The lifter's single-view parameters (P, 96 + S + 3) from 2D keypoints (P, 21, 2),
        crop pixels (needs ``keypoint_features``; :meth:`decode_params` poses them)."""
        if self.lifter is None:
            raise ValueError("lift needs the lifter: HaMuCoConfig(keypoint_features=True)")
        raw = self.lifter(normalized_keypoints(keypoints_px, image_size))
        n = self.config.pose_pca
        if not n:
            return raw
        fingers = self.mano.pca_to_axis_angle(raw[:, :n]).reshape(-1, NUM_MANO_JOINTS - 1, 3)
        fingers_6d = matrix_to_rot6d(axis_angle_to_matrix(fingers)).flatten(1)
        return torch.cat([raw[:, n:n + 6], fingers_6d, raw[:, n + 6:]], dim=1)

    def _pca_correction(self, base: Tensor, delta: Tensor) -> Tensor:
        """A 6D-space correction (P, 96 + k) of ``base`` (P, 96 + k: pose, then k other
        parameters) from ``delta`` (P, n + 6 + k): its n PCA coefficients are added to
        ``base``'s finger axis-angles, its global 6D and other parameters as they are."""
        n, F = self.config.pose_pca, NUM_MANO_JOINTS - 1
        base_fingers = base[:, 6:NUM_MANO_JOINTS * 6].reshape(-1, F, 6)
        aa = matrix_to_axis_angle(rot6d_to_matrix(base_fingers))
        aa = aa + self.mano.pca_to_axis_angle(delta[:, :n]).reshape(-1, F, 3)
        fingers = matrix_to_rot6d(axis_angle_to_matrix(aa)).flatten(1)
        return torch.cat([delta[:, n:n + 6], fingers - base_fingers.flatten(1), delta[:, n + 6:]],
                         dim=1)

    def decode_params(self, raw: Tensor) -> dict[str, Tensor]:
        """:meth:`decode` of a raw single-view parameter vector (P, 96 + S + 3)."""
        return self.decode(*self._split_params(raw))

    def _split_params(self, raw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(P, 96 + S + 3) head output -> pose_6d (P, 16, 6), betas (P, S), camera (P, 3)."""
        n = NUM_MANO_JOINTS * 6
        pose = raw[:, :n].reshape(-1, NUM_MANO_JOINTS, 6)
        betas = raw[:, n : n + self.num_betas]
        return pose, betas, self._camera(raw[:, -3:])

    @staticmethod
    def _camera(raw: Tensor) -> Tensor:
        """Raw (P, 3) -> (s, tx, ty) with s = softplus(raw_s) > 0."""
        return torch.cat([nn.functional.softplus(raw[:, :1]), raw[:, 1:]], dim=1)

    def _tokens(self, levels: list[Tensor], single: dict[str, Tensor]) -> Tensor:
        """Per-joint tokens (P, 21, D) of the present views."""
        g = self.config.global_grid
        glob = self.global_tokens(nn.functional.adaptive_avg_pool2d(levels[3], g)).flatten(2)
        aligned = sample_joint_features(levels[:3], single["keypoints_2d"])  # detached joints
        rot6d = single["pose_6d"][:, self.keypoint_rotation_joint]  # (P, 21, 6)
        geometry = torch.cat([single["uvd"], rot6d], dim=-1)
        if self.config.detach_single_view:
            geometry = geometry.detach()
        tokens = torch.cat([glob, aligned, self.pose_embed(geometry)], dim=-1)
        return self.token_proj(tokens) + self.joint_embed

    def _visible(self, view_mask: Tensor) -> Tensor:
        """Random view masking (training only): hide each present view with probability
        ``view_mask_prob`` while keeping at least one visible view per sample."""
        p = self.config.view_mask_prob
        if not self.training or p == 0.0:
            return view_mask
        u = torch.rand(view_mask.shape, device=view_mask.device)
        visible = view_mask & (u >= p)
        # where everything was hidden, keep the present view with the largest draw
        keep = torch.where(view_mask, u, torch.full_like(u, -1.0)).argmax(dim=1)
        rescue = nn.functional.one_hot(keep, view_mask.shape[1]).bool()
        none_left = ~visible.any(dim=1, keepdim=True)
        return visible | (rescue & none_left)

    def _check_inputs(self, images: Tensor, view_mask: Tensor | None) -> Tensor:
        if not isinstance(images, Tensor) or images.ndim != 5 or images.shape[2] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"images must be (B, N, 3, H, W) RGB in [0, 1], got {shape}")
        if not images.is_floating_point():
            raise ValueError(f"images must be a floating tensor, got {images.dtype}")
        B, N = images.shape[:2]
        if B < 1 or N < 1:
            raise ValueError(f"images must have B >= 1 samples and N >= 1 views, got {B}, {N}")
        if view_mask is None:
            return torch.ones(B, N, dtype=torch.bool, device=images.device)
        if tuple(view_mask.shape) != (B, N) or view_mask.dtype != torch.bool:
            raise ValueError(
                f"view_mask must be a bool tensor of shape (B, N) = ({B}, {N}), got "
                f"{view_mask.dtype} {tuple(view_mask.shape)}"
            )
        if not bool(view_mask.any(dim=1).all()):
            raise ValueError("view_mask must keep at least one view of every sample")
        return view_mask.to(images.device)

    def forward(self, images: Tensor, view_mask: Tensor | None = None) -> HaMuCoOutput:
        """Predict the hand in every view, alone and with the other views' help.

        Args:
            images: (B, N, 3, H, W) RGB in [0, 1], N >= 1 views per sample in any order.
            view_mask: optional (B, N) bool, False for missing views (at least one True per
                sample). None = all views present.

        Returns:
            :class:`HaMuCoOutput`.
        """
        view_mask = self._check_inputs(images, view_mask)
        B, N = view_mask.shape
        visible = self._visible(view_mask)
        present = view_mask.reshape(-1).nonzero().squeeze(1)  # (P,) flat indices of B x N

        crops = images.flatten(0, 1).index_select(0, present)
        feats = self.encoder(crops)
        heatmaps = None
        if self.keypoint_head is not None and self.lifter is not None:
            size = tuple(crops.shape[-2:])
            heatmaps = self.keypoint_head(feats.levels, size)
        g = self.config.regressor_gradient
        feats = FeaturePyramid([scale_gradient(x, g) for x in feats.levels],
                               scale_gradient(feats.pooled, g))
        raw = self.single_head(feats.pooled)  # (P, 96 + S + 3)
        if heatmaps is not None:
            lifted = self.lift(heatmaps.keypoints_2d.detach(), tuple(crops.shape[-2:]))
            lifted = lifted if self.config.train_lifter_through_image else lifted.detach()
            raw = lifted + (self._pca_correction(lifted, raw) if self.config.pose_pca else raw)
        single = self.decode(*self._split_params(raw))
        if heatmaps is not None:
            single["heatmap_keypoints_2d"] = heatmaps.keypoints_2d
            single["heatmap_logits"] = heatmaps.logits

        tokens = self._tokens(feats.levels, single)  # (P, 21, D)
        grid = tokens.new_zeros(B * N, *tokens.shape[1:]).index_copy(0, present, tokens)
        grid = grid.view(B, N, *tokens.shape[1:])
        for layer in self.layers:
            grid = layer(grid, visible)
        tokens = self.cross_norm(grid.flatten(0, 1).index_select(0, present))
        delta = self.cross_head(self.cross_reduce(tokens).flatten(1))  # (P, 99)
        n = NUM_MANO_JOINTS * 6
        if self.config.cross_view_residual:  # start from the single-view pose and camera
            base = torch.cat([raw[:, :n], raw[:, -3:]], dim=1)
            base = base.detach() if self.config.detach_single_view else base
            delta = base + (self._pca_correction(base, delta) if self.config.pose_pca
                            else delta)
        pose = delta[:, :n].reshape(-1, NUM_MANO_JOINTS, 6)
        cross = self.decode(pose, single["betas"].detach(), self._camera(delta[:, n:]))

        def unpack(values: dict[str, Tensor], cls: type[SingleViewOutput]) -> SingleViewOutput:
            out = {}
            for name, packed in values.items():
                full = packed.new_full((B * N, *packed.shape[1:]), math.nan)
                out[name] = full.index_copy(0, present, packed).view(B, N, *packed.shape[1:])
            return cls(**out)

        return HaMuCoOutput(
            single_view=unpack(single, SingleViewOutput),
            cross_view=unpack(cross, CrossViewOutput),  # type: ignore[arg-type]
            view_mask=view_mask,
            visible_mask=visible,
        )
