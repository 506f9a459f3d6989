"""The open hand model: a procedurally built right hand in MANO's file format.

The real MANO files are licensed and cannot ship with hand_lib. This module builds, from a
seed, a hand with the same keys, shapes and forward semantics, so ``smplx.MANO`` and
:class:`hand_lib.mano.ManoLayer` load it exactly as they load ``MANO_RIGHT.pkl``. Run
``python -m hand_lib.mano.openhand`` to rebuild ``hand_lib/assets/open_hand_right.pkl``
bit for bit (every float array is rounded to :data:`DECIMALS` decimals before saving).

Frame (metres, right hand, rest pose = flat hand), chosen to match MANO's axis conventions
so that joint-angle priors written for MANO carry over:

* the wrist joint is at the origin; fingers point along **-x** (distal = -x);
* the back of the hand faces **+y** (the palm faces -y);
* the thumb is on the **+z** side (radial = +z);
* finger flexion is a positive rotation about +z, abduction towards the thumb a positive
  rotation about +y, thumb opposition mostly a positive rotation about +x.

Mesh (778 vertices, 1552 triangles, closed genus-0 surface, outward normals): a palm tube of
rings from a capped wrist to the knuckles, whose distal ring is split into the base loops
of the four fingers (neighbouring fingers share a dorsal-palmar "crotch" edge); the thumb
grows out of a hole cut in the radial-palmar side of the palm; each digit is a generalised
cylinder of rings along its bones, closed by a shrinking ring and one apex vertex, which is
the fingertip vertex (``tip_vertex_ids``). Taubin smoothing finishes the surface.

Model arrays (see :func:`build_open_hand`):

* ``J_regressor`` (16, V): each joint is a convex combination of the vertex rings around it,
  solved so that ``J_regressor @ v_template`` reproduces the designed joints.
* ``weights`` (V, 16): a vertex on a phalanx follows the joint at that phalanx's proximal
  end, the palm follows the wrist, the thumb metacarpal follows joint 13; weights blend
  smoothly across each joint along the bone and are diffused a few steps on the mesh.
* ``shapedirs`` (V, 3, 10): PCA of vertex displacements over sampled hand proportions
  (size, palm length/width/thickness, per-digit length, phalanx proportions, thickness);
  each component is scaled by its standard deviation, so ``betas ~ N(0, 1)``. Positive
  ``betas[0]`` makes the hand larger.
* ``posedirs`` (V, 3, 135): pose correctives regressed (ridge, per vertex on the joints that
  move it) from MANO's pose feature to the rest-space difference between dual-quaternion
  skinning and linear blend skinning over sampled poses: they remove most of LBS's joint
  collapse.
* ``hands_components`` (45, 45), ``hands_mean`` (45,): PCA of sampled natural finger poses
  (axis-angle of joints 1..15 in MANO's local convention: curl correlated along and across
  fingers, joint limits respected, splay, thumb opposition). Rows are the principal
  directions **scaled by the square root of their eigenvalue**, so PCA coefficients are
  ~N(0, 1) (the official MANO rows are unit vectors). ``hands_mean`` is the sample mean: a
  relaxed, slightly flexed hand.

:func:`mirror_to_left` derives the exact mirror image (a correct left hand; the official
left file's shapedirs carry a sign bug, smplx issue #48).
"""

from __future__ import annotations

import argparse
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse
import torch
from scipy.optimize import nnls
from scipy.spatial.transform import Rotation

from hand_lib.geometry.rotations import axis_angle_to_matrix, matrix_to_quaternion
from hand_lib.mano.io import OPEN_HAND_RIGHT, save_model_file
from hand_lib.mano.joints import MANO_PARENTS
from hand_lib.mano.lbs import (
    forward_kinematics,
    kinematic_levels,
    pose_feature,
    skinning_transforms,
)

#: Decimals every float array is rounded to before saving (makes rebuilds bit-identical
#: across BLAS thread counts; 1e-9 m is far below any geometric effect).
DECIMALS = 9
NUM_VERTICES = 778
NUM_JOINTS = 16
NUM_BETAS = 10

#: Digits in this module's order; MANO joint ids of (proximal, middle, distal) joint.
DIGITS = ("thumb", "index", "middle", "ring", "pinky")
FINGERS = ("index", "middle", "ring", "pinky")
DIGIT_JOINTS = {
    "thumb": (13, 14, 15),
    "index": (1, 2, 3),
    "middle": (4, 5, 6),
    "ring": (10, 11, 12),
    "pinky": (7, 8, 9),
}

# ---------------------------------------------------------------------------------------
# Resolution (topology). All counts are fixed: every shape shares one triangulation.

N_FINGER = 12  # vertices around a finger ring
N_THUMB = 14  # vertices around a thumb ring (= length of the hole cut into the palm)
N_PALM = 4 * N_FINGER - 6  # palm ring: the four finger loops minus the 3 shared edges
PALM_RING_T = (0.0, 0.2, 0.42, 0.62, 0.82)  # palm rings, fraction wrist ring -> knuckle loop
HOLE_RINGS = (1, 3)  # the thumb hole spans palm rings 1..3 ...
HOLE_COLS = (33, 38)  # ... and palm columns 33..38 (radial-palmar side, see _palm_columns)
#: rings per digit after its base: (proximal segment, middle segment, distal segment)
RING_COUNTS = {
    "thumb": (3, 2, 3),
    "index": (3, 2, 3),
    "middle": (4, 3, 3),
    "ring": (3, 2, 3),
    "pinky": (3, 2, 3),
}
WRIST_COLS = (36, 16)  # the radial-most and ulnar-most palm columns (wrist cap split)

# ---------------------------------------------------------------------------------------
# Anthropometry of the mean hand. Internal coordinates (u, v, w) = (distal, dorsal,
# radial), metres; the output frame is (x, y, z) = (-u, v, w).

#: MCP joint centres (u, v, w) and rest splay (degrees, + towards the thumb).
MCP = {
    "index": (0.0860, 0.0015, 0.0245),
    "middle": (0.0910, 0.0015, 0.0055),
    "ring": (0.0860, 0.0010, -0.0130),
    "pinky": (0.0770, 0.0005, -0.0295),
}
SPLAY_DEG = {"index": 5.0, "middle": 0.0, "ring": -5.0, "pinky": -11.0}
#: joint-centre distances (MCP->PIP, PIP->DIP, DIP->tip surface); thumb: CMC->MCP, MCP->IP,
#: IP->tip. Anatomical bone lengths, cf. Buryanov & Kotiuk, Int. J. Morphol. 28(3), 2010.
SEGMENTS = {
    "thumb": (0.0440, 0.0310, 0.0265),
    "index": (0.0400, 0.0230, 0.0200),
    "middle": (0.0450, 0.0270, 0.0210),
    "ring": (0.0420, 0.0260, 0.0205),
    "pinky": (0.0330, 0.0190, 0.0190),
}
#: finger half-width at the base and at the tip (the thickness is THICKNESS_RATIO of it).
FINGER_RADIUS = {
    "index": (0.0093, 0.0077),
    "middle": (0.0096, 0.0079),
    "ring": (0.0090, 0.0074),
    "pinky": (0.0079, 0.0065),
}
THICKNESS_RATIO = 0.88
THUMB_CMC = (0.0240, -0.0110, 0.0200)
#: thumb bone directions at rest (u, v, w), unnormalised: metacarpal, proximal, distal.
THUMB_DIRS = ((0.72, -0.20, 0.66), (0.80, -0.18, 0.57), (0.85, -0.15, 0.50))
THUMB_NAIL = (0.0, 0.55, 0.84)  # direction the thumbnail faces at rest
#: thumb half-width at: ring 1 (thenar), ring 2, MCP, mid proximal, IP, distal
THUMB_RADIUS = (0.0165, 0.0135, 0.0112, 0.0104, 0.0103, 0.0094)
WRIST_U = -0.012  # the wrist cap sits 12 mm proximal to the wrist joint
#: palm cross-section along the palm (t = 0 wrist ring .. 1 knuckle loop): half width,
#: half thickness, centre w, centre v, superellipse exponent
PALM_T = np.array([0.0, 0.2, 0.42, 0.62, 0.82, 1.0])
PALM_HALF_WIDTH = np.array([0.0290, 0.0365, 0.0410, 0.0425, 0.0425, 0.0425])
PALM_HALF_THICK = np.array([0.0175, 0.0168, 0.0155, 0.0140, 0.0128, 0.0120])
PALM_CENTRE_W = np.array([-0.0020, -0.0005, 0.0000, 0.0000, 0.0000, 0.0000])
PALM_CENTRE_V = np.array([0.0000, -0.0005, -0.0008, -0.0008, -0.0006, -0.0005])
PALM_EXPONENT = np.array([2.3, 2.6, 2.9, 3.0, 3.0, 3.0])
#: finger base loops: dorsal and palmar half-heights, outer half-widths of index/pinky
LOOP_DORSAL, LOOP_PALMAR = 0.0112, 0.0122
LOOP_OUTER = {"index": 0.0170, "pinky": 0.0135}
CROTCH_DORSAL, CROTCH_PALMAR = 0.0050, -0.0060
BASE_OFFSET = 0.004  # base loops sit this far distal to their MCP joint
WEB_OFFSET = 0.006  # crotches sit this far distal to the base loops


@dataclass(frozen=True)
class HandProportions:
    """Multipliers (1 = the mean hand) that define one hand shape.

    Attributes:
        scale: global size.
        palm_length, palm_width, palm_thickness: palm dimensions.
        digit_length: (5,) total length of each digit (thumb, index, middle, ring, pinky).
        proximal_share: (5,) scales the proximal bone; the distal bones absorb the rest so
            the digit keeps its total length.
        digit_thickness: (5,) cross-section size of each digit.
    """

    scale: float = 1.0
    palm_length: float = 1.0
    palm_width: float = 1.0
    palm_thickness: float = 1.0
    digit_length: tuple[float, ...] = field(default=(1.0,) * 5)
    proximal_share: tuple[float, ...] = field(default=(1.0,) * 5)
    digit_thickness: tuple[float, ...] = field(default=(1.0,) * 5)


# ---------------------------------------------------------------------------------------
# Topology


@dataclass(frozen=True)
class _Topology:
    """Vertex index layout and faces shared by every shape of the procedural hand."""

    palm: np.ndarray  # (len(PALM_RING_T) + 1, N_PALM) ids, -1 where the thumb hole is
    loops: dict[str, np.ndarray]  # finger -> (N_FINGER,) base loop ids (palm columns)
    loop_cols: dict[str, np.ndarray]  # finger -> (N_FINGER,) palm column of each loop vertex
    crotch: dict[str, tuple[str, ...]]  # finger -> neighbours it shares a crotch with
    rings: dict[str, np.ndarray]  # digit -> (K, n) ids of its rings after the base
    apex: dict[str, int]  # digit -> fingertip vertex id
    hole: np.ndarray  # (N_THUMB,) ids of the thumb hole boundary, in cycle order
    hole_rc: np.ndarray  # (N_THUMB, 2) (palm ring, column) of each hole vertex
    cap: np.ndarray  # (k,) wrist cap midline ids, radial -> ulnar
    faces: np.ndarray  # (F, 3) consistently oriented (outward after _orient_outward)
    num_vertices: int


def _palm_columns() -> tuple[list[tuple[str, ...]], dict[str, list[int]]]:
    """The knuckle ring as a cycle of tokens, counter-clockwise in the (radial, dorsal)
    plane seen from the fingertips, starting at the index/middle dorsal crotch.

    Returns the tokens (("crotch", side, a, b) or ("own", finger, k)) and, per finger, the
    columns of its base loop in increasing loop angle.
    """
    n_side = N_FINGER - 2  # index and pinky: own vertices around the outer side
    n_half = (N_FINGER - 4) // 2  # middle and ring: own vertices on each of dorsal, palmar
    tokens: list[tuple[str, ...]] = [("crotch", "dorsal", "index", "middle")]
    tokens += [("own", "middle", k) for k in range(n_half)]
    tokens += [("crotch", "dorsal", "middle", "ring")]
    tokens += [("own", "ring", k) for k in range(n_half)]
    tokens += [("crotch", "dorsal", "ring", "pinky")]
    tokens += [("own", "pinky", k) for k in range(n_side)]
    tokens += [("crotch", "palmar", "ring", "pinky")]
    tokens += [("own", "ring", n_half + k) for k in range(n_half)]
    tokens += [("crotch", "palmar", "middle", "ring")]
    tokens += [("own", "middle", n_half + k) for k in range(n_half)]
    tokens += [("crotch", "palmar", "index", "middle")]
    tokens += [("own", "index", k) for k in range(n_side)]
    col = {t: i for i, t in enumerate(tokens)}

    def own(f: str, ks: range) -> list[int]:
        return [col[("own", f, k)] for k in ks]

    loops = {
        "index": [col[("crotch", "dorsal", "index", "middle")],
                  col[("crotch", "palmar", "index", "middle")]] + own("index", range(n_side)),
        "pinky": [col[("crotch", "dorsal", "ring", "pinky")]] + own("pinky", range(n_side))
        + [col[("crotch", "palmar", "ring", "pinky")]],
    }  # fmt: skip
    for f, (a, b) in {"middle": ("index", "ring"), "ring": ("middle", "pinky")}.items():
        loops[f] = (
            [col[("crotch", "dorsal", a, f)]]
            + own(f, range(n_half))
            + [col[("crotch", "dorsal", f, b)], col[("crotch", "palmar", f, b)]]
            + own(f, range(n_half, 2 * n_half))
            + [col[("crotch", "palmar", a, f)]]
        )
    return tokens, loops


def _quad_strip(a: np.ndarray, b: np.ndarray, closed: bool = True) -> list[tuple[int, int, int]]:
    """Triangles joining ring ``a`` to ring ``b`` (same length, corresponding vertices)."""
    n = len(a)
    tris = []
    for i in range(n if closed else n - 1):
        j = (i + 1) % n
        tris.append((a[i], a[j], b[j]))
        tris.append((a[i], b[j], b[i]))
    return tris


def _zipper(a: list[int], b: list[int]) -> list[tuple[int, int, int]]:
    """Triangulate the strip between polylines ``a`` (a[0] .. a[-1]) and ``b``, where b's
    vertices lie strictly between a's ends (parameters (j + 1) / (len(b) + 1))."""
    p, k = len(a) - 1, len(b)
    tris = []
    i, j = 0, 0  # current segment a[i] -- b[j]
    while i < p or j < k - 1:
        adv_a = j == k - 1 or (i < p and (i + 1) / p <= (j + 2) / (k + 1))
        if adv_a:
            tris.append((a[i], a[i + 1], b[j]))
            i += 1
        else:
            tris.append((a[i], b[j + 1], b[j]))
            j += 1
    return tris


@functools.lru_cache(maxsize=1)
def _topology() -> _Topology:
    tokens, loop_cols = _palm_columns()
    assert len(tokens) == N_PALM
    n_rings = len(PALM_RING_T)
    next_id = 0

    def take(count: int) -> np.ndarray:
        nonlocal next_id
        ids = np.arange(next_id, next_id + count)
        next_id += count
        return ids

    # palm rings; the distal row (index n_rings) is the knuckle ring of finger base loops
    (r0, r1), (c0, c1) = HOLE_RINGS, HOLE_COLS
    palm = np.full((n_rings + 1, N_PALM), -1, dtype=np.int64)
    for r in range(n_rings + 1):
        for c in range(N_PALM):
            if r0 < r < r1 and c0 < c < c1:
                continue  # inside the thumb hole
            palm[r, c] = take(1)[0]
    loops = {f: palm[n_rings, loop_cols[f]] for f in FINGERS}

    rings, apex = {}, {}
    for d in DIGITS:
        n = N_THUMB if d == "thumb" else N_FINGER
        rings[d] = take(sum(RING_COUNTS[d]) * n).reshape(-1, n)
        apex[d] = int(take(1)[0])

    # thumb hole boundary: along ring r0 (c0 -> c1), column c1 (r0 -> r1), ring r1 back,
    # column c0 back
    hole_rc = [(r0, c) for c in range(c0, c1)] + [(r, c1) for r in range(r0, r1)]
    hole_rc += [(r1, c) for c in range(c1, c0, -1)] + [(r, c0) for r in range(r1, r0, -1)]
    hole_rc = np.array(hole_rc)
    assert len(hole_rc) == N_THUMB
    hole = palm[hole_rc[:, 0], hole_rc[:, 1]]

    n_cap = NUM_VERTICES - next_id
    if not 2 <= n_cap <= 12:
        raise AssertionError(f"resolution settings leave {n_cap} wrist-cap vertices")
    cap = take(n_cap)

    tris: list[tuple[int, int, int]] = []
    for r in range(n_rings):
        a, b = palm[r], palm[r + 1]
        for c in range(N_PALM):
            if r0 <= r < r1 and c0 <= c < c1:
                continue
            c2 = (c + 1) % N_PALM
            tris.append((a[c], a[c2], b[c2]))
            tris.append((a[c], b[c2], b[c]))
    for d in DIGITS:
        base = hole if d == "thumb" else loops[d]
        chain = [base] + list(rings[d])
        for a, b in zip(chain[:-1], chain[1:], strict=True):
            tris += _quad_strip(a, b)
        last = chain[-1]
        tris += [(last[i], last[(i + 1) % len(last)], apex[d]) for i in range(len(last))]
    # wrist cap: two zipper strips from the radial-most to the ulnar-most column
    e_rad, e_uln = WRIST_COLS
    ring0 = palm[0]
    dorsal = [ring0[c % N_PALM] for c in range(e_rad, e_uln + N_PALM + 1)]
    palmar = [ring0[c] for c in range(e_rad, e_uln - 1, -1)]
    tris += _zipper(dorsal, list(cap))
    tris += _zipper(palmar, list(cap))

    faces = _orient_consistently(np.array(tris, dtype=np.int64))
    crotch = {"index": ("middle",), "middle": ("index", "ring"),
              "ring": ("middle", "pinky"), "pinky": ("ring",)}  # fmt: skip
    return _Topology(
        palm=palm,
        loops=loops,
        loop_cols={f: np.asarray(v) for f, v in loop_cols.items()},
        crotch=crotch,
        rings=rings,
        apex=apex,
        hole=hole,
        hole_rc=hole_rc,
        cap=cap,
        faces=faces,
        num_vertices=next_id,
    )


def _orient_consistently(faces: np.ndarray) -> np.ndarray:
    """Flip faces so that every edge is used once in each direction (breadth-first over
    the face adjacency). The global sign is fixed later from the signed volume."""
    faces = faces.copy()
    edge_faces: dict[tuple[int, int], list[int]] = {}
    for fi, (a, b, c) in enumerate(faces):
        for e in ((a, b), (b, c), (c, a)):
            edge_faces.setdefault((min(e), max(e)), []).append(fi)
    bad = [e for e, fs in edge_faces.items() if len(fs) != 2]
    if bad:
        raise AssertionError(f"non-manifold edges in the hand topology: {bad[:5]}")
    seen = np.zeros(len(faces), dtype=bool)
    for start in range(len(faces)):
        if seen[start]:
            continue
        seen[start] = True
        queue = [start]
        while queue:
            fi = queue.pop()
            a, b, c = faces[fi]
            for e in ((a, b), (b, c), (c, a)):
                for gj in edge_faces[(min(e), max(e))]:
                    if gj == fi or seen[gj]:
                        continue
                    g = faces[gj]
                    directed = {(g[0], g[1]), (g[1], g[2]), (g[2], g[0])}
                    if e in directed:  # same direction: flip the neighbour
                        faces[gj] = g[[0, 2, 1]]
                    seen[gj] = True
                    queue.append(gj)
    return faces


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume of a closed triangle mesh, m^3 (positive for outward normals)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


@functools.lru_cache(maxsize=1)
def _neighbour_matrix() -> scipy.sparse.csr_matrix:
    """(V, V) row-normalised vertex adjacency (uniform Laplacian smoothing)."""
    topo = _topology()
    f = topo.faces
    rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    adj = scipy.sparse.csr_matrix(
        (np.ones(len(rows)), (rows, cols)), shape=(topo.num_vertices,) * 2
    )
    adj.data[:] = 1.0
    deg = np.asarray(adj.sum(1)).ravel()
    return scipy.sparse.diags(1.0 / deg) @ adj


def _taubin(points: np.ndarray, iterations: int, lam: float = 0.5, mu: float = -0.53) -> np.ndarray:
    nbr = _neighbour_matrix()
    for _ in range(iterations):
        points = points + lam * (nbr @ points - points)
        points = points + mu * (nbr @ points - points)
    return points


# ---------------------------------------------------------------------------------------
# Geometry


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _superellipse(
    theta: np.ndarray, half_w: np.ndarray, half_h: np.ndarray, p: float
) -> np.ndarray:
    """(..., 2) points (w, v) of a superellipse |w/a|^p + |v/b|^p = 1 at polar angle theta."""
    c, s = np.cos(theta), np.sin(theta)
    e = 2.0 / p
    return np.stack(
        [half_w * np.sign(c) * np.abs(c) ** e, half_h * np.sign(s) * np.abs(s) ** e], -1
    )


def _uniform_angles(angles: np.ndarray) -> np.ndarray:
    """Evenly spaced angles (same sense as the increasing ``angles``) closest to them."""
    n = len(angles)
    steps = 2.0 * np.pi * np.arange(n) / n
    return np.mean(angles - steps) + steps


@dataclass(frozen=True)
class _Skeleton:
    """Joint layout of one hand shape in internal (u, v, w) coordinates, metres."""

    joints: np.ndarray  # (16, 3) MANO order
    tips: dict[str, np.ndarray]  # digit -> (3,) fingertip surface point
    axis: dict[str, np.ndarray]  # finger -> (3,) unit direction
    radius: dict[str, tuple[float, float]]  # digit thickness factor applied
    segments: dict[str, tuple[float, float, float]]


def _skeleton(p: HandProportions) -> _Skeleton:
    joints = np.zeros((NUM_JOINTS, 3))
    tips, axes, radius, segments = {}, {}, {}, {}
    for k, d in enumerate(DIGITS):
        total = sum(SEGMENTS[d]) * p.digit_length[k]
        l1 = SEGMENTS[d][0] * p.digit_length[k] * p.proximal_share[k]
        rest = (total - l1) / (SEGMENTS[d][1] + SEGMENTS[d][2])
        segments[d] = (l1, SEGMENTS[d][1] * rest, SEGMENTS[d][2] * rest)
        radius[d] = p.digit_thickness[k]
    for f in FINGERS:
        mcp = np.array(MCP[f]) * (p.palm_length, p.palm_thickness, p.palm_width)
        s = np.deg2rad(SPLAY_DEG[f])
        axis = np.array([np.cos(s), 0.0, np.sin(s)])
        j0, j1, j2 = DIGIT_JOINTS[f]
        l1, l2, l3 = segments[f]
        joints[j0] = mcp
        joints[j1] = mcp + l1 * axis
        joints[j2] = mcp + (l1 + l2) * axis
        tips[f] = mcp + (l1 + l2 + l3) * axis
        axes[f] = axis
    cmc = np.array(THUMB_CMC) * (p.palm_length, p.palm_thickness, p.palm_width)
    dirs = [_unit(np.array(t)) for t in THUMB_DIRS]
    l1, l2, l3 = segments["thumb"]
    joints[13] = cmc
    joints[14] = cmc + l1 * dirs[0]
    joints[15] = joints[14] + l2 * dirs[1]
    tips["thumb"] = joints[15] + l3 * dirs[2]
    return _Skeleton(
        joints=joints * p.scale,
        tips={d: t * p.scale for d, t in tips.items()},
        axis=axes,
        radius=radius,
        segments={d: tuple(x * p.scale for x in s) for d, s in segments.items()},
    )


def _ring_positions(
    counts: tuple[int, int, int], segs: tuple[float, ...], start: float
) -> np.ndarray:
    """Arc-length positions (from the proximal joint) of a digit's rings after its base."""
    (k1, k2, k3), (l1, l2, l3) = counts, segs
    s = [start + (l1 - start) * (i + 1) / k1 for i in range(k1)]
    s += [l1 + l2 * (i + 1) / k2 for i in range(k2)]
    tip_fracs = {3: (0.36, 0.70, 0.91), 2: (0.5, 0.88)}[k3]
    s += [l1 + l2 + l3 * t for t in tip_fracs]
    return np.array(s)


def _finger_profile(
    s: np.ndarray, segs: tuple[float, ...], r_base: float, r_tip: float
) -> np.ndarray:
    """Half-width of a finger at arc length ``s``: a taper with knuckle swellings and a
    rounded tip (the last ring shrinks towards the apex)."""
    l1, l2, l3 = segs
    total = l1 + l2 + l3
    r = r_base + (r_tip - r_base) * np.clip(s / (l1 + l2), 0.0, 1.0)
    for joint in (l1, l1 + l2):
        r = r * (1.0 + 0.05 * np.exp(-(((s - joint) / 0.006) ** 2)))
    cap = 0.95 * r_tip  # a near-spherical fingertip of this radius
    depth = np.clip(total - s, 0.0, None)
    inside = depth < cap
    r = np.where(inside, np.sqrt(np.clip(cap**2 - (cap - depth) ** 2, 0.0, None)) * 1.02, r)
    return r


def _hand_geometry(p: HandProportions) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) and joints (16, 3) of one hand shape in internal (u, v, w) metres,
    before smoothing."""
    topo = _topology()
    sk = _skeleton(p)
    g = p.scale
    verts = np.zeros((topo.num_vertices, 3))
    tokens, _ = _palm_columns()

    # --- knuckle ring: finger base loops with shared crotch points
    centre = {}
    for f in FINGERS:
        mcp = sk.joints[DIGIT_JOINTS[f][0]]
        centre[f] = mcp + BASE_OFFSET * g * sk.axis[f]
    knuckle = np.zeros((N_PALM, 3))
    for c, tok in enumerate(tokens):
        if tok[0] == "crotch":
            _, side, a, b = tok
            mid = 0.5 * (centre[a] + centre[b])
            u = 0.5 * (centre[a][0] + centre[b][0]) + WEB_OFFSET * g
            v = (CROTCH_DORSAL if side == "dorsal" else CROTCH_PALMAR) * g * p.palm_thickness
            knuckle[c] = (u, mid[1] + v, mid[2])
    neighbours = {"index": (None, "middle"), "middle": ("index", "ring"),
                  "ring": ("middle", "pinky"), "pinky": ("ring", None)}  # fmt: skip
    loop_angles = {}
    for f in FINGERS:
        cols = topo.loop_cols[f]
        cw = centre[f]
        rad_nb, uln_nb = neighbours[f]
        half_rad = (LOOP_OUTER[f] * g * p.palm_width if rad_nb is None
                    else 0.5 * abs(centre[rad_nb][2] - cw[2]))  # fmt: skip
        half_uln = (LOOP_OUTER[f] * g * p.palm_width if uln_nb is None
                    else 0.5 * abs(centre[uln_nb][2] - cw[2]))  # fmt: skip
        hd, hp = LOOP_DORSAL * g * p.palm_thickness, LOOP_PALMAR * g * p.palm_thickness
        vc = -0.0005 * g
        # angles of the crotch points seen from this finger's centre, normalised
        is_crotch = np.array([tokens[c][0] == "crotch" for c in cols])
        ang = np.zeros(N_FINGER)
        for i, c in enumerate(cols):
            if is_crotch[i]:
                dw, dv = knuckle[c][2] - cw[2], knuckle[c][1] - (cw[1] + vc)
                sw = half_rad if dw > 0 else half_uln
                sv = hd if dv > 0 else hp
                ang[i] = np.arctan2(dv / sv, dw / sw)
        # own vertices: evenly spaced in angle between the surrounding crotch points
        ang = np.unwrap(np.where(is_crotch, ang, 0.0))
        i = 0
        while i < N_FINGER:
            if is_crotch[i]:
                i += 1
                continue
            j = i
            while j < N_FINGER and not is_crotch[j]:
                j += 1
            prev_a = ang[i - 1] if i > 0 else ang[N_FINGER - 1] - 2 * np.pi
            next_a = ang[j] if j < N_FINGER else ang[0] + 2 * np.pi
            while next_a <= prev_a:
                next_a += 2 * np.pi
            run = np.arange(1, j - i + 1) / (j - i + 1)
            ang[i:j] = prev_a + (next_a - prev_a) * run
            i = j
        ang = np.unwrap(ang)
        if ang[-1] < ang[0]:
            raise AssertionError("finger loop angles must increase")
        loop_angles[f] = ang
        for i, c in enumerate(cols):
            if is_crotch[i]:
                continue
            a = ang[i]
            sw = half_rad if np.cos(a) > 0 else half_uln
            sv = hd if np.sin(a) > 0 else hp
            wv = _superellipse(np.array(a), sw, sv, 2.6)
            knuckle[c] = (cw[0], cw[1] + vc + wv[1], cw[2] + wv[0])

    # --- palm rings: each column keeps its arc-length fraction around the knuckle ring,
    # measured from the radial-most column (polar angles are not monotonic on the scalloped
    # knuckle ring)
    kw, kv = knuckle[:, 2], knuckle[:, 1]
    start = WRIST_COLS[0]
    order = np.roll(np.arange(N_PALM), -start)
    seg = np.hypot(np.diff(kw[order], append=kw[start]), np.diff(kv[order], append=kv[start]))
    frac = np.empty(N_PALM)
    frac[order] = np.concatenate([[0.0], np.cumsum(seg)[:-1]]) / seg.sum()
    kc_w, kc_v = 0.5 * (kw.max() + kw.min()), 0.5 * (kv.max() + kv.min())
    ka_w, ka_v = 0.5 * (kw.max() - kw.min()), 0.5 * (kv.max() - kv.min())
    theta0 = np.arctan2((kv[start] - kc_v) / ka_v, (kw[start] - kc_w) / ka_w)
    dense = theta0 + np.linspace(0.0, 2.0 * np.pi, 721)
    u_wrist = WRIST_U * g * p.palm_length
    for r, t in enumerate(PALM_RING_T):
        hw = np.interp(t, PALM_T, PALM_HALF_WIDTH) * g * p.palm_width
        ht = np.interp(t, PALM_T, PALM_HALF_THICK) * g * p.palm_thickness
        cw = np.interp(t, PALM_T, PALM_CENTRE_W) * g * p.palm_width
        cv = np.interp(t, PALM_T, PALM_CENTRE_V) * g * p.palm_thickness
        ex = np.interp(t, PALM_T, PALM_EXPONENT)
        curve = _superellipse(dense, hw, ht, ex)
        length = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=1))])
        theta = np.interp(frac * length[-1], length, dense)
        wv = _superellipse(theta, hw, ht, ex)
        blend = t**4
        ring = np.stack([u_wrist + t * (knuckle[:, 0] - u_wrist),
                         (1 - blend) * (cv + wv[:, 1]) + blend * kv,
                         (1 - blend) * (cw + wv[:, 0]) + blend * kw], -1)  # fmt: skip
        ids = topo.palm[r]
        verts[ids[ids >= 0]] = ring[ids >= 0]
    verts[topo.palm[len(PALM_RING_T)]] = knuckle

    # --- fingers
    e_v = np.array([0.0, 1.0, 0.0])
    for k, f in enumerate(FINGERS, start=1):
        axis = sk.axis[f]
        e_w = np.cross(axis, e_v)  # radial, perpendicular to the finger
        segs = sk.segments[f]
        s = _ring_positions(RING_COUNTS[f], segs, BASE_OFFSET * g)
        rb, rt = (x * g * sk.radius[f] for x in FINGER_RADIUS[f])
        rw = _finger_profile(s, segs, rb, rt)
        base = loop_angles[f]
        target = _uniform_angles(base)
        for i, (si, ri) in enumerate(zip(s, rw, strict=True)):
            beta = min(1.0, 0.55 + 0.3 * i)
            a = base + beta * (target - base)
            c = sk.joints[DIGIT_JOINTS[f][0]] + si * axis
            radial = ri * np.cos(a)[:, None] * e_w
            pts = c + radial + THICKNESS_RATIO * ri * np.sin(a)[:, None] * e_v
            verts[topo.rings[f][i]] = pts
        verts[topo.apex[f]] = sk.tips[f]
        del k

    # --- thumb: rings grow out of the hole in the palm
    hole = verts[topo.hole]
    h_mean = hole.mean(0)
    _, _, vt = np.linalg.svd(hole - h_mean)
    n_h = vt[2] * np.sign(np.dot(vt[2], h_mean - np.array([h_mean[0], 0.0, 0.0])))
    nail = _unit(np.array(THUMB_NAIL))
    e1_h = _unit(nail - np.dot(nail, n_h) * n_h)
    e2_h = np.cross(n_h, e1_h)
    rel = hole - h_mean
    psi = np.unwrap(np.arctan2(rel @ e2_h, rel @ e1_h))
    sense = 1.0 if psi[-1] > psi[0] else -1.0
    steps = sense * 2.0 * np.pi * np.arange(N_THUMB) / N_THUMB
    psi_u = np.mean(psi - steps) + steps
    segs = sk.segments["thumb"]
    joints_t = [sk.joints[13], sk.joints[14], sk.joints[15], sk.tips["thumb"]]
    cum = np.array([0.0, segs[0], segs[0] + segs[1], sum(segs)])
    s_hole = float(np.dot(h_mean - joints_t[0], _unit(joints_t[1] - joints_t[0])))
    s = _ring_positions(RING_COUNTS["thumb"], segs, max(s_hole, 0.0))
    radii = np.interp(
        s,
        [s[0], s[1], segs[0], segs[0] + 0.5 * segs[1], segs[0] + segs[1], sum(segs)],
        np.array(THUMB_RADIUS) * g * sk.radius["thumb"],
    )
    cap_r = 0.95 * THUMB_RADIUS[-1] * g * sk.radius["thumb"]
    depth = np.clip(sum(segs) - s, 0.0, None)
    radii = np.where(depth < cap_r, np.sqrt(np.clip(cap_r**2 - (cap_r - depth) ** 2, 0, None))
                     * 1.02, radii)  # fmt: skip
    for i, si in enumerate(s):
        seg = min(int(np.searchsorted(cum, si, side="right")) - 1, 2)
        c = joints_t[seg] + (si - cum[seg]) * _unit(joints_t[seg + 1] - joints_t[seg])
        # direction blended across joints for smooth bends
        d = _unit(np.interp(si, cum[1:3], [0, 1]) * 0 + (joints_t[seg + 1] - joints_t[seg]))
        e1 = _unit(nail - np.dot(nail, d) * d)
        e2 = np.cross(d, e1)
        beta = min(1.0, 0.35 + 0.3 * i)
        a = psi + beta * (psi_u - psi)
        ell = c + radii[i] * (np.cos(a)[:, None] * e1 + 0.9 * np.sin(a)[:, None] * e2)
        gamma = min(1.0, 0.45 + 0.35 * i)
        moved = hole + (c - h_mean)
        verts[topo.rings["thumb"][i]] = (1 - gamma) * moved + gamma * ell
    verts[topo.apex["thumb"]] = sk.tips["thumb"]

    # --- wrist cap midline, slightly domed
    e_rad, e_uln = (verts[topo.palm[0, c]] for c in WRIST_COLS)
    k = len(topo.cap)
    t = np.arange(1, k + 1) / (k + 1)
    mid = e_rad + t[:, None] * (e_uln - e_rad)
    mid[:, 1] = np.interp(0.0, PALM_T, PALM_CENTRE_V) * g
    mid[:, 0] -= 0.006 * g * np.sin(np.pi * t)
    verts[topo.cap] = mid
    return verts, sk.joints


def _to_output_frame(points: np.ndarray) -> np.ndarray:
    """Internal (u, v, w) = (distal, dorsal, radial) -> output (x, y, z) = (-u, v, w)."""
    out = points.copy()
    out[..., 0] *= -1.0
    return out


def _template(p: HandProportions) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed vertices (V, 3) and designed joints (16, 3) of one hand shape, output frame,
    metres."""
    verts, joints = _hand_geometry(p)
    return _to_output_frame(_taubin(verts, SMOOTHING_ITERATIONS)), _to_output_frame(joints)


SMOOTHING_ITERATIONS = 10


# ---------------------------------------------------------------------------------------
# Rig: joint regressor and skinning weights


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """0 for x <= -1, 1 for x >= 1, C1-smooth in between."""
    t = np.clip(0.5 * (x + 1.0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _digit_ring_arclengths(p: HandProportions) -> dict[str, np.ndarray]:
    """Arc length from each digit's proximal joint of its rings after the base, metres."""
    sk = _skeleton(p)
    out = {}
    for f in FINGERS:
        out[f] = _ring_positions(RING_COUNTS[f], sk.segments[f], BASE_OFFSET * p.scale)
    # the thumb's first ring starts where the hole is; its weights use ring indices instead
    out["thumb"] = _ring_positions(RING_COUNTS["thumb"], sk.segments["thumb"], 0.0)
    return out


def _skinning_weights(p: HandProportions) -> np.ndarray:
    """(V, 16) skinning weights: piecewise along each digit, smooth across joints, then a few
    diffusion steps on the mesh graph. Rows are nonnegative and sum to 1."""
    topo = _topology()
    sk = _skeleton(p)
    g = p.scale
    weights = np.zeros((topo.num_vertices, NUM_JOINTS))
    weights[:, 0] = 1.0  # palm and wrist cap follow the wrist
    tokens, _ = _palm_columns()
    arcs = _digit_ring_arclengths(p)

    def chain(s: np.ndarray, breaks: tuple[float, ...], widths: tuple[float, ...],
              joints: tuple[int, ...]) -> np.ndarray:  # fmt: skip
        steps = [_smoothstep((s - b) / w) for b, w in zip(breaks, widths, strict=True)]
        steps = [np.ones_like(s)] + steps + [np.zeros_like(s)]
        w = np.zeros((len(s), NUM_JOINTS))
        for k, j in enumerate(joints):
            w[:, j] += steps[k] - steps[k + 1]
        return w

    for f in FINGERS:
        j0, j1, j2 = DIGIT_JOINTS[f]
        l1, l2, _ = sk.segments[f]
        breaks, widths = (0.0, l1, l1 + l2), (0.012 * g, 0.006 * g, 0.005 * g)
        joints = (0, j0, j1, j2)
        rings = topo.rings[f]
        s = np.repeat(arcs[f], rings.shape[1])
        weights[rings.ravel()] = chain(s, breaks, widths, joints)
        weights[topo.apex[f]] = 0.0
        weights[topo.apex[f], j2] = 1.0
        # base loop and the palm behind it: arc length along the finger from the MCP
        mcp = sk.joints[j0]
        for c in topo.loop_cols[f]:
            share = 0.5 if tokens[c][0] == "crotch" else 1.0
            for r in range(topo.palm.shape[0]):
                vid = topo.palm[r, c]
                if vid < 0:
                    continue
                if r == topo.palm.shape[0] - 1:
                    s_v = BASE_OFFSET * g + (WEB_OFFSET * g if share < 1.0 else 0.0)
                else:
                    s_v = float(np.dot(_hand_point(topo, p, vid) - mcp, sk.axis[f]))
                w_f = chain(np.array([s_v]), breaks, widths, joints)[0]
                if weights[vid, 0] == 1.0 and share < 1.0:
                    weights[vid] = 0.0
                if share < 1.0:
                    weights[vid] += share * w_f
                else:
                    weights[vid] = w_f
    # thumb: hole boundary half palm, first ring mostly metacarpal, then along the chain
    l1, l2, _ = sk.segments["thumb"]
    weights[topo.hole] = 0.0
    weights[topo.hole, 0] = 0.5
    weights[topo.hole, 13] = 0.5
    rings = topo.rings["thumb"]
    s = np.repeat(arcs["thumb"], rings.shape[1])
    w_t = chain(s, (l1, l1 + l2), (0.007 * g, 0.006 * g), (13, 14, 15))
    w_t[: rings.shape[1]] *= 0.85
    w_t[: rings.shape[1], 0] += 0.15
    weights[rings.ravel()] = w_t
    weights[topo.apex["thumb"]] = 0.0
    weights[topo.apex["thumb"], 15] = 1.0

    nbr = _neighbour_matrix()
    for _ in range(3):
        weights = 0.5 * weights + 0.5 * (nbr @ weights)
    weights[weights < 1e-4] = 0.0
    return weights / weights.sum(1, keepdims=True)


@functools.lru_cache(maxsize=4)
def _geometry_cached(p: HandProportions) -> np.ndarray:
    return _hand_geometry(p)[0]


def _hand_point(topo: _Topology, p: HandProportions, vid: int) -> np.ndarray:
    """Unsmoothed position of one vertex, internal (u, v, w) frame."""
    del topo
    return _geometry_cached(p)[vid]


def _regressor_sets(p: HandProportions) -> list[np.ndarray]:
    """For each joint, the vertex ids whose convex combination defines it: the rings
    around it (palm rings for the wrist, the base loop and the palm ring behind it for an
    MCP, the ring at the joint and its neighbours along a digit)."""
    topo = _topology()
    n_rings = len(PALM_RING_T)
    palm = topo.palm
    sets: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * NUM_JOINTS
    sets[0] = np.concatenate([palm[0], palm[1][palm[1] >= 0]])
    for f in FINGERS:
        j0, j1, j2 = DIGIT_JOINTS[f]
        k1, k2, _ = RING_COUNTS[f]
        rings = topo.rings[f]
        behind = palm[n_rings - 1, topo.loop_cols[f]]
        sets[j0] = np.concatenate([topo.loops[f], behind])
        sets[j1] = rings[k1 - 2 : k1 + 1].ravel()
        sets[j2] = rings[k1 + k2 - 2 : k1 + k2 + 1].ravel()
    k1, k2, _ = RING_COUNTS["thumb"]
    rings = topo.rings["thumb"]
    around = palm[HOLE_RINGS[0] : HOLE_RINGS[1] + 1].ravel()
    sets[13] = np.unique(np.concatenate([around[around >= 0], rings[0]]))
    sets[14] = rings[k1 - 2 : k1 + 1].ravel()
    sets[15] = rings[k1 + k2 - 2 : k1 + k2 + 1].ravel()
    return sets


def _joint_regressor(vertices: np.ndarray, joints: np.ndarray, p: HandProportions) -> np.ndarray:
    """(16, V) nonnegative rows summing to 1 with ``J_regressor @ vertices ~= joints``.

    Each row is the convex combination of the joint's vertex set closest (least squares) to
    a distance-weighted prior, with the reproduction constraint enforced by a heavy
    penalty (nonnegative least squares).
    """
    reg = np.zeros((NUM_JOINTS, len(vertices)))
    for j, ids in enumerate(_regressor_sets(p)):
        pts = vertices[ids]
        d2 = np.sum((pts - joints[j]) ** 2, axis=1)
        prior = np.exp(-d2 / (2.0 * 0.012**2))
        prior /= prior.sum()
        rho = 1e4
        rel = (pts - joints[j]).T / 0.01  # centimetres relative to the joint
        lhs = np.vstack([rho * rel, rho * np.ones((1, len(ids))), np.eye(len(ids))])
        rhs = np.concatenate([np.zeros(3), [rho], prior])
        w, _ = nnls(lhs, rhs, maxiter=50 * len(ids))
        w /= w.sum()
        err = np.linalg.norm(w @ pts - joints[j])
        if err > 1e-6:
            raise AssertionError(f"joint {j} is not inside its vertex ring ({err * 1e3:.3f} mm)")
        reg[j, ids] = w
    return reg


# ---------------------------------------------------------------------------------------
# Natural finger poses and the pose PCA

#: Joint limits used by the pose sampler, degrees, in each joint's anatomical frame
#: (flexion +, abduction + towards the thumb for fingers; twist). Fingers: MCP, PIP, DIP.
FINGER_FLEX_LIMITS = ((-25.0, 90.0), (-5.0, 110.0), (-10.0, 80.0))
FINGER_ABDUCTION_LIMIT = 25.0
THUMB_FLEX_LIMITS = ((-15.0, 50.0), (-10.0, 70.0), (-15.0, 85.0))  # CMC, MCP, IP


def _anatomical_axes(joints: np.ndarray, tips: np.ndarray) -> np.ndarray:
    """(15, 3, 3) unit axes per joint 1..15, output frame: rows = (flexion, abduction,
    twist). Flexion curls the digit towards the palm, abduction moves it towards the thumb
    (for the thumb: away from the palm), twist is about the bone.

    Args:
        joints: (16, 3) rest joints; tips: (5, 3) fingertips (thumb, index, middle, ring,
            pinky), metres.
    """
    palmar, radial = np.array([0.0, -1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    axes = np.zeros((15, 3, 3))
    tip_of = dict(zip(DIGITS, tips, strict=True))
    for d in DIGITS:
        ids = DIGIT_JOINTS[d]
        ends = [joints[ids[1]], joints[ids[2]], tip_of[d]]
        for k, j in enumerate(ids):
            bone = _unit(ends[k] - joints[j])
            if d == "thumb":
                pulp = _unit(np.array([0.0, -0.85, -0.55]))  # the thumb pad faces the fingers
                pulp = _unit(pulp - np.dot(pulp, bone) * bone)
                flex = _unit(np.cross(bone, pulp))
                abd = _unit(np.cross(bone, palmar))
            else:
                flex = _unit(np.cross(bone, palmar))
                abd = _unit(np.cross(bone, radial))
            axes[j - 1] = (flex, abd, bone)
    return axes


def _compose_axis_angles(axes: np.ndarray, angles_deg: np.ndarray) -> np.ndarray:
    """Rotation flex(a0) * abduct(a1) * twist(a2) about each joint's axes, as axis-angle.

    Args:
        axes: (15, 3, 3) from :func:`_anatomical_axes`; angles_deg: (N, 15, 3).

    Returns:
        (N, 45) axis-angle (radians), MANO's hand_pose layout.
    """
    n = angles_deg.shape[0]
    rad = np.deg2rad(angles_deg)
    rot = None
    for k in range(3):
        vec = rad[:, :, k, None] * axes[None, :, k, :]
        r = Rotation.from_rotvec(vec.reshape(-1, 3))
        rot = r if rot is None else rot * r
    return rot.as_rotvec().reshape(n, 45)


def sample_natural_poses(
    rng: np.random.Generator, num: int, joints: np.ndarray, tips: np.ndarray
) -> np.ndarray:
    """Sample plausible finger poses: a shared grasp level curls all fingers (ulnar ones a
    little more), flexion is correlated along each finger (DIP ~ 0.7 PIP), fingers splay
    together when open and converge when curled, some fingers are pointed out, the thumb
    opposes and flexes with the grasp; every angle is clipped to the joint limits above.

    Args:
        rng: numpy random generator; num: number of poses.
        joints: (16, 3) rest joints; tips: (5, 3) fingertips (thumb first), metres.

    Returns:
        (num, 45) axis-angle of joints 1..15 (MANO's ``hand_pose``), radians, in the rest
        frame (MANO's local convention).
    """
    axes = _anatomical_axes(joints, tips)
    ang = np.zeros((num, 15, 3))
    grasp = rng.beta(2.0, 2.6, size=num)
    spread = rng.normal(0.15, 0.8, size=num)
    bias = {"index": -0.06, "middle": 0.0, "ring": 0.04, "pinky": 0.08}
    spread_gain = {"index": 7.0, "middle": 1.5, "ring": -5.0, "pinky": -10.0}
    converge = {"index": -3.0, "middle": 0.0, "ring": 4.0, "pinky": 9.0}
    for f in FINGERS:
        j0 = DIGIT_JOINTS[f][0] - 1
        curl = np.clip(grasp + bias[f] + rng.normal(0.0, 0.12, num), 0.0, 1.0)
        pointed = rng.random(num) < 0.08
        curl = np.where(pointed, rng.uniform(0.0, 0.12, num), curl)
        (m_lo, m_hi), (p_lo, p_hi), (d_lo, d_hi) = FINGER_FLEX_LIMITS
        mcp = -12.0 + 100.0 * curl + rng.normal(0.0, 6.0, num)
        pip = -2.0 + 105.0 * np.clip(curl + rng.normal(0.0, 0.08, num), 0.0, 1.0)
        pip = np.clip(pip, p_lo, p_hi)
        dip = np.clip(0.7 * pip + rng.normal(0.0, 6.0, num), d_lo, d_hi)
        abd = spread_gain[f] * spread * (1.0 - 0.7 * curl) + converge[f] * curl
        abd = abd + rng.normal(0.0, 3.0, num)
        lim = FINGER_ABDUCTION_LIMIT
        ang[:, j0] = np.stack([np.clip(mcp, m_lo, m_hi), np.clip(abd, -lim, lim),
                               rng.normal(0.0, 3.0, num)], -1)  # fmt: skip
        for k, flex in ((1, pip), (2, dip)):
            ang[:, j0 + k] = np.stack([flex, rng.normal(0.0, 1.5, num),
                                       rng.normal(0.0, 1.5, num)], -1)  # fmt: skip
    oppose = np.clip(0.6 * grasp + 0.15 + rng.normal(0.0, 0.2, num), 0.0, 1.0)
    bend = np.clip(0.7 * grasp + 0.1 + rng.normal(0.0, 0.15, num), 0.0, 1.0)
    (c_lo, c_hi), (m_lo, m_hi), (i_lo, i_hi) = THUMB_FLEX_LIMITS
    # CMC: flexion across the palm, palmar abduction, pronation, all growing with opposition
    ang[:, 12] = np.stack(
        [
            np.clip(-5.0 + 30.0 * oppose + rng.normal(0, 7, num), c_lo, c_hi),
            np.clip(5.0 + 35.0 * oppose + rng.normal(0, 5, num), -10, 50),
            np.clip(30.0 * oppose + rng.normal(0, 6, num), -15, 45),
        ],
        -1,
    )
    ang[:, 13] = np.stack([np.clip(5.0 + 45.0 * bend + rng.normal(0, 7, num), m_lo, m_hi),
                           rng.normal(0, 3, num), rng.normal(0, 3, num)], -1)  # fmt: skip
    ang[:, 14] = np.stack([np.clip(5.0 + 60.0 * bend + rng.normal(0, 8, num), i_lo, i_hi),
                           rng.normal(0, 2, num), rng.normal(0, 2, num)], -1)  # fmt: skip
    return _compose_axis_angles(axes, ang)


def _pose_pca(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(45,) mean and (45, 45) components (rows, by decreasing variance, each scaled by the
    square root of its eigenvalue; the largest-magnitude entry of each row is positive)."""
    mean = poses.mean(0)
    cov = np.cov(poses - mean, rowvar=False)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1]
    evals, evecs = np.clip(evals[order], 0.0, None), evecs[:, order]
    comps = evecs.T * np.sqrt(evals)[:, None]
    sign = np.sign(comps[np.arange(45), np.abs(comps).argmax(1)])
    return mean, comps * sign[:, None]


# ---------------------------------------------------------------------------------------
# Pose correctives: dual-quaternion skinning vs linear blend skinning


def _quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz,
                        aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw], -1)  # fmt: skip


def _dual_quaternion_skinning(vertices: torch.Tensor, weights: torch.Tensor,
                              transforms: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Dual-quaternion skinning (Kavan et al. 2007).

    Args:
        vertices: (V, 3) rest vertices; weights: (V, J); transforms: (B, J, 3, 4) rigid.

    Returns:
        (B, V, 3) skinned vertices.
    """
    real = matrix_to_quaternion(transforms[..., :3])  # (B, J, 4)
    t = transforms[..., 3]
    dual = 0.5 * _quat_mul(torch.cat([torch.zeros_like(t[..., :1]), t], -1), real)
    pivot = weights.argmax(1)  # antipodality is resolved against each vertex's main joint
    sign = torch.sign((real[:, pivot, None, :] * real[:, None, :, :]).sum(-1))  # (B, V, J)
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    wv = weights[None] * sign
    b_real = torch.einsum("bvj,bjk->bvk", wv, real)
    b_dual = torch.einsum("bvj,bjk->bvk", wv, dual)
    norm = b_real.norm(dim=-1, keepdim=True)
    b_real, b_dual = b_real / norm, b_dual / norm
    w, xyz = b_real[..., :1], b_real[..., 1:]
    dw, dxyz = b_dual[..., :1], b_dual[..., 1:]
    trans = 2.0 * (w * dxyz - dw * xyz + torch.linalg.cross(xyz, dxyz, dim=-1))
    v = vertices[None].expand_as(trans)
    uv = torch.linalg.cross(xyz, v, dim=-1)
    rotated = v + 2.0 * w * uv + 2.0 * torch.linalg.cross(xyz, uv, dim=-1)
    return rotated + trans


def _pose_correctives(vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray,
                      poses: np.ndarray, ridge: float = 1.0) -> np.ndarray:  # fmt: skip
    """(V, 3, 135) posedirs: per vertex, ridge regression from the pose feature of the joints
    that move it to the rest-space offset that makes LBS reproduce dual-quaternion skinning.

    Args:
        vertices: (V, 3) template; joints: (16, 3); weights: (V, 16); poses: (N, 45) finger
            axis-angle (global orientation is rigid and adds nothing).
    """
    dt = torch.float64
    v = torch.as_tensor(vertices, dtype=dt)
    w = torch.as_tensor(weights, dtype=dt)
    jr = torch.as_tensor(joints, dtype=dt)[None].expand(len(poses), -1, -1)
    full = np.concatenate([np.zeros((len(poses), 3)), poses], 1).reshape(-1, NUM_JOINTS, 3)
    rot = axis_angle_to_matrix(torch.as_tensor(full, dtype=dt))
    levels = [(torch.as_tensor(a), torch.as_tensor(b)) for a, b in kinematic_levels(MANO_PARENTS)]
    frame_rot, frame_pos = forward_kinematics(rot, jr, levels)
    transforms = skinning_transforms(frame_rot, frame_pos, jr)
    blended = torch.einsum("vj,bjrc->bvrc", w, transforms)  # (B, V, 3, 4) per-vertex [R | t]
    lbs = (blended[..., :3] @ v[None, :, :, None]).squeeze(-1) + blended[..., 3]
    dqs = _dual_quaternion_skinning(v, w, transforms)
    blended = blended[..., :3]
    offset = torch.linalg.solve(blended, (dqs - lbs).unsqueeze(-1)).squeeze(-1)  # rest space
    feats = pose_feature(rot).numpy()  # (B, 135)
    offset = offset.numpy()  # (B, V, 3)
    posedirs = np.zeros((len(vertices), 3, 9 * (NUM_JOINTS - 1)))
    movers = [tuple(j for j in np.flatnonzero(weights[i] > 1e-3) if j > 0)
              for i in range(len(vertices))]  # fmt: skip
    for group in sorted(set(movers)):
        if not group:
            continue
        ids = [i for i, m in enumerate(movers) if m == group]
        cols = np.concatenate([np.arange(9 * (j - 1), 9 * j) for j in group])
        x = feats[:, cols]
        y = offset[:, ids].reshape(len(poses), -1)
        coef = np.linalg.solve(x.T @ x + ridge * np.eye(len(cols)), x.T @ y)  # (C, n*3)
        posedirs[np.ix_(ids, [0, 1, 2], cols)] = coef.T.reshape(len(ids), 3, len(cols))
    return posedirs


# ---------------------------------------------------------------------------------------
# Shape space


def sample_proportions(rng: np.random.Generator, num: int) -> list[HandProportions]:
    """Sample adult hand proportions: size (coefficient of variation ~6.5%), palm length,
    width and thickness, digit lengths (a shared and a per-digit part), phalanx proportions
    and digit thickness (a shared and a per-digit part)."""
    out = []
    for _ in range(num):
        common_len = rng.normal(0.0, 0.03)
        common_thick = rng.normal(0.0, 0.06)
        out.append(
            HandProportions(
                scale=float(np.clip(rng.normal(1.0, 0.065), 0.8, 1.2)),
                palm_length=float(rng.normal(1.0, 0.03)),
                palm_width=float(rng.normal(1.0, 0.04)),
                palm_thickness=float(rng.normal(1.0, 0.07)),
                digit_length=tuple(1.0 + common_len + rng.normal(0.0, 0.02, 5)),
                proximal_share=tuple(rng.normal(1.0, 0.025, 5)),
                digit_thickness=tuple(1.0 + common_thick + rng.normal(0.0, 0.025, 5)),
            )
        )
    return out


def _shape_space(template: np.ndarray, shapes: list[HandProportions], num: int,
                 length_of: callable) -> np.ndarray:  # fmt: skip
    """(V, 3, num) PCA of vertex displacements from ``template`` over ``shapes``, each
    component scaled by its standard deviation. Component 0 is signed so that it lengthens
    the hand (``length_of(vertices) -> metres``), the others so that their largest entry
    is positive."""
    raw = np.stack([_hand_geometry(p)[0] for p in shapes], axis=-1)  # (V, 3, N) internal
    raw = _taubin(raw.reshape(len(template), -1), SMOOTHING_ITERATIONS).reshape(raw.shape)
    raw[:, 0] *= -1.0  # to the output frame
    disp = (raw - template[:, :, None]).reshape(-1, len(shapes)).T  # (N, V*3)
    _, sing, vt = np.linalg.svd(disp, full_matrices=False)
    std = sing[:num] / np.sqrt(len(shapes))
    comps = vt[:num] * std[:, None]  # (num, V*3)
    for k in range(num):
        if k == 0:
            c = comps[0].reshape(-1, 3)
            flip = length_of(template + c) < length_of(template - c)
        else:
            flip = comps[k][np.abs(comps[k]).argmax()] < 0
        if flip:
            comps[k] *= -1.0
    return comps.T.reshape(len(template), 3, num)


# ---------------------------------------------------------------------------------------
# The model


def build_open_hand(seed: int = 0) -> dict[str, np.ndarray]:
    """Build the open right hand in MANO's format.

    Args:
        seed: seeds the shape, pose and pose-corrective samples.

    Returns:
        A dict with MANO's keys, ready for :func:`hand_lib.mano.io.save_model_file` and
        ``smplx.MANO``: ``v_template (778, 3)`` m, ``f (1552, 3)`` int64, ``J_regressor``
        (16, 778) ``scipy.sparse.csc_matrix``, ``J (16, 3)`` m (= ``J_regressor @
        v_template``), ``kintree_table (2, 16)`` int64, ``weights (778, 16)``,
        ``shapedirs (778, 3, 10)`` m, ``posedirs (778, 3, 135)`` m, ``hands_components
        (45, 45)`` rad (rows scaled by sqrt(eigenvalue)), ``hands_mean (45,)`` rad,
        ``bs_style``, ``bs_type``, and ``tip_vertex_ids (5,)`` int64 (thumb, index,
        middle, ring, pinky). Float arrays are float64 rounded to :data:`DECIMALS`.
    """
    rng = np.random.default_rng(seed)
    topo = _topology()
    mean_hand = HandProportions()
    v_template, joints = _template(mean_hand)
    faces = topo.faces
    if signed_volume(v_template, faces) < 0:
        faces = faces[:, ::-1].copy()
    tip_ids = np.array([topo.apex[d] for d in DIGITS], dtype=np.int64)

    regressor = _joint_regressor(v_template, joints, mean_hand)
    weights = _skinning_weights(mean_hand)

    middle_tip = topo.apex["middle"]

    def hand_length(v: np.ndarray) -> float:
        return float(np.linalg.norm(v[middle_tip] - regressor[0] @ v))

    shapedirs = _shape_space(v_template, sample_proportions(rng, SHAPE_SAMPLES), NUM_BETAS,
                             hand_length)  # fmt: skip

    tips = v_template[tip_ids]
    poses = sample_natural_poses(rng, POSE_SAMPLES, joints, tips)
    hands_mean, hands_components = _pose_pca(poses)
    # correctives are fitted on natural poses and on poses with independent joints, so
    # that they do not depend on the correlations between fingers
    wide = sample_natural_poses(rng, CORRECTIVE_SAMPLES, joints, tips)
    per_joint = wide.reshape(-1, 15, 3)
    mixed = np.stack([per_joint[rng.permutation(len(wide)), j] for j in range(15)], axis=1)
    fit_poses = np.concatenate([wide, mixed.reshape(-1, 45)])
    posedirs = _pose_correctives(v_template, joints, weights, fit_poses)

    def r(a: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(a, dtype=np.float64), DECIMALS) + 0.0  # no negative zeros

    v_template = r(v_template)
    reg = scipy.sparse.csc_matrix(r(regressor))
    reg.eliminate_zeros()
    kintree = np.stack([np.array(MANO_PARENTS, dtype=np.int64) % (2**32),
                        np.arange(NUM_JOINTS, dtype=np.int64)])  # fmt: skip
    return {
        "v_template": v_template,
        "f": faces.astype(np.int64),
        "J_regressor": reg,
        "J": r(reg @ v_template),
        "kintree_table": kintree,
        "weights": r(weights),
        "shapedirs": r(shapedirs),
        "posedirs": r(posedirs),
        "hands_components": r(hands_components),
        "hands_mean": r(hands_mean),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        "tip_vertex_ids": tip_ids,
    }


SHAPE_SAMPLES = 240
POSE_SAMPLES = 20000
CORRECTIVE_SAMPLES = 250


def mirror_to_left(data: dict) -> dict:
    """The exact mirror image (x -> -x) of a right-hand MANO dict: a left hand.

    ``v_template``/``J`` and the x-component of ``shapedirs`` are negated; faces are
    rewound; a pose corrective for feature (joint, i, j) and coordinate c is multiplied by
    m_c m_i m_j with m = (-1, 1, 1) (the mirrored rotation is M R M); axis-angle poses
    (``hands_mean``, rows of ``hands_components``) become (x, -y, -z) per joint;
    ``weights``, ``J_regressor``, ``kintree_table`` and ``tip_vertex_ids`` are unchanged.
    Applying it twice gives the input back.

    Args:
        data: MANO keys as read from a file (arrays; ``J_regressor`` dense or sparse).

    Returns:
        A new dict with the same keys.
    """
    m = np.array([-1.0, 1.0, 1.0])
    out = dict(data)
    out["v_template"] = np.asarray(data["v_template"]) * m
    if "J" in data:
        out["J"] = np.asarray(data["J"]) * m
    out["f"] = np.asarray(data["f"])[:, ::-1].copy()
    out["shapedirs"] = np.asarray(data["shapedirs"]) * m[None, :, None]
    sign_ij = np.outer(m, m).ravel()  # (9,) m_i m_j, row-major
    n_feat = np.asarray(data["posedirs"]).shape[2]
    feat_sign = np.tile(sign_ij, n_feat // 9)
    out["posedirs"] = np.asarray(data["posedirs"]) * m[None, :, None] * feat_sign[None, None, :]
    aa = np.array([1.0, -1.0, -1.0])
    mean = np.asarray(data["hands_mean"])
    out["hands_mean"] = (mean.reshape(-1, 3) * aa).reshape(mean.shape)
    comps = np.asarray(data["hands_components"])
    out["hands_components"] = (comps.reshape(len(comps), -1, 3) * aa).reshape(comps.shape)
    for k in ("v_template", "J", "shapedirs", "posedirs", "hands_mean", "hands_components"):
        if k in out:
            out[k] = out[k] + 0.0  # no negative zeros
    return out


# ---------------------------------------------------------------------------------------
# Picture


def showcase_poses(data: dict) -> dict[str, np.ndarray]:
    """Named (45,) finger poses (axis-angle, *including* the mean, i.e. for
    ``flat_hand_mean=True``) that show the model: flat, mean, fist (the first PCA
    direction, signed to curl), spread."""
    v = np.asarray(data["v_template"])
    reg = data["J_regressor"]
    joints = np.asarray(reg @ v)
    tips = v[np.asarray(data["tip_vertex_ids"])]
    axes = _anatomical_axes(joints, tips)
    mean = np.asarray(data["hands_mean"])
    comp = np.asarray(data["hands_components"])[0]
    flex_dir = np.concatenate([axes[j, 0] for j in range(15)])
    curl = comp if np.dot(comp, flex_dir) > 0 else -comp
    spread = np.zeros((1, 15, 3))
    for f, abd in {"index": 14.0, "middle": 2.0, "ring": -10.0, "pinky": -22.0}.items():
        j0 = DIGIT_JOINTS[f][0] - 1
        spread[0, j0] = (-12.0, abd, 0.0)
        spread[0, j0 + 1] = (4.0, 0.0, 0.0)
    spread[0, 12] = (-12.0, 8.0, 0.0)
    spread[0, 13] = (-5.0, 0.0, 0.0)
    return {
        "rest (flat)": np.zeros(45),
        "hands_mean": mean,
        "fist (mean + 2.5 PC1)": mean + 2.5 * curl,
        "spread": _compose_axis_angles(axes, spread)[0],
    }


def pose_hand(data: dict, pose: np.ndarray, betas: np.ndarray | None = None,
              correctives: bool = True) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Vertices (V, 3) and joints (16, 3), metres, of the model dict posed with ``pose``
    ((45,) finger axis-angle, mean *not* added; root unrotated), through
    :class:`hand_lib.mano.ManoLayer` (float64)."""
    from hand_lib.mano.io import model_from_arrays
    from hand_lib.mano.layer import ManoLayer

    model = dict(data)
    if not correctives:
        model["posedirs"] = np.zeros_like(np.asarray(data["posedirs"]))
    layer = ManoLayer(model_from_arrays(model), flat_hand_mean=True, dtype=torch.float64)
    full = torch.as_tensor(np.concatenate([np.zeros(3), pose])[None], dtype=torch.float64)
    b = None if betas is None else torch.as_tensor(np.asarray(betas)[None], dtype=torch.float64)
    with torch.no_grad():
        out = layer(full, b)
    return out.vertices[0].numpy(), out.joints[0].numpy()


def render_open_hand_png(path: str | Path, data: dict | None = None, dpi: int = 110) -> Path:
    """Draw the model in a few poses (rows: back and palm views) as a shaded mesh with its
    skeleton and fingertips, and save a PNG.

    Args:
        path: output file. data: a model dict (default: :func:`build_open_hand`'s).
        dpi: resolution.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    data = build_open_hand() if data is None else data
    faces = np.asarray(data["f"])
    tips_ids = np.asarray(data["tip_vertex_ids"])
    poses = showcase_poses(data)
    views = (("back", 50.0, 65.0), ("palm", -45.0, -115.0))
    fig = plt.figure(figsize=(4.2 * len(poses), 4.2 * len(views)))
    for col, (name, pose) in enumerate(poses.items()):
        verts, joints = pose_hand(data, pose)
        tri = verts[faces]
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        centre = 0.5 * (verts.min(0) + verts.max(0))
        half = 0.5 * (verts.max(0) - verts.min(0)).max()
        for row, (view, elev, azim) in enumerate(views):
            ax = fig.add_subplot(len(views), len(poses), row * len(poses) + col + 1,
                                 projection="3d")  # fmt: skip
            ax.view_init(elev=elev, azim=azim, vertical_axis="z")
            e, a = np.deg2rad(elev), np.deg2rad(azim)
            eye = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
            light = _unit(eye + np.array([0.3, 0.3, 0.5]))
            shade = 0.25 + 0.75 * np.clip(normal @ light, 0.0, 1.0)
            colour = np.array([0.93, 0.74, 0.62])[None] * shade[:, None]
            ax.add_collection3d(Poly3DCollection(tri, facecolors=np.clip(colour, 0, 1),
                                                 edgecolors=(0, 0, 0, 0.06),
                                                 linewidths=0.2))  # fmt: skip
            for j, parent in enumerate(MANO_PARENTS):
                if parent >= 0:
                    ax.plot(*zip(joints[parent], joints[j], strict=True), color="tab:blue", lw=1.2)
            for d, tip in zip(DIGITS, tips_ids, strict=True):
                base = joints[DIGIT_JOINTS[d][2]]
                ax.plot(*zip(base, verts[tip], strict=True), color="tab:blue", lw=1.2)
            ax.scatter(*joints.T, color="tab:red", s=8, depthshade=False)
            ax.scatter(*verts[tips_ids].T, color="tab:green", s=8, depthshade=False)
            for k in range(3):
                getattr(ax, f"set_{'xyz'[k]}lim")(centre[k] - half, centre[k] + half)
            ax.set_box_aspect((1, 1, 1))
            ax.set_axis_off()
            ax.set_title(f"{name} - {view}", fontsize=10)
    fig.suptitle("hand_lib open hand model (right hand, 778 vertices)", fontsize=12)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    """Rebuild the shipped model file (and optionally its picture)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--out",
        type=Path,
        default=OPEN_HAND_RIGHT,
        help=f"model file to write (.pkl or .npz; default {OPEN_HAND_RIGHT})",
    )
    parser.add_argument("--render", type=Path, default=None, metavar="PATH",
                        help="also draw the model in a few poses to this PNG")  # fmt: skip
    args = parser.parse_args(argv)
    start = time.perf_counter()
    data = build_open_hand(args.seed)
    path = save_model_file(args.out, data)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) in "
          f"{time.perf_counter() - start:.1f} s")  # fmt: skip
    if args.render is not None:
        print(f"wrote {render_open_hand_png(args.render, data)}")


if __name__ == "__main__":
    main()
