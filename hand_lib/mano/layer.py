"""``ManoLayer``: a fast, batched MANO forward pass returning a named output.

Conventions (the same as ``smplx.MANO``, so results agree to float rounding):
``v_shaped = v_template + shapedirs . betas``; joints ``J = J_regressor v_shaped``;
``v_posed = v_shaped + posedirs . (R_1..R_15 - I)``; each joint rotates about its rest
position; vertices are blended by ``weights``; ``transl`` is added last. With
``flat_hand_mean=False`` (MANO's and HaMuCo's default) ``hands_mean`` is added to axis-angle
and PCA finger poses, exactly as smplx does.

Speed comes from precomputing everything that does not depend on the input
(``J_regressor @ shapedirs``, the template joints), both blend shapes in one matrix product,
evaluating the kinematic tree level by level, skinning coordinate-major with the batch
innermost (on the CPU in one fused pass, :mod:`hand_lib.mano.fused`), and skinning the five
fingertips on their own instead of indexing them out of the mesh (which would cost autograd
a whole-mesh zero gradient). ``forward`` never reads tensor values on the host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from hand_lib.geometry.rotations import axis_angle_to_matrix, rot6d_to_matrix
from hand_lib.mano.io import ManoModelData, Side, load_model
from hand_lib.mano.joints import MANO_TO_FREIHAND
from hand_lib.mano.lbs import (
    KinematicTree,
    linear_blend_skinning,
    pose_feature,
    skinning_transforms,
)

PoseType = Literal["axis_angle", "pca", "rot6d", "rotmat"]


@dataclass
class ManoOutput:
    """Result of :class:`ManoLayer`. Positions are metres, in the frame of the input pose
    (camera or world, whatever ``global_orient``/``transl`` express).

    Attributes:
        vertices: (B, V, 3) mesh vertices, metres.
        joints: (B, 16, 3) MANO joints in MANO order, metres.
        keypoints: (B, 21, 3) keypoints in FreiHAND order (tips are mesh vertices), metres.
        joint_transforms: (B, 16, 4, 4) world frame of each joint: rotation accumulated
            along the chain, translation = the posed joint position (``transl`` included).
        rot_mats: (B, 16, 3, 3) local joint rotations actually applied (mean pose included).
    """

    vertices: Tensor
    joints: Tensor
    keypoints: Tensor
    joint_transforms: Tensor
    rot_mats: Tensor


class ManoLayer(nn.Module):
    """Differentiable MANO (or any MANO-format model) forward pass.

    Args:
        model: a :class:`ManoModelData`, a path to ``MANO_RIGHT.pkl``/``.npz`` or to a folder
            holding the MANO files, or ``None`` for the open hand model shipped with hand_lib.
        side: "right" or "left" (used when ``model`` is a folder or ``None``).
        flat_hand_mean: if False, ``hands_mean`` is added to axis-angle and PCA poses.
        dtype: floating dtype of the buffers (float32 or float64); ``.to()`` changes it later.
    """

    def __init__(
        self,
        model: ManoModelData | str | os.PathLike[str] | None = None,
        *,
        side: Side = "right",
        flat_hand_mean: bool = False,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if not isinstance(model, ManoModelData):
            model = load_model(model, side=side)
        self.model_path = model.path
        self.side = model.side
        self.flat_hand_mean = flat_hand_mean
        self.num_vertices = model.num_vertices
        self.num_joints = model.num_joints
        self.num_betas = int(model.shapedirs.shape[2])
        self.num_pca_max = int(model.hands_components.shape[0])

        # Every buffer is non-persistent: the model file is licensed (MANO), so it must never
        # travel inside a checkpoint or a shared state dict; the layer is rebuilt from the file.
        def buf(name: str, array: np.ndarray) -> None:
            tensor = torch.as_tensor(np.ascontiguousarray(array), dtype=dtype)
            self.register_buffer(name, tensor, persistent=False)

        V, J = model.num_vertices, model.num_joints
        buf("v_template", model.v_template)  # (V, 3)
        # Coordinate-major copies for the skinning layout (3, V, B). Pose correctives and
        # shape directions share one matrix, [posedirs | shapedirs], so that both blend
        # shapes cost one matrix product forward and one backward.
        buf("v_template_cm", model.v_template.T.reshape(3 * V, 1))  # (3V, 1)
        posedirs_cm = model.posedirs.transpose(1, 0, 2).reshape(3 * V, -1)  # (3V, 9(J-1))
        shapedirs_cm = model.shapedirs.transpose(1, 0, 2).reshape(3 * V, -1)  # (3V, S)
        blend_dirs_cm = np.concatenate([posedirs_cm, shapedirs_cm], axis=1)
        buf("blend_dirs_cm", blend_dirs_cm)
        # The fingertip keypoints are skinned on their own (5 vertices): indexing them out of
        # the (B, V, 3) output would make autograd build a zero gradient of the whole mesh
        # and add it to the vertices' gradient, a full extra pass at large batch.
        tips = np.asarray(model.tip_vertex_ids)
        tip_rows = (np.arange(3)[:, None] * V + tips[None, :]).reshape(-1)  # coordinate-major
        buf("tip_template_cm", model.v_template.T.reshape(3 * V, 1)[tip_rows])  # (15, 1)
        buf("tip_blend_dirs_cm", blend_dirs_cm[tip_rows])  # (15, 9(J-1) + S)
        buf("tip_weights", model.weights[tips])  # (5, J)
        buf("J_regressor", model.J_regressor)  # (J, V)
        buf("template_joints", model.J_regressor @ model.v_template)  # (J, 3)
        shape_joints = np.einsum("jv,vcs->sjc", model.J_regressor, model.shapedirs)
        buf("joint_shapedirs", shape_joints.reshape(-1, J * 3))  # (S, J*3)
        buf("weights", model.weights)  # (V, J)
        buf("hands_components", model.hands_components)  # (C, 3*(J-1))
        mean = np.zeros_like(model.hands_mean) if flat_hand_mean else model.hands_mean
        buf("hands_mean", mean)  # (3*(J-1),)
        self.register_buffer("faces", torch.as_tensor(model.faces, dtype=torch.long), False)
        self.register_buffer("parents", torch.as_tensor(model.parents, dtype=torch.long), False)
        self.register_buffer("tip_vertex_ids", torch.as_tensor(model.tip_vertex_ids), False)
        self.register_buffer("keypoint_index", torch.as_tensor(MANO_TO_FREIHAND), False)
        self.kinematics = KinematicTree(model.parents.tolist())

    # ------------------------------------------------------------------------------
    def pca_to_axis_angle(self, coeffs: Tensor) -> Tensor:
        """(B, n) PCA coefficients (any n <= number of components) -> (B, 45) finger pose,
        axis-angle, *without* the mean (added in :meth:`forward`)."""
        if coeffs.ndim != 2 or coeffs.shape[1] > self.num_pca_max:
            raise ValueError(
                f"PCA pose must be (B, n) with n <= {self.num_pca_max}, got {tuple(coeffs.shape)}"
            )
        return coeffs @ self.hands_components[: coeffs.shape[1]]

    def local_rotations(
        self, pose: Tensor, pose_type: PoseType = "axis_angle", global_orient: Tensor | None = None
    ) -> Tensor:
        """Convert any supported pose input to (B, J, 3, 3) local rotations (mean included).

        Shapes: ``axis_angle`` (B, J, 3) or (B, 3J); ``pca`` (B, n) finger coefficients with
        ``global_orient`` (B, 3) axis-angle (zeros when None); ``rot6d`` (B, J, 6) or
        (B, 6J); ``rotmat`` (B, J, 3, 3). 6D and matrix poses are taken as the full local
        rotations: ``hands_mean`` applies to axis-angle and PCA only.
        """
        J = self.num_joints
        if pose_type == "pca":
            finger = self.pca_to_axis_angle(pose)
            if global_orient is None:
                global_orient = finger.new_zeros(finger.shape[0], 3)
            if global_orient.shape != (finger.shape[0], 3):
                raise ValueError(
                    f"global_orient must be (B, 3) = ({finger.shape[0]}, 3), got "
                    f"{tuple(global_orient.shape)}"
                )
            aa = torch.cat([global_orient, finger + self.hands_mean], dim=1)
            return axis_angle_to_matrix(aa.view(-1, J, 3))
        if pose_type == "axis_angle":
            if pose.ndim == 2 and pose.shape[1] == 3 * J:
                pose = pose.view(-1, J, 3)
            if pose.ndim != 3 or pose.shape[1:] != (J, 3):
                raise ValueError(
                    f"axis-angle pose must be (B, {J}, 3) or (B, {3 * J}), got {tuple(pose.shape)}"
                )
            mean = torch.cat([self.hands_mean.new_zeros(3), self.hands_mean]).view(J, 3)
            return axis_angle_to_matrix(pose + mean)
        if pose_type == "rot6d":
            if pose.ndim == 2 and pose.shape[1] == 6 * J:
                pose = pose.view(-1, J, 6)
            if pose.ndim != 3 or pose.shape[1:] != (J, 6):
                raise ValueError(
                    f"6D pose must be (B, {J}, 6) or (B, {6 * J}), got {tuple(pose.shape)}"
                )
            return rot6d_to_matrix(pose)
        if pose_type == "rotmat":
            if pose.ndim != 4 or pose.shape[1:] != (J, 3, 3):
                raise ValueError(
                    f"rotation-matrix pose must be (B, {J}, 3, 3), got {tuple(pose.shape)}"
                )
            return pose
        raise ValueError(f"pose_type must be axis_angle, pca, rot6d or rotmat, got {pose_type!r}")

    def forward(
        self,
        pose: Tensor,
        betas: Tensor | None = None,
        transl: Tensor | None = None,
        *,
        pose_type: PoseType = "axis_angle",
        global_orient: Tensor | None = None,
    ) -> ManoOutput:
        """Pose and shape the hand.

        Args:
            pose: see :meth:`local_rotations` for the shapes of each ``pose_type``.
            betas: (B, S') shape coefficients, S' <= the model's S (10 for MANO); zeros if None.
            transl: (B, 3) translation, metres, added to every output point; none if None.
            pose_type: "axis_angle" (default), "pca", "rot6d" or "rotmat".
            global_orient: (B, 3) axis-angle root rotation, only with ``pose_type="pca"``.

        Returns:
            :class:`ManoOutput` (metres).
        """
        rot_mats = self.local_rotations(pose, pose_type, global_orient)
        B = rot_mats.shape[0]
        V, J = self.num_vertices, self.num_joints
        # Blend shapes are built coordinate-major, (3V, B), the layout skinning wants:
        # v_template + [posedirs | shapedirs] @ [pose feature | betas]^T in one product.
        features = pose_feature(rot_mats)
        joints_rest = self.template_joints.expand(B, J, 3)
        if betas is not None:
            if betas.ndim != 2 or betas.shape[0] != B or betas.shape[1] > self.num_betas:
                raise ValueError(
                    f"betas must be (B, S) = ({B}, <= {self.num_betas}), got {tuple(betas.shape)}"
                )
            n = betas.shape[1]
            features = torch.cat([features, betas], dim=1)
            joints_rest = joints_rest + (betas @ self.joint_shapedirs[:n]).view(B, J, 3)
        dirs = self.blend_dirs_cm[:, : features.shape[1]]
        v_posed = torch.addmm(self.v_template_cm, dirs, features.T).view(3, V, B)
        if transl is not None:
            if transl.shape != (B, 3):
                raise ValueError(f"transl must be (B, 3) = ({B}, 3), got {tuple(transl.shape)}")
            transl = transl.to(v_posed.dtype)

        frame_rot, frame_pos = self.kinematics(rot_mats, joints_rest)
        transforms = skinning_transforms(frame_rot, frame_pos, joints_rest)
        vertices = linear_blend_skinning(v_posed, self.weights, transforms, transl)
        joints = frame_pos if transl is None else frame_pos + transl.unsqueeze(1)
        tips = self._tips(features, transforms, transl)
        keypoints = torch.cat([joints, tips], dim=1)[:, self.keypoint_index]
        bottom = frame_rot.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(B, J, 1, 4)
        joint_transforms = torch.cat(
            [torch.cat([frame_rot, joints.unsqueeze(-1)], dim=-1), bottom], dim=-2
        )
        return ManoOutput(
            vertices=vertices,
            joints=joints,
            keypoints=keypoints,
            joint_transforms=joint_transforms,
            rot_mats=rot_mats,
        )

    def _tips(self, features: Tensor, transforms: Tensor, transl: Tensor | None) -> Tensor:
        """(B, 5, 3) fingertip vertices, the same arithmetic as the mesh's (equal to float
        rounding) on the five tip rows only."""
        B = features.shape[0]
        dirs = self.tip_blend_dirs_cm[:, : features.shape[1]]
        rest = torch.addmm(self.tip_template_cm, dirs, features.T).view(3, 5, B).permute(2, 1, 0)
        blended = torch.einsum("vj,bjrc->bvrc", self.tip_weights, transforms)  # (B, 5, 3, 4)
        tips = (blended[..., :3] @ rest.unsqueeze(-1)).squeeze(-1) + blended[..., 3]
        return tips if transl is None else tips + transl.unsqueeze(1)

    def extra_repr(self) -> str:
        return (
            f"side={self.side}, vertices={self.num_vertices}, betas={self.num_betas}, "
            f"flat_hand_mean={self.flat_hand_mean}, model={self.model_path}"
        )
