"""Mesh smoothness: the uniform (graph) Laplacian, built once from the faces.

``L = I - D^{-1} A`` with ``A`` the vertex adjacency of the triangle edges and ``D`` the
vertex degrees, so ``(L v)_i = v_i - mean_{k in N(i)} v_k``: the offset of a vertex from
the centroid of its neighbours. It is zero on the interior of any flat regular grid and
grows with local bumps; boundary vertices of an open mesh have a non-zero value even on a
plane. (S2HAND uses cotangent weights computed on the template; the uniform Laplacian needs no
rest geometry and is what this library uses.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from hand_lib.losses._checks import check_shape, safe_norm

__all__ = ["laplacian_smoothness_loss", "mesh_laplacian", "uniform_laplacian"]


def uniform_laplacian(
    faces: Tensor, num_vertices: int, *, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Build the sparse uniform Laplacian ``L = I - D^{-1} A`` of a triangle mesh.

    Build it once (e.g. as a model attribute) and reuse it: it depends on the faces only.
    Duplicate edges (shared by two faces) count once; vertices in no face get a zero row.

    Args:
        faces: (F, 3) integer vertex indices.
        num_vertices: V, the number of vertices (>= every index + 1).
        dtype: floating dtype of the result.

    Returns:
        (V, V) sparse COO tensor (coalesced) on the device of ``faces``.
    """
    if not isinstance(faces, Tensor) or faces.ndim != 2 or faces.shape[1] != 3:
        shape = tuple(faces.shape) if isinstance(faces, Tensor) else type(faces).__name__
        raise ValueError(f"faces must have shape (F, 3), got {shape}")
    if faces.dtype.is_floating_point or faces.dtype == torch.bool:
        raise ValueError(f"faces must be an integer tensor, got {faces.dtype}")
    faces = faces.long()
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= num_vertices):
        raise ValueError(f"faces index outside [0, {num_vertices})")
    device = faces.device
    i, j = faces[:, [0, 1, 2]].reshape(-1), faces[:, [1, 2, 0]].reshape(-1)
    edges = torch.stack([torch.cat([i, j]), torch.cat([j, i])])  # both directions
    edges = torch.unique(edges, dim=1)  # an edge shared by two faces counts once
    edges = edges[:, edges[0] != edges[1]]  # degenerate faces give no self-loops
    degree = torch.zeros(num_vertices, dtype=dtype, device=device)
    degree.index_add_(0, edges[0], torch.ones(edges.shape[1], dtype=dtype, device=device))
    off_diag = -1.0 / degree[edges[0]]
    connected = torch.nonzero(degree > 0).squeeze(1)
    indices = torch.cat([edges, connected.expand(2, -1)], dim=1)
    values = torch.cat([off_diag, torch.ones(connected.numel(), dtype=dtype, device=device)])
    shape = (num_vertices, num_vertices)
    return torch.sparse_coo_tensor(indices, values, shape, check_invariants=True).coalesce()


def mesh_laplacian(vertices: Tensor, laplacian: Tensor) -> Tensor:
    """Per-vertex Laplacian coordinates ``L v``.

    Args:
        vertices: (B, V, 3) vertex positions (any units, e.g. metres).
        laplacian: (V, V) sparse Laplacian from :func:`uniform_laplacian`; moved to the
            vertices' dtype and device if needed.

    Returns:
        (B, V, 3) ``v_i - mean of its neighbours``, units of ``vertices``.
    """
    check_shape(vertices, (None, None, 3), "vertices", "(B, V, 3)")
    B, V, _ = vertices.shape
    if laplacian.ndim != 2 or tuple(laplacian.shape) != (V, V):
        raise ValueError(
            f"laplacian must have shape (V, V) = ({V}, {V}), got {tuple(laplacian.shape)}"
        )
    if laplacian.dtype != vertices.dtype or laplacian.device != vertices.device:
        laplacian = laplacian.to(dtype=vertices.dtype, device=vertices.device)
    flat = vertices.permute(1, 0, 2).reshape(V, B * 3)  # one sparse product for the batch
    return torch.sparse.mm(laplacian, flat).view(V, B, 3).permute(1, 0, 2)


def laplacian_smoothness_loss(vertices: Tensor, laplacian: Tensor) -> Tensor:
    """Laplacian smoothness: the mean length of the Laplacian coordinates.

    ``L = mean_{b,i} ||(L v_b)_i||`` (the Euclidean norm, not its square, as S2HAND reduces
    its Laplacian term). Zero for meshes whose every vertex sits at its neighbours' centroid.

    Args:
        vertices: (B, V, 3) vertex positions, metres.
        laplacian: (V, V) sparse Laplacian from :func:`uniform_laplacian`.

    Returns:
        Scalar loss, metres.
    """
    return safe_norm(mesh_laplacian(vertices, laplacian)).mean()
