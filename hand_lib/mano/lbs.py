"""Linear blend skinning as small pure tensor functions.

The kinematic chain is evaluated level by level (all joints at one depth at once), so a
MANO hand costs three batched matrix products instead of fifteen sequential ones. Nothing
here reads tensor values on the host: safe under ``torch.compile`` and CUDA graphs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from hand_lib.mano import fused


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


def _index_of(ids: Sequence[int]) -> slice | list[int]:
    """A slice when ``ids`` is an increasing arithmetic progression (a view, no gather)."""
    if len(ids) == 1:
        return slice(ids[0], ids[0] + 1)
    step = ids[1] - ids[0]
    if step > 0 and all(b - a == step for a, b in zip(ids, ids[1:], strict=False)):
        return slice(ids[0], ids[-1] + 1, step)
    return list(ids)


class KinematicTree(nn.Module):
    """Forward kinematics planned once for a fixed tree, for the hot path of a layer.

    Same result as :func:`forward_kinematics`, cheaper for trees like MANO's (a root and
    five chains of three joints numbered chain by chain): a level's joints and their
    parents become strided *views* (no gather), a level's parents are looked up in the
    previous level's result (level 1 just broadcasts the root), and the per-level results
    are laid back in joint order with one ``stack``/``cat`` when the numbering allows and
    one gather otherwise. The plan lives on the host; index tensors that cannot be views
    are non-persistent buffers, so ``forward`` never copies indices or syncs.

    Args:
        parents: parent of each joint, -1 for the root; parents precede children.
    """

    def __init__(self, parents: Sequence[int]) -> None:
        super().__init__()
        self.num_joints = len(parents)
        levels = kinematic_levels(parents)
        self._plan: list[tuple[slice | str, slice | str, slice | str]] = []
        previous = [0]
        for depth, (ids, parent_ids) in enumerate(levels):
            local = [previous.index(p) for p in parent_ids]
            if all(i == 0 for i in local) and len(previous) == 1:
                local_index: slice | list[int] = slice(0, 1)  # broadcast the single parent
            else:
                local_index = _index_of(local)
            entries = []
            for kind, index in (
                ("ids", _index_of(ids)),
                ("par", _index_of(parent_ids)),
                ("local", local_index),
            ):
                if isinstance(index, list):
                    name = f"_level{depth}_{kind}"
                    self.register_buffer(name, torch.as_tensor(index), persistent=False)
                    entries.append(name)
                else:
                    entries.append(index)
            self._plan.append(tuple(entries))  # type: ignore[arg-type]
            previous = ids
        order = [0] + [j for ids, _ in levels for j in ids]
        sizes = {len(ids) for ids, _ in levels}
        chains = len(levels[0][0]) if levels else 0
        stacked = [0] + [levels[d][0][k] for k in range(chains) for d in range(len(levels))]
        # "stack": joints numbered chain by chain with every level the same width.
        self._stack = len(sizes) == 1 and stacked == list(range(self.num_joints))
        if not self._stack:
            inverse = [order.index(j) for j in range(self.num_joints)]
            self.register_buffer("_inverse", torch.as_tensor(inverse), persistent=False)

    def _get(self, entry: slice | str) -> slice | Tensor:
        return entry if isinstance(entry, slice) else getattr(self, entry)

    def _assemble(self, root: Tensor, per_level: list[Tensor]) -> Tensor:
        if self._stack:
            stacked = torch.stack(per_level, dim=2).flatten(1, 2)
            return torch.cat([root, stacked], dim=1)
        return torch.cat([root, *per_level], dim=1)[:, self._inverse]

    def forward(self, rot_mats: Tensor, joints_rest: Tensor) -> tuple[Tensor, Tensor]:
        """See :func:`forward_kinematics` (same arguments except the levels, same result)."""
        rot_levels, pos_levels = [], []
        prev_rot, prev_pos = rot_mats[:, :1], joints_rest[:, :1]
        for ids, par, local in self._plan:
            ids, par, local = self._get(ids), self._get(par), self._get(local)
            parent_rot = prev_rot[:, local]
            bone = joints_rest[:, ids] - joints_rest[:, par]
            prev_rot = parent_rot @ rot_mats[:, ids]
            prev_pos = (parent_rot @ bone.unsqueeze(-1)).squeeze(-1) + prev_pos[:, local]
            rot_levels.append(prev_rot)
            pos_levels.append(prev_pos)
        if not rot_levels:
            return rot_mats, joints_rest
        frame_rot = self._assemble(rot_mats[:, :1], rot_levels)
        frame_pos = self._assemble(joints_rest[:, :1], pos_levels)
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
    """``out_v = sum_j w_vj (R_j v + t_j) + transl`` for every vertex, one matrix entry at a time.

    The naive form materialises the blended per-vertex ``[R | t]`` (B, V, 3, 4) tensor and,
    in the backward pass, a gradient of the same size: at batch 1024 that is 38 MB each,
    far beyond cache. Here each of the 12 transform entries is blended by its own
    ``(V, J) @ (J, B)`` product into one reused (V, B) scratch buffer and consumed at once
    while it is still in cache; the backward pass mirrors that and recomputes the nine
    blended rotation entries rather than keeping them (on a CPU, touching 9 V B floats of
    fresh memory costs more page faults than the nine small products). Coordinate-major
    layouts make every slice contiguous, so products write straight into preallocated
    outputs; the global translation rides along as the bias of the first product.
    """

    @staticmethod
    def forward(
        ctx, weights: Tensor, transforms: Tensor, vertices: Tensor, transl: Tensor | None
    ) -> Tensor:  # type: ignore[override]
        # weights (V, J); transforms (3, 4, J, B); vertices (3, V, B); transl (3, 1, B) or None
        ctx.save_for_backward(weights, transforms, vertices)
        ctx.has_transl = transl is not None
        out = torch.empty_like(vertices)
        scratch = torch.empty_like(vertices[0])
        for c in range(3):
            if transl is None:
                torch.mm(weights, transforms[c, 3], out=out[c])
            else:
                torch.addmm(transl[c], weights, transforms[c, 3], out=out[c])
            for a in range(3):
                torch.mm(weights, transforms[c, a], out=scratch)
                out[c].addcmul_(scratch, vertices[a])
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        weights, transforms, vertices = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        weights_t = weights.T
        need_t, need_v = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        grad_transforms = torch.empty_like(transforms) if need_t else None
        grad_vertices = torch.empty_like(vertices) if need_v else None
        scratch = torch.empty_like(vertices[0])
        for c in range(3):
            g = grad_out[c]
            if need_t:
                torch.mm(weights_t, g, out=grad_transforms[c, 3])
            for a in range(3):
                if need_t:
                    torch.mul(g, vertices[a], out=scratch)
                    torch.mm(weights_t, scratch, out=grad_transforms[c, a])
                if need_v:
                    torch.mm(weights, transforms[c, a], out=scratch)
                    if c == 0:
                        torch.mul(g, scratch, out=grad_vertices[a])
                    else:
                        grad_vertices[a].addcmul_(g, scratch)
        grad_transl = None
        if ctx.has_transl and ctx.needs_input_grad[3]:
            grad_transl = grad_out.sum(dim=1, keepdim=True)
        return None, grad_transforms, grad_vertices, grad_transl


def linear_blend_skinning(
    vertices: Tensor, weights: Tensor, transforms: Tensor, transl: Tensor | None = None
) -> Tensor:
    """Blend per-joint affine transforms by skinning weights, apply them, add ``transl``.

    Works coordinate-major with the batch innermost. On the CPU this runs the fused C++
    kernel of :mod:`hand_lib.mano.fused` when it can be built (one pass over the vertices);
    otherwise, and on CUDA, each blend is a ``(V, J) @ (J, B)`` matrix product over
    contiguous memory (:class:`_BlendAndApply`). Both give the same result to float
    rounding. Double backward is not supported (both backward passes are hand-written).

    Args:
        vertices: (3, V, B) rest-pose vertices after blend shapes, coordinate-major, metres.
        weights: (V, J) skinning weights, rows summing to 1.
        transforms: (B, J, 3, 4) from :func:`skinning_transforms`.
        transl: optional (B, 3) translation added to every vertex, metres.

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
    # (3, 1, B) in the vertices' dtype (a float64 translation for a float32 layer is cast)
    transl_cm = None if transl is None else transl.to(vertices.dtype).T.unsqueeze(1).contiguous()
    kernel = fused.cpu_kernel() if fused.applies_to(vertices) else None
    if kernel is not None:
        out = fused.FusedSkinning.apply(
            kernel, weights.contiguous(), transforms_cm, vertices.contiguous(), transl_cm
        )
    else:
        out = _BlendAndApply.apply(weights, transforms_cm, vertices, transl_cm)
    return out.permute(2, 1, 0)
