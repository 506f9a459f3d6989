"""Linear blend skinning as small pure tensor functions.

The kinematic chain is evaluated level by level (all joints at one depth at once), so a
MANO hand costs three batched matrix products instead of fifteen sequential ones. Nothing
here reads tensor values on the host: safe under ``torch.compile`` and CUDA graphs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def kinematic_levels(parents: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    """Group joints by depth in the tree.

    Args:
        parents: parent of each joint, -1 for the root; parents precede children.

    Returns:
        For each depth >= 1, ``(joint_ids, parent_ids)``; the root (depth 0) is implicit.
    """
    depth = [0] * len(parents)
    for j, p in enumerate(parents):
        if j == 0:
            if p != -1:
                raise ValueError(f"joint 0 must be the root (parent -1), got parent {p}")
            continue
        if not 0 <= p < j:
            raise ValueError(f"parents must precede children: joint {j} has parent {p}")
        depth[j] = depth[p] + 1
    levels = []
    for d in range(1, max(depth) + 1):
        ids = [j for j in range(len(parents)) if depth[j] == d]
        levels.append((ids, [parents[j] for j in ids]))
    return levels


def pose_feature(rot_mats: Tensor) -> Tensor:
    """MANO/SMPL pose-corrective feature: ``(R_j - I)`` of the non-root joints, flattened.

    Args:
        rot_mats: (B, J, 3, 3) local joint rotations.

    Returns:
        (B, 9 * (J - 1)), row-major per joint, the layout of ``posedirs``' last axis.
    """
    eye = torch.eye(3, dtype=rot_mats.dtype, device=rot_mats.device)
    return (rot_mats[:, 1:] - eye).flatten(1)


def forward_kinematics(
    rot_mats: Tensor, joints_rest: Tensor, levels: Sequence[tuple[Tensor, Tensor]]
) -> tuple[Tensor, Tensor]:
    """World frames of every joint.

    Args:
        rot_mats: (B, J, 3, 3) local rotations, each about its joint's rest position.
        joints_rest: (B, J, 3) rest-pose (shaped) joint positions, metres.
        levels: from :func:`kinematic_levels`, as long tensors on the right device.

    Returns:
        ``(frame_rot (B, J, 3, 3), frame_pos (B, J, 3))``: the accumulated rotation of each
        joint and its posed position, metres.
    """
    # Out-of-place index_copy keeps autograd simple; each level touches (B, J) buffers once.
    frame_rot = rot_mats
    frame_pos = joints_rest
    for ids, parent_ids in levels:
        parent_rot = frame_rot[:, parent_ids]
        bone = joints_rest[:, ids] - joints_rest[:, parent_ids]
        new_rot = parent_rot @ rot_mats[:, ids]
        new_pos = (parent_rot @ bone.unsqueeze(-1)).squeeze(-1) + frame_pos[:, parent_ids]
        frame_rot = frame_rot.index_copy(1, ids, new_rot)
        frame_pos = frame_pos.index_copy(1, ids, new_pos)
    return frame_rot, frame_pos


def skinning_transforms(frame_rot: Tensor, frame_pos: Tensor, joints_rest: Tensor) -> Tensor:
    """Per-joint transforms that carry rest-pose points to the posed pose.

    ``x_posed = frame_rot @ (x_rest - joint_rest) + frame_pos``, written as ``[R | t]`` with
    ``t = frame_pos - frame_rot @ joint_rest``.

    Args:
        frame_rot: (B, J, 3, 3), frame_pos: (B, J, 3) from :func:`forward_kinematics`.
        joints_rest: (B, J, 3) rest-pose joints, metres.

    Returns:
        (B, J, 3, 4) affine transforms.
    """
    t = frame_pos - (frame_rot @ joints_rest.unsqueeze(-1)).squeeze(-1)
    return torch.cat([frame_rot, t.unsqueeze(-1)], dim=-1)


class _BlendAndApply(torch.autograd.Function):
    """``out_v = sum_j w_vj (R_j v + t_j)`` for every vertex, one matrix entry at a time.

    The naive form materialises the blended per-vertex ``[R | t]`` (B, V, 3, 4) tensor and,
    in the backward pass, a gradient of the same size: at batch 1024 that is 38 MB each,
    far beyond cache. Here each of the 12 transform entries is blended by its own
    ``(V, J) @ (J, B)`` product and consumed at once while it is still in cache; the
    backward pass mirrors that. Coordinate-major layouts make every slice contiguous, so
    products write straight into preallocated outputs.
    """

    @staticmethod
    def forward(ctx, weights: Tensor, transforms: Tensor, vertices: Tensor) -> Tensor:  # type: ignore[override]
        # weights (V, J); transforms (3, 4, J, B); vertices (3, V, B)
        ctx.save_for_backward(weights, transforms, vertices)
        out = torch.empty_like(vertices)
        for c in range(3):
            torch.mm(weights, transforms[c, 3], out=out[c])
            for a in range(3):
                out[c].addcmul_(weights @ transforms[c, a], vertices[a])
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[None, Tensor, Tensor]:  # type: ignore[override]
        weights, transforms, vertices = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        weights_t = weights.T
        grad_transforms = torch.empty_like(transforms)
        grad_vertices = torch.zeros_like(vertices)
        for c in range(3):
            g = grad_out[c]
            torch.mm(weights_t, g, out=grad_transforms[c, 3])
            for a in range(3):
                torch.mm(weights_t, g * vertices[a], out=grad_transforms[c, a])
                grad_vertices[a].addcmul_(g, weights @ transforms[c, a])
        return None, grad_transforms, grad_vertices


def linear_blend_skinning(vertices: Tensor, weights: Tensor, transforms: Tensor) -> Tensor:
    """Blend per-joint affine transforms by skinning weights and apply them.

    Works coordinate-major with the batch innermost, so each blend is a
    ``(V, J) @ (J, B)`` matrix product over contiguous memory (see :class:`_BlendAndApply`).
    Double backward is not supported (the backward is hand-written for speed).

    Args:
        vertices: (3, V, B) rest-pose vertices after blend shapes, coordinate-major, metres.
        weights: (V, J) skinning weights, rows summing to 1.
        transforms: (B, J, 3, 4) from :func:`skinning_transforms`.

    Returns:
        (B, V, 3) posed vertices, metres, as a *view* of a coordinate-major buffer (not
        contiguous: use ``.reshape``, not ``.view``). Copying it to batch-major would cost
        as much as the skinning itself at large batch.
    """
    B, J = transforms.shape[:2]
    V = weights.shape[0]
    if vertices.shape != (3, V, B):
        raise ValueError(
            f"vertices must be coordinate-major (3, V, B) = (3, {V}, {B}), "
            f"got {tuple(vertices.shape)}"
        )
    transforms_cm = transforms.permute(2, 3, 1, 0).contiguous()  # (3, 4, J, B)
    return _BlendAndApply.apply(weights, transforms_cm, vertices).permute(2, 1, 0)
