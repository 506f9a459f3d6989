"""S2HAND's model-based single-view network (Chen et al., CVPR 2021), on current PyTorch.

An image encoder feeds three heads:

- **hand regressor** (pooled feature -> MLP): MANO pose as PCA coefficients (mean pose
  added), shape betas (or the mean shape), global rotation (the 6D representation by
  default, axis-angle as in the original with ``rotation="axis_angle"``), scale and
  camera-space translation. With ``keypoint_features`` (the suite's choice) a keypoint head
  on the encoder predicts 2D keypoint heatmaps, a lifter MLP turns those keypoints into the
  hand parameters and the pooled feature only adds a correction, starting from zero
  (:mod:`hand_lib.models.keypoint_head`; a deviation from the paper, which regresses from
  the pooled feature alone). The hand is posed by :class:`hand_lib.mano.ManoLayer`, made
  root-relative at the middle MCP (keypoint 9), scaled by ``|scale|`` and translated:
  ``X_cam = transl + |scale| * (X_mano - X_mano[9])``. ``transl`` is thus the camera-space
  position of the middle MCP in metres (initialised at 0.65 m in front of the camera, the
  scale at 0.95, as in the original). The network does not see ``K``, and a crop's focal
  length varies with the hand's size in the full image, so the depth it regresses is
  focal-normalised: ``transl_z = raw_z * fx / (reference_focal * W)``. The projection of the
  hand then depends on the image content only; the metric depth follows from ``K``.
- **texture and light estimator** on a low-level feature map: per-face RGB albedo in [0, 1]
  and S2HAND's 11 lighting values (see :mod:`hand_lib.render.shade`).
- optionally the **2D keypoint hourglass** (:class:`StackedHourglass`), trained on pseudo
  labels in the keypoint stage and tied to the projected MANO joints in the finetune stage.

Projection is perspective with the crop's intrinsics ``K``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hand_lib.geometry import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    project_points,
    rot6d_to_matrix,
)
from hand_lib.mano import ManoLayer
from hand_lib.models.encoders import ImageEncoder
from hand_lib.models.hourglass import HourglassOutput, StackedHourglass
from hand_lib.models.keypoint_head import (
    KeypointHead,
    KeypointHeatmaps,
    KeypointLifter,
    normalized_keypoints,
)

ROOT = 9  # middle MCP: the hand's anchor for scale and translation
NUM_LIGHTING = 11
ROTATIONS = ("rot6d", "axis_angle")


@dataclass(frozen=True)
class S2HandConfig:
    """Network options (the originals' defaults where they exist).

    Attributes:
        encoder: torchvision backbone (the original uses efficientnet_b3).
        encoder_weights: optional local ImageNet state dict; empty = random init.
        encoder_width: channel multiplier of a ResNet-18/34 encoder (1 = torchvision's).
        rotation: the global rotation's representation, "axis_angle" (the original's,
            regressed from 0) or "rot6d" (continuous, starting upright; the suite's choice).
        keypoint_features: build the keypoint head and the lifter (see the module docstring;
            the suite's choice, not in the paper).
        keypoint_width: channels of the keypoint head.
        detach_keypoints: the lifter reads the keypoints detached, so the 3D terms do not
            move the heatmaps (which learn from the 2D terms only).
        regressor_gradient: scale of the gradient the hand regressor sends back into the
            encoder through the pooled feature (1: end to end, as in the paper; 0: the
            encoder learns from the keypoint head's 2D terms only and the regressor reads
            its features).
        lifter_hidden: width of the lifter MLP.
        train_lifter_through_image: the image path's terms also train the lifter (on the
            keypoint head's output); False leaves it to the tasks' lifter terms, which feed it
            the labels themselves.
        num_pca: MANO pose PCA coefficients regressed (30).
        use_mean_shape: force betas = 0 (the released configs do).
        hidden: MLP width of the hand regressor.
        init_scale, init_depth_m: initial scale and z translation (0.95, 0.65 m).
        reference_focal: the crop focal length, in image widths, at which the regressed depth
            is taken as metres (see the module docstring; 2.5 suits 224 px hand crops).
        texture: build the texture and light estimator.
        hourglass: build the 2D keypoint hourglass.
        hourglass_width, hourglass_stacks, heatmap_size: hourglass size (256, 2, 64).
        mano_path: MANO file or folder; empty = the open hand model.
    """

    encoder: str = "efficientnet_b3"
    encoder_weights: str = ""
    encoder_width: float = 1.0
    rotation: str = "axis_angle"
    keypoint_features: bool = False
    keypoint_width: int = 64
    detach_keypoints: bool = True
    regressor_gradient: float = 1.0
    lifter_hidden: int = 512
    train_lifter_through_image: bool = True
    num_pca: int = 30
    use_mean_shape: bool = True
    hidden: int = 512
    init_scale: float = 0.95
    init_depth_m: float = 0.65
    reference_focal: float = 2.5
    texture: bool = True
    hourglass: bool = True
    hourglass_width: int = 256
    hourglass_stacks: int = 2
    heatmap_size: int = 64
    mano_path: str = ""

    def __post_init__(self) -> None:
        if self.rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, got {self.rotation!r}")


@dataclass
class S2HandOutput:
    """Everything one forward pass predicts. Positions are camera-space metres, 2D in the
    input image's pixels.

    Attributes:
        pose_pca: (B, num_pca) PCA coefficients (mean added inside MANO).
        global_orient: (B, 3) axis-angle root rotation, camera frame.
        global_rotmat: (B, 3, 3) the same rotation as a matrix.
        betas: (B, 10) shape (zeros with ``use_mean_shape``).
        scale: (B,) positive hand scale; transl: (B, 3) camera-space middle-MCP position, m.
        vertices: (B, V, 3) mesh, camera space, metres.
        joints: (B, 21, 3) keypoints in FreiHAND order, camera space, metres.
        joints_2d: (B, 21, 2) ``joints`` projected with K, pixels.
        face_colors: (B, F, 3) albedo in [0, 1], or None without the texture head.
        lighting: (B, 11) S2HAND lighting values, or None without the texture head.
        hourglass: the hourglass output, or None.
        rot_mats: (B, 16, 3, 3) MANO local rotations (for joint-angle priors).
        pose_axis_angle: (B, 16, 3) the same as axis-angle, mean pose included.
        keypoints: the keypoint head's heatmaps and 2D keypoints (input pixels), or None.
    """

    pose_pca: Tensor
    global_orient: Tensor
    betas: Tensor
    scale: Tensor
    transl: Tensor
    vertices: Tensor
    joints: Tensor
    joints_2d: Tensor
    face_colors: Tensor | None
    lighting: Tensor | None
    hourglass: HourglassOutput | None
    rot_mats: Tensor
    pose_axis_angle: Tensor
    global_rotmat: Tensor | None = None
    keypoints: KeypointHeatmaps | None = None


class TextureLightHead(nn.Module):
    """Per-face albedo and lighting from a low-level feature map (S2HAND's estimator).

    Albedo: ``0.5 * (tanh(.) + 1)`` in [0, 1] per face, a residual around a skin tone so
    that training starts from a plausible colour. Lighting: ambient and directional
    intensities in (0, 1) (sigmoid), colours in (0, 1) (sigmoid), direction initialised
    towards the camera (``(0, 0, -1)``) plus a learned offset.
    """

    def __init__(self, channels: int, num_faces: int, hidden: int = 256) -> None:
        super().__init__()
        self.num_faces = num_faces
        self.conv = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, stride=2, padding=1), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True), nn.Conv2d(hidden, hidden, 3, stride=2, padding=1),
            nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.texture = nn.Linear(hidden, num_faces * 3)
        self.light = nn.Linear(hidden, NUM_LIGHTING)
        for layer in (self.texture, self.light):
            nn.init.zeros_(layer.bias)
            nn.init.normal_(layer.weight, std=1e-3)
        skin = torch.tensor([0.80, 0.60, 0.50])
        self.register_buffer("skin_logit", torch.atanh(2 * skin - 1), persistent=False)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """Args: features (B, C, h, w). Returns (face_colors (B, F, 3), lighting (B, 11))."""
        z = self.conv(features).mean(dim=(2, 3))
        tex = self.texture(z).view(-1, self.num_faces, 3) + self.skin_logit
        face_colors = 0.5 * (torch.tanh(tex) + 1.0)
        raw = self.light(z)
        intensities = torch.sigmoid(raw[:, 0:2] + raw.new_tensor([0.5, 0.0]))
        colors = torch.sigmoid(raw[:, 2:8] + 2.0)
        direction = raw[:, 8:11] + raw.new_tensor([0.0, 0.0, -1.0])
        return face_colors, torch.cat([intensities, colors, direction], dim=1)


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, factor: float) -> Tensor:  # type: ignore[override]
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad * ctx.factor, None


def scale_gradient(x: Tensor, factor: float) -> Tensor:
    """``x`` in the forward pass; its gradient multiplied by ``factor`` in the backward pass
    (0: detached, 1: unchanged)."""
    if factor == 1.0:
        return x
    if factor == 0.0:
        return x.detach()
    return _ScaleGradient.apply(x, factor)


def upright_rotation(mano: ManoLayer) -> Tensor:
    """(3, 3) the camera-frame rotation that shows the model's rest hand upright: fingers
    (wrist -> middle MCP) along -y (up on screen), thumb side along +x; for a right hand the
    palm then faces the camera. What an upright crop (``CropConfig(upright=True)``) shows
    on average, and the 6D head's starting point."""
    with torch.no_grad():
        k = mano(torch.zeros(1, 16, 3, dtype=mano.v_template.dtype)).keypoints[0].double()
    forward = k[9] - k[0]
    forward = forward / forward.norm()
    radial = k[5] - k[17]
    radial = radial - forward * (radial @ forward)
    radial = radial / radial.norm()
    model = torch.stack([forward, radial, torch.linalg.cross(forward, radial)], dim=1)
    target = torch.tensor([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
                          dtype=torch.float64)  # columns: (0,-1,0), (1,0,0), (0,0,1)
    return (target @ model.T).float()


class S2HandNet(nn.Module):
    """S2HAND: encoder, hand regressor, texture/light head, optional hourglass.

    Args:
        config: :class:`S2HandConfig`.
        mano: a ready :class:`ManoLayer` (shared between models); built from
            ``config.mano_path`` when None.
    """

    def __init__(self, config: S2HandConfig | None = None, mano: ManoLayer | None = None):
        super().__init__()
        self.config = config = config or S2HandConfig()
        self.mano = mano if mano is not None else ManoLayer(config.mano_path or None)
        if config.num_pca > self.mano.num_pca_max:
            raise ValueError(f"num_pca must be <= {self.mano.num_pca_max}, got {config.num_pca}")
        self.encoder = ImageEncoder(config.encoder, config.encoder_weights or None,
                                    width=config.encoder_width)
        c = self.encoder.channels
        self.num_betas = self.mano.num_betas
        self.rotation_size = 6 if config.rotation == "rot6d" else 3
        out = config.num_pca + self.rotation_size + self.num_betas + 1 + 3
        self.regressor = nn.Sequential(
            nn.Linear(c[-1], config.hidden), nn.ReLU(inplace=True),
            nn.Linear(config.hidden, config.hidden), nn.ReLU(inplace=True),
            nn.Linear(config.hidden, out),
        )  # fmt: skip
        self.keypoint_head = self.lifter = None
        if config.keypoint_features:
            # the lifter carries the hand; the pooled feature only corrects it (from zero)
            self.keypoint_head = KeypointHead(c, width=config.keypoint_width)
            self.lifter = KeypointLifter(out, hidden=config.lifter_hidden, extra=1)
            nn.init.zeros_(self.regressor[-1].weight)
            nn.init.zeros_(self.regressor[-1].bias)
            self._init_hand(self.lifter.mlp[-1])
        else:
            self._init_hand(self.regressor[-1])
        self.texture_head = (
            TextureLightHead(c[1], self.mano.faces.shape[0]) if config.texture else None
        )
        self.hourglass = (
            StackedHourglass(num_stacks=config.hourglass_stacks, width=config.hourglass_width,
                             heatmap_size=config.heatmap_size)  # fmt: skip
            if config.hourglass
            else None
        )

    def _init_hand(self, last: nn.Linear) -> None:
        """The output layer that produces the hand starts at a plausible hand: small weights,
        scale and depth from the paper, the global rotation upright (6D) or zero."""
        config, n = self.config, self.config.num_pca
        nn.init.normal_(last.weight, std=1e-3)
        nn.init.zeros_(last.bias)
        with torch.no_grad():
            last.bias[-4] = config.init_scale
            last.bias[-1] = config.init_depth_m
            if config.rotation == "rot6d":  # the identity is not a valid zero: start upright
                last.bias[n : n + 6] = matrix_to_rot6d(upright_rotation(self.mano))

    def forward(
        self, images: Tensor, K: Tensor, *, run_hourglass: bool = True, run_texture: bool = True
    ) -> S2HandOutput:
        """Predict the hand in one image.

        Args:
            images: (B, 3, H, W) RGB in [0, 1], the hand crop.
            K: (B, 3, 3) intrinsics of the crop, pixels.
            run_hourglass, run_texture: skip those heads (e.g. in the shape stage).
        """
        B = images.shape[0]
        if K.shape != (B, 3, 3):
            raise ValueError(f"K must be (B, 3, 3) = ({B}, 3, 3), got {tuple(K.shape)}")
        size = tuple(images.shape[-2:])
        feats = self.encoder(images)
        params = self.regressor(scale_gradient(feats.pooled, self.config.regressor_gradient))
        keypoints = None
        if self.keypoint_head is not None and self.lifter is not None:
            keypoints = self.keypoint_head(feats.levels, size)
            kp = keypoints.keypoints_2d
            lifted = self.lift(kp.detach() if self.config.detach_keypoints else kp, K, size)
            if not self.config.train_lifter_through_image:
                lifted = lifted.detach()
            params = params + lifted
        out = self.decode(params, K, size)
        if self.texture_head is not None and run_texture:
            out.face_colors, out.lighting = self.texture_head(feats.levels[1])
        if self.hourglass is not None and run_hourglass:
            out.hourglass = self.hourglass(images)
        out.keypoints = keypoints
        return out

    def lift(self, keypoints_px: Tensor, K: Tensor, image_size: tuple[int, int]) -> Tensor:
        """The lifter's hand parameters (B, P) from 2D keypoints (B, 21, 2), crop pixels, and
        the crop's focal length (needs ``keypoint_features``; :meth:`decode` poses them)."""
        if self.lifter is None:
            raise ValueError("lift needs the lifter: build the network with "
                             "S2HandConfig(keypoint_features=True)")
        focal = K[:, 0, 0:1] / image_size[1]
        return self.lifter(torch.cat([normalized_keypoints(keypoints_px, image_size), focal],
                                     dim=1))

    def decode(self, params: Tensor, K: Tensor, image_size: tuple[int, int]) -> S2HandOutput:
        """The hand of a parameter vector (B, P): pose PCA, global rotation, betas, scale,
        translation (see the module docstring). Texture, hourglass and keypoint fields are
        None."""
        n, r = self.config.num_pca, self.rotation_size
        pose_pca = params[:, :n]
        if r == 6:
            rotmat = rot6d_to_matrix(params[:, n : n + 6])
            global_orient = matrix_to_axis_angle(rotmat)
        else:
            global_orient = params[:, n : n + 3]
            rotmat = axis_angle_to_matrix(global_orient)
        betas = params[:, n + r : n + r + self.num_betas]
        if self.config.use_mean_shape:
            betas = torch.zeros_like(betas)
        scale = params[:, -4].abs()
        depth_factor = K[:, 0, 0] / (self.config.reference_focal * image_size[1])
        transl = torch.cat([params[:, -3:-1], params[:, -1:] * depth_factor[:, None]], dim=1)
        vertices, joints, rot_mats = self.pose_hand(pose_pca, rotmat, betas, scale, transl)
        return S2HandOutput(
            pose_pca=pose_pca, global_orient=global_orient, betas=betas, scale=scale,
            transl=transl, vertices=vertices, joints=joints,
            joints_2d=project_points(joints, K), face_colors=None, lighting=None,
            hourglass=None, rot_mats=rot_mats, pose_axis_angle=self._axis_angle(pose_pca,
                                                                             global_orient),
            global_rotmat=rotmat,
        )  # fmt: skip

    def _axis_angle(self, pose_pca: Tensor, global_orient: Tensor) -> Tensor:
        fingers = self.mano.pca_to_axis_angle(pose_pca) + self.mano.hands_mean
        return torch.cat([global_orient, fingers], dim=1).view(-1, 16, 3)

    def pose_hand(
        self, pose_pca: Tensor, global_orient: Tensor, betas: Tensor, scale: Tensor,
        transl: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        """Camera-space mesh and joints from hand parameters (see the module docstring).

        Args:
            global_orient: (B, 3) axis-angle or (B, 3, 3) rotation matrices.

        Returns:
            ``(vertices (B, V, 3), joints (B, 21, 3), rot_mats (B, 16, 3, 3))``, metres.
        """
        if global_orient.ndim == 3:
            fingers = self.mano.pca_to_axis_angle(pose_pca) + self.mano.hands_mean
            rots = torch.cat([global_orient.unsqueeze(1),
                              axis_angle_to_matrix(fingers.view(-1, 15, 3))], dim=1)
            out = self.mano(rots, betas, pose_type="rotmat")
        else:
            out = self.mano(pose_pca, betas, pose_type="pca", global_orient=global_orient)
        root = out.keypoints[:, ROOT : ROOT + 1]
        s = scale.view(-1, 1, 1)
        offset = transl.unsqueeze(1)
        vertices = offset + s * (out.vertices - root)
        joints = offset + s * (out.keypoints - root)
        return vertices, joints, out.rot_mats


def fit_to_keypoints(
    net: S2HandNet,
    init: S2HandOutput,
    keypoints_2d: Tensor,
    K: Tensor,
    confidence: Tensor | None = None,
    steps: int = 150,
    lr: float = 1e-2,
    prior_weight: float = 1e-3,
) -> S2HandOutput:
    """Test-time MANO fitting: refine pose, rotation, scale and translation so the projected
    joints match 2D keypoints (e.g. the hourglass's), starting from a network prediction.

    Minimises ``sum_j c_j * |proj(X_j) - k_j|_1 / sum c + prior_weight * |pca|^2`` with Adam
    (``steps`` iterations, S2HAND uses ~150). The network is not changed.

    Args:
        net: the model whose MANO layer poses the hand.
        init: its prediction (only the hand parameters are used).
        keypoints_2d: (B, 21, 2) target pixels; confidence: (B, 21) weights or None.
        K: (B, 3, 3) crop intrinsics.

    Returns:
        A new :class:`S2HandOutput` with the fitted hand (texture and hourglass carried over).
    """
    if keypoints_2d.shape != init.joints_2d.shape:
        raise ValueError(
            f"keypoints_2d must be {tuple(init.joints_2d.shape)}, got {tuple(keypoints_2d.shape)}"
        )
    conf = torch.ones_like(keypoints_2d[..., 0]) if confidence is None else confidence
    params = [p.detach().clone().requires_grad_() for p in
              (init.pose_pca, init.global_orient, init.scale, init.transl)]  # fmt: skip
    betas = init.betas.detach()
    opt = torch.optim.Adam(params, lr=lr)
    target = keypoints_2d.detach()
    with torch.enable_grad():
        for _ in range(steps):
            pca, rot, scale, transl = params
            _, joints, _ = net.pose_hand(pca, rot, betas, scale.abs(), transl)
            err = (project_points(joints, K) - target).abs().sum(-1)
            loss = (conf * err).sum() / conf.sum().clamp_min(1e-6) + prior_weight * pca.square(
            ).sum(-1).mean()  # fmt: skip
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        pca, rot, scale, transl = (p.detach() for p in params)
        vertices, joints, rot_mats = net.pose_hand(pca, rot, betas, scale.abs(), transl)
        return S2HandOutput(
            pose_pca=pca, global_orient=rot, betas=betas, scale=scale.abs(), transl=transl,
            vertices=vertices, joints=joints, joints_2d=project_points(joints, K),
            face_colors=init.face_colors, lighting=init.lighting, hourglass=init.hourglass,
            rot_mats=rot_mats, pose_axis_angle=net._axis_angle(pca, rot),
        )  # fmt: skip
