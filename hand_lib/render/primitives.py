"""Small test meshes built in code: a fronto-parallel quad, a UV sphere / ellipsoid."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def quad(center: tuple[float, float, float], half_size: float,
         dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """A square facing the camera (normal (0, 0, -1)), two triangles.

    Args:
        center: (x, y, z) centre, metres (camera space).
        half_size: half the side length, metres.

    Returns:
        vertices (4, 3) metres and faces (2, 3) int64.
    """
    cx, cy, cz = center
    h = half_size
    vertices = torch.tensor(
        [[cx - h, cy - h, cz], [cx + h, cy - h, cz], [cx + h, cy + h, cz], [cx - h, cy + h, cz]],
        dtype=dtype,
    )
    # (v1 - v0) x (v2 - v0) = (+x) x (+y) = +z points away from the camera: reverse the order
    faces = torch.tensor([[0, 2, 1], [0, 3, 2]], dtype=torch.int64)
    return vertices, faces


def uv_sphere(rings: int = 25, segments: int = 32, radii: tuple[float, float, float] = (1, 1, 1),
              dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """A closed UV sphere (or ellipsoid with semi-axes ``radii``), outward normals.

    ``rings=25, segments=32`` gives 1536 faces and 770 vertices, about MANO's size.

    Returns:
        vertices ((rings - 1) * segments + 2, 3) and faces (2 * segments * (rings - 1), 3).
    """
    if rings < 2 or segments < 3:
        raise ValueError(f"need rings >= 2 and segments >= 3, got {rings}, {segments}")
    theta = torch.arange(1, rings, dtype=torch.float64) * math.pi / rings  # polar angle
    phi = torch.arange(segments, dtype=torch.float64) * 2 * math.pi / segments
    st, ct = torch.sin(theta)[:, None], torch.cos(theta)[:, None]
    ring_pts = torch.stack(
        [st * torch.cos(phi), st * torch.sin(phi), ct.expand(-1, segments)], dim=-1
    ).reshape(-1, 3)
    vertices = torch.cat([torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64), ring_pts,
                          torch.tensor([[0.0, 0.0, -1.0]], dtype=torch.float64)])
    vertices = vertices * torch.tensor(radii, dtype=torch.float64)
    top, bottom = 0, len(vertices) - 1
    faces = []
    j = torch.arange(segments)
    jn = (j + 1) % segments
    first = 1 + j
    faces.append(torch.stack([torch.full_like(j, top), first, 1 + jn], 1))
    for r in range(rings - 2):
        a, b = 1 + r * segments + j, 1 + r * segments + jn
        c, d = a + segments, b + segments
        faces.append(torch.stack([a, c, b], 1))
        faces.append(torch.stack([b, c, d], 1))
    last = 1 + (rings - 2) * segments
    faces.append(torch.stack([last + j, torch.full_like(j, bottom), last + jn], 1))
    return vertices.to(dtype), torch.cat(faces).long()
