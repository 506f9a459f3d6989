"""Synthetic multi-view hand data written in HanCo's on-disk layout.

Renders the open hand model (or a real MANO file) with 8 calibrated cameras around the hand
and writes what :class:`hand_lib.data.HanCo` reads, named and shaped like the real dataset::

    python -m hand_lib.data.synthetic --profile quick --workers 2
    # -> data/synthetic_hanco/quick (git-ignored)

Layout (``<seq>`` = 4 digits, ``<frame>`` = 8 digits, ``<k>`` = camera 0..7)::

    meta.json                        per-sequence lists of per-frame values: is_train,
                                     subject_id, is_valid (True), object_id (None), has_fit
    rgb/<seq>/cam<k>/<frame>.jpg     hand on a green screen, 224x224 JPEG
    rgb_merged/<seq>/cam<k>/...jpg   the same hand over a cluttered procedural background
    mask_hand/<seq>/cam<k>/...jpg    hand mask (JPEG, 255 = hand; threshold at 128)
    calib/<seq>/<frame>.json         {"K": 8 x 3x3 pixels, "M": 8 x 4x4 world-to-camera}
    xyz/<seq>/<frame>.json           21 x 3 keypoints (FreiHAND order), world, metres
    shape/<seq>/<frame>.json         {"poses": (1, 48), "shapes": (1, 10), "global_t": (1, 3)}
                                     world space, axis-angle, flat_hand_mean=False
    shape/<seq>/cam<k>/<frame>.json  61 values: 48 pose (global rotation in camera k's frame)
                                     + 10 shape + 3 translation in camera k's frame
    visibility/<seq>/cam<k>/<frame>.json   not in HanCo, see below
    synthetic.json                   the generator's configuration (checked on resume)

The MANO fits are exact: ``ManoLayer(model)(poses, shapes, global_t).keypoints == xyz`` (and
the per-camera fit gives the camera-space keypoints) up to float64 rounding.

``visibility/<seq>/cam<k>/<frame>.json`` (used by the pseudo-label simulator)::

    {"uv": 21 x 2 pixels (projection of xyz with K and M, OpenCV pixel centres),
     "depth_m": 21 keypoint depths z, metres,
     "in_image": 21 bool, inside [-0.5, W - 0.5] x [-0.5, H - 0.5] and in front of the camera,
     "occluded": 21 bool, another part of the hand covers the keypoint: the surface seen at
                 its pixel belongs to a part other than the keypoint's own (the bones that
                 meet at it, from the skinning weights) and lies more than "tolerance_m" in
                 front of it, or lies more than 4 cm in front of it whatever the part,
     "visible": 21 bool, in_image and not occluded,
     "surface_depth_m": 21 rendered depth at the keypoint's pixel (0: background),
     "tolerance_m": 21 per-keypoint thickness allowance (joints lie inside the flesh),
     "hand_pixels": number of hand pixels in the mask}

Sequences: training sequences are numbered from 0, test sequences from 1200, so HaMuCo's
split (``hand_lib.data.standard_split``, seq < 1200 is train) and ``meta.json``'s
``is_train`` agree. A sequence is one subject (shape, skin; ``subject_id = seq // 2``), one
camera rig and a slowly changing pose; frames differ in pose, light and backgrounds.

Determinism: a frame's content depends only on the configuration and (seed, sequence,
frame): each frame draws from its own NumPy generator and renders with one thread, so the
bytes do not depend on the number of worker processes. Resuming: every file is written to a
temporary name and renamed; a frame counts as done only when all its files exist, and done
frames are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.spatial.transform import Rotation

from hand_lib.data.hanco import HANCO_TEST_FIRST_SEQUENCE, MASK_DIR
from hand_lib.data.synthetic_background import cluttered_background, green_screen
from hand_lib.data.synthetic_scene import (
    HandFrame,
    PosePrior,
    SequenceScene,
    finger_pose_axis_angle,
    frame_motion,
    sample_lighting_world,
    sample_pose_bank,
    sample_sequence,
    skin_albedo,
)
from hand_lib.geometry.camera import project_points, world_to_camera
from hand_lib.mano import ManoLayer
from hand_lib.render import MeshRenderer, RenderSettings

logger = logging.getLogger(__name__)

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "data" / "synthetic_hanco"
CONFIG_FILE = "synthetic.json"
VISIBILITY_DIR = "visibility"
#: Bumped whenever the same config would write different bytes (2: occlusion by part;
#: 3: hands held as in a capture rig instead of uniformly random orientations, frames
#: spread along each sequence).
GENERATOR_VERSION = 3
#: Older versions whose files differ from this one's only in files every frame rewrites,
#: so a folder they wrote is upgraded in place (none: version 3 changes every image).
UPGRADABLE_VERSIONS: tuple[int, ...] = ()

#: (training sequences, test sequences, frames per sequence) of each profile; 8 views each.
#: Many sequences with few frames: the poses a network learns from are distinct (frames of
#: a sequence share a subject, a rig and a key pose), and the test split has enough
#: sequences for a bootstrap over them to give a usable interval.
PROFILE_SIZES: dict[str, tuple[int, int, int]] = {
    "smoke": (8, 4, 2),  # 192 images
    "quick": (1100, 192, 2),  # 20,672 images, 2,200 training poses
    "full": (1150, 300, 8),  # 92,000 images
}

_RNG_SEQUENCE, _RNG_SUBJECT, _RNG_FRAME, _RNG_NOISE, _RNG_BANK = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class SyntheticConfig:
    """What a synthetic dataset contains. Two runs with equal configs write equal bytes.

    Attributes:
        num_train_sequences: sequences 0 .. n-1 (``is_train`` True).
        num_test_sequences: sequences 1200 .. 1200+n-1 (``is_train`` False).
        frames_per_sequence: frames 0 .. n-1 of every sequence.
        seed: root of every random draw.
        mano_path: MANO file or folder; "" renders the open hand model.
        num_cameras: views per frame.
        image_size: side of the square images, pixels.
        jpeg_quality: PIL JPEG quality of the images and masks.
        sequences_per_subject: consecutive sequences that share a subject (shape and skin).
        extreme_probability: share of sequences whose second key pose is extreme.
        pose_bank_size: 0 draws every sequence's poses from the prior; K > 0 makes a bank of
            K distinct poses (:func:`~hand_lib.data.synthetic_scene.sample_pose_bank`) and
            each sequence holds one of them: a controlled pose diversity, for studies of
            generalisation and for fast learning tests.
    """

    num_train_sequences: int = 4
    num_test_sequences: int = 2
    frames_per_sequence: int = 4
    seed: int = 0
    mano_path: str = ""
    num_cameras: int = 8
    image_size: int = 224
    jpeg_quality: int = 90
    sequences_per_subject: int = 2
    extreme_probability: float = 0.15
    pose_bank_size: int = 0

    def __post_init__(self) -> None:
        for name in ("num_train_sequences", "num_test_sequences"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.num_train_sequences > HANCO_TEST_FIRST_SEQUENCE:
            raise ValueError(f"at most {HANCO_TEST_FIRST_SEQUENCE} training sequences "
                             "(test sequences start at 1200)")
        if self.frames_per_sequence < 1 or self.num_cameras < 1 or self.image_size < 16:
            raise ValueError("need frames_per_sequence >= 1, num_cameras >= 1, "
                             "image_size >= 16")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.sequences_per_subject < 1:
            raise ValueError("sequences_per_subject must be >= 1")
        if not 0.0 <= self.extreme_probability <= 1.0:
            raise ValueError("extreme_probability must be in [0, 1]")
        if not 0 <= self.pose_bank_size <= 64:
            raise ValueError(f"pose_bank_size must be in 0..64, got {self.pose_bank_size}")

    @classmethod
    def for_profile(cls, profile: str, **overrides: Any) -> SyntheticConfig:
        """The config of a profile (``smoke``, ``quick``, ``full``), fields overridable."""
        train, test, frames = profile_size(profile)
        values: dict[str, Any] = {"num_train_sequences": train, "num_test_sequences": test,
                                  "frames_per_sequence": frames}
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SyntheticConfig:
        """Build from a plain dict; unknown keys are rejected."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown SyntheticConfig keys {unknown}")
        return cls(**values)

    def sequence_ids(self) -> list[int]:
        """Training sequences 0.., then test sequences 1200.."""
        return (list(range(self.num_train_sequences))
                + [HANCO_TEST_FIRST_SEQUENCE + i for i in range(self.num_test_sequences)])

    def frames(self) -> list[tuple[int, int]]:
        """Every (sequence, frame), in order."""
        return [(s, f) for s in self.sequence_ids() for f in range(self.frames_per_sequence)]

    @property
    def num_images(self) -> int:
        """Camera images (views) in the dataset; each has an rgb, rgb_merged and mask file."""
        return len(self.frames()) * self.num_cameras


def profile_size(profile: str) -> tuple[int, int, int]:
    """(training sequences, test sequences, frames per sequence) of a profile."""
    if profile not in PROFILE_SIZES:
        raise ValueError(f"profile must be one of {sorted(PROFILE_SIZES)}, got {profile!r}")
    return PROFILE_SIZES[profile]


# --------------------------------------------------------------------------- one frame


@dataclass
class SyntheticFrame:
    """Everything written for one (sequence, frame). V = cameras, S = image side.

    Attributes:
        K: (V, 3, 3) float64 intrinsics, pixels. M: (V, 4, 4) world-to-camera, metres.
        xyz: (21, 3) float64 keypoints, world, metres (FreiHAND order).
        pose: (48,) axis-angle, world (global rotation first, no mean pose).
        betas: (10,). global_t: (3,) metres.
        mano_cam: (V, 61) per-camera fit: 48 pose + 10 shape + 3 translation.
        rgb, rgb_merged: (V, S, S, 3) uint8. mask: (V, S, S) bool.
        visibility: V dicts as written to ``visibility/`` (see the module docstring).
    """

    seq: int
    frame: int
    K: np.ndarray
    M: np.ndarray
    xyz: np.ndarray
    pose: np.ndarray
    betas: np.ndarray
    global_t: np.ndarray
    mano_cam: np.ndarray
    rgb: np.ndarray
    rgb_merged: np.ndarray
    mask: np.ndarray
    visibility: list[dict[str, Any]]


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


def keypoint_tolerance(keypoints: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """(21,) metres: how far the hand's own surface may lie in front of each keypoint.

    Joints sit inside the flesh; a keypoint is called occluded only when the visible surface
    is farther in front than its local thickness: 1.2 times the distance to its 20th-nearest
    vertex plus 2 mm, at most 3 cm.
    """
    d = np.linalg.norm(keypoints[:, None, :] - vertices[None, :, :], axis=2)
    local = np.partition(d, 20, axis=1)[:, 20]
    return np.minimum(1.2 * local + 0.002, 0.03)


class FrameSynthesizer:
    """Builds :class:`SyntheticFrame` objects (holds the model, renderer and caches).

    Args:
        config: the dataset config.
    """

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        self.layer = ManoLayer(config.mano_path or None, dtype=torch.float64)
        S = config.image_size
        self.renderer = MeshRenderer(RenderSettings(image_size=(S, S)))
        self.prior = PosePrior.from_components(self.layer.hands_components.numpy())
        self.hands_mean = self.layer.hands_mean.numpy()
        self.rest_vertices = self.layer.v_template.numpy()
        with torch.no_grad():
            rest = self.layer(torch.zeros(1, 16, 3, dtype=torch.float64),
                              torch.zeros(1, 10, dtype=torch.float64))  # MCPs: pose-free
        self.hand_frame = HandFrame.from_keypoints(rest.keypoints[0].numpy())
        self.tips = self.layer.tip_vertex_ids.numpy()
        self.faces = self.layer.faces
        self.face_part, self.own_parts = _hand_parts(self.layer)
        noise = _rng(config.seed, _RNG_NOISE).standard_normal((3, 2 * S, 2 * S))
        self.pose_bank = (sample_pose_bank(_rng(config.seed, _RNG_BANK), self.prior,
                                           config.pose_bank_size)
                          if config.pose_bank_size else None)
        self.noise_tile = torch.from_numpy(noise.astype(np.float32))

    def subject_id(self, seq: int) -> int:
        """Subject of a sequence: consecutive sequences share one."""
        return seq // self.config.sequences_per_subject

    @lru_cache(maxsize=64)  # noqa: B019 (one synthesizer per process; bounded cache)
    def sequence(self, seq: int) -> SequenceScene:
        """The sequence's fixed content (subject, key poses, rig, screen colour)."""
        c = self.config
        return sample_sequence(_rng(c.seed, _RNG_SEQUENCE, seq),
                               _rng(c.seed, _RNG_SUBJECT, self.subject_id(seq)), self.prior,
                               c.num_cameras, (c.image_size, c.image_size),
                               c.extreme_probability, pose_bank=self.pose_bank)

    @lru_cache(maxsize=16)  # noqa: B019
    def albedo(self, seq: int) -> torch.Tensor:
        """(V, 3) float32 per-vertex skin albedo of the sequence's subject."""
        scene = self.sequence(seq)
        return torch.from_numpy(skin_albedo(self.rest_vertices, self.tips, scene.skin_tone,
                                            scene.skin_seed))

    def frame(self, seq: int, frame: int) -> SyntheticFrame:
        """Pose, render and label one frame.

        Runs with one torch thread whatever the caller's setting: the bytes then do not
        depend on it, and on a busy machine more threads were ~20 times slower."""
        with _torch_threads(1):
            return self._frame(seq, frame)

    def _frame(self, seq: int, frame: int) -> SyntheticFrame:
        c = self.config
        scene = self.sequence(seq)
        rng = _rng(c.seed, _RNG_FRAME, seq, frame)
        coeffs, orient, center = frame_motion(scene, frame, rng, self.hand_frame)
        finger = finger_pose_axis_angle(coeffs, self.prior, self.hands_mean, scene.extreme)
        pose = np.concatenate([orient, finger])
        betas = scene.betas
        with torch.no_grad():
            out = self.layer(torch.from_numpy(pose)[None], torch.from_numpy(betas)[None])
        verts0 = out.vertices[0].numpy()
        global_t = center - 0.5 * (verts0.max(0) + verts0.min(0))
        verts = verts0 + global_t
        xyz = out.keypoints[0].numpy() + global_t
        root_rest = out.joints[0, 0].numpy()  # the root rotates about itself: rest position

        K, M = scene.K, scene.M
        V = c.num_cameras
        R, t = M[:, :3, :3], M[:, :3, 3]
        rot_world = Rotation.from_rotvec(orient).as_matrix()
        mano_cam = np.zeros((V, 61))
        for k in range(V):
            mano_cam[k, :3] = Rotation.from_matrix(R[k] @ rot_world).as_rotvec()
            mano_cam[k, 3:48] = finger
            mano_cam[k, 48:58] = betas
            mano_cam[k, 58:] = R[k] @ (root_rest + global_t) + t[k] - root_rest

        light, direction = sample_lighting_world(rng)
        lighting = np.repeat(light[None], V, axis=0)
        lighting[:, 8:11] = R @ direction  # the world light's direction in each camera
        verts_cam = torch.from_numpy(verts @ R.transpose(0, 2, 1) + t[:, None, :]).float()
        albedo = self.albedo(seq).expand(V, -1, -1)
        render = self.renderer.render_fast(verts_cam, self.faces,
                                           torch.from_numpy(K).float(), vertex_colors=albedo,
                                           lighting=torch.from_numpy(lighting).float())
        mask = render.mask
        fg = render.rgb.permute(0, 3, 1, 2).clamp(0.0, 1.0)
        fg_ext, alpha = _soften_edges(fg, mask)

        S = c.image_size
        green = np.stack([green_screen(rng, (S, S), scene.green) for _ in range(V)])
        clutter = np.stack([cluttered_background(rng, (S, S)) for _ in range(V)])
        noise = rng.uniform(0.004, 0.02, (2, V))
        rgb = _composite(fg_ext, alpha, green, noise[0], self.noise_tile, rng)
        rgb_merged = _composite(fg_ext, alpha, clutter, noise[1], self.noise_tile, rng)

        keypoints_cam = world_to_camera(torch.from_numpy(xyz).expand(V, 21, 3),
                                        torch.from_numpy(M))
        uv = project_points(keypoints_cam, torch.from_numpy(K)).numpy()
        tolerance = keypoint_tolerance(xyz, verts)
        face_index = render.face_index.numpy()
        visibility = [_visibility(uv[k], keypoints_cam[k, :, 2].numpy(),
                                  render.depth_m[k].double().numpy(), face_index[k], tolerance,
                                  self.face_part, self.own_parts, S)
                      for k in range(V)]
        return SyntheticFrame(seq=seq, frame=frame, K=K, M=M, xyz=xyz, pose=pose, betas=betas,
                              global_t=global_t, mano_cam=mano_cam, rgb=rgb,
                              rgb_merged=rgb_merged, mask=mask.numpy(), visibility=visibility)


def _soften_edges(fg: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Anti-alias the hard render: alpha = the 3x3 box-filtered mask; outside the mask the
    foreground colour is the mean of the covered neighbours. Computed only in each view's
    hand box (the rest is plain background), which keeps it cheap.

    Args:
        fg: (V, 3, S, S) foreground (zero off the hand); mask: (V, S, S) bool.

    Returns:
        foreground (V, 3, S, S) and alpha (V, 1, S, S).
    """
    m = mask[:, None].float()
    fg_out, alpha = fg.clone(), m.clone()
    S_h, S_w = mask.shape[1:]
    for k in range(len(mask)):
        rows = torch.nonzero(mask[k].any(1)).flatten()
        cols = torch.nonzero(mask[k].any(0)).flatten()
        if len(rows) == 0:
            continue
        y0, y1 = max(int(rows[0]) - 2, 0), min(int(rows[-1]) + 3, S_h)
        x0, x1 = max(int(cols[0]) - 2, 0), min(int(cols[-1]) + 3, S_w)
        mk = m[k:k + 1, :, y0:y1, x0:x1]
        fk = fg[k:k + 1, :, y0:y1, x0:x1]
        a = F.avg_pool2d(mk, 3, 1, 1, count_include_pad=False)
        spread = F.avg_pool2d(fk * mk, 3, 1, 1, count_include_pad=False) / a.clamp_min(1e-6)
        fg_out[k:k + 1, :, y0:y1, x0:x1] = torch.where(mk > 0, fk, spread)
        alpha[k:k + 1, :, y0:y1, x0:x1] = a
    return fg_out, alpha


def _composite(fg: torch.Tensor, alpha: torch.Tensor, background: np.ndarray,
               noise_sigma: np.ndarray, noise_tile: torch.Tensor,
               rng: np.random.Generator) -> np.ndarray:
    """``alpha * fg + (1 - alpha) * background`` plus sensor noise -> (V, S, S, 3) uint8.

    The noise is a random window of a fixed Gaussian tile (3, 2S, 2S), scaled per view by
    ``noise_sigma`` (V,): drawing fresh normals for every pixel cost more than the render.
    """
    bg = torch.from_numpy(background).permute(0, 3, 1, 2)
    img = torch.lerp(bg, fg, alpha)
    V, _, H, W = img.shape
    for k in range(V):
        y, x = rng.integers(0, noise_tile.shape[1] - H), rng.integers(0, noise_tile.shape[2] - W)
        img[k].add_(noise_tile[:, y:y + H, x:x + W], alpha=float(noise_sigma[k]))
    return (img.clamp_(0.0, 1.0).mul_(255.0).add_(0.5)).to(torch.uint8).permute(0, 2, 3,
                                                                                1).numpy()


#: A surface this far in front of a keypoint hides it, whichever part of the hand it is.
OCCLUSION_DEPTH_M = 0.04


def _hand_parts(layer: ManoLayer) -> tuple[np.ndarray, np.ndarray]:
    """Which bone each face moves with, and which bones are each keypoint's own flesh.

    Returns:
        face_part (F,) int64: the MANO joint with the largest summed skinning weight over the
        face's corners (a joint's part is the bone from it to its child);
        own_parts (21, J) bool: for a keypoint on joint j, the parts of j and of its parent
        keypoint's joint (the two bones meeting at it); for a fingertip, its distal bone.
    """
    from hand_lib.mano.joints import KEYPOINT_PARENTS

    weights = layer.weights.numpy()
    faces = layer.faces.numpy()
    face_part = weights[faces].sum(1).argmax(1)
    J = weights.shape[1]
    mano_of = layer.keypoint_index.numpy()  # into [J joints, 5 tips]
    own = np.zeros((21, J), dtype=bool)
    for k in range(21):
        if mano_of[k] < J:
            own[k, mano_of[k]] = True
        parent = KEYPOINT_PARENTS[k]
        if parent >= 0:
            own[k, mano_of[parent]] = True
    return face_part, own


def _visibility(uv: np.ndarray, depth: np.ndarray, depth_map: np.ndarray,
                face_map: np.ndarray, tolerance: np.ndarray, face_part: np.ndarray,
                own_parts: np.ndarray, size: int) -> dict[str, Any]:
    """The visibility record of one camera (see the module docstring)."""
    in_image = ((uv >= -0.5) & (uv <= size - 0.5)).all(1) & (depth > 0.01)
    px = np.clip(np.rint(uv), 0, size - 1).astype(np.int64)
    surface = depth_map[px[:, 1], px[:, 0]]
    face = face_map[px[:, 1], px[:, 0]]
    hit = in_image & (face >= 0)
    gap = np.where(hit, depth - surface, 0.0)
    foreign = hit & ~own_parts[np.arange(21), face_part[np.maximum(face, 0)]]
    occluded = (foreign & (gap > tolerance)) | (gap > OCCLUSION_DEPTH_M)
    return {
        "uv": uv.tolist(),
        "depth_m": depth.tolist(),
        "in_image": in_image.tolist(),
        "occluded": occluded.tolist(),
        "visible": (in_image & ~occluded).tolist(),
        "surface_depth_m": np.where(hit, surface, 0.0).tolist(),
        "tolerance_m": tolerance.tolist(),
        "hand_pixels": int((face_map >= 0).sum()),
    }


# --------------------------------------------------------------------------- files


def frame_files(root: str | os.PathLike[str], seq: int, frame: int,
                num_cameras: int = 8) -> list[Path]:
    """Every file of one frame (the frame is done when all exist)."""
    root = Path(root)
    s, f = f"{seq:04d}", f"{frame:08d}"
    files = [root / "calib" / s / f"{f}.json", root / "xyz" / s / f"{f}.json",
             root / "shape" / s / f"{f}.json"]
    for k in range(num_cameras):
        cam = f"cam{k}"
        files += [root / "rgb" / s / cam / f"{f}.jpg", root / "rgb_merged" / s / cam / f"{f}.jpg",
                  root / MASK_DIR / s / cam / f"{f}.jpg", root / "shape" / s / cam / f"{f}.json",
                  root / VISIBILITY_DIR / s / cam / f"{f}.json"]
    return files


def frame_done(root: str | os.PathLike[str], seq: int, frame: int, num_cameras: int = 8) -> bool:
    """True when every file of the frame exists."""
    return all(p.is_file() for p in frame_files(root, seq, frame, num_cameras))


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename (atomic on POSIX)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        f = open(tmp, "wb")
    except FileNotFoundError:  # first file of its folder (cheaper than a mkdir per file)
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(tmp, "wb")
    with f:
        f.write(data)
    os.replace(tmp, path)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


def _jpeg_bytes(array: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_frame(root: str | os.PathLike[str], data: SyntheticFrame, jpeg_quality: int = 90
                ) -> None:
    """Write one frame's files (images first, JSON last; each atomically)."""
    root = Path(root)
    s, f = f"{data.seq:04d}", f"{data.frame:08d}"
    for k in range(len(data.K)):
        cam = f"cam{k}"
        _atomic_write(root / "rgb" / s / cam / f"{f}.jpg", _jpeg_bytes(data.rgb[k], jpeg_quality))
        _atomic_write(root / "rgb_merged" / s / cam / f"{f}.jpg",
                      _jpeg_bytes(data.rgb_merged[k], jpeg_quality))
        mask = data.mask[k].astype(np.uint8) * 255
        _atomic_write(root / MASK_DIR / s / cam / f"{f}.jpg", _jpeg_bytes(mask, jpeg_quality))
        _atomic_write(root / "shape" / s / cam / f"{f}.json",
                      _json_bytes(data.mano_cam[k].tolist()))
        _atomic_write(root / VISIBILITY_DIR / s / cam / f"{f}.json",
                      _json_bytes(data.visibility[k]))
    _atomic_write(root / "shape" / s / f"{f}.json", _json_bytes({
        "poses": [data.pose.tolist()], "shapes": [data.betas.tolist()],
        "global_t": [data.global_t.tolist()]}))
    _atomic_write(root / "xyz" / s / f"{f}.json", _json_bytes(data.xyz.tolist()))
    _atomic_write(root / "calib" / s / f"{f}.json",
                  _json_bytes({"K": data.K.tolist(), "M": data.M.tolist()}))


def build_meta(config: SyntheticConfig) -> dict[str, list[list[Any]]]:
    """HanCo's meta.json: one list per sequence id 0 .. max (empty for unused ids)."""
    ids = config.sequence_ids()
    n_seq = max(ids) + 1 if ids else 0
    meta: dict[str, list[list[Any]]] = {k: [[] for _ in range(n_seq)] for k in
                                        ("is_train", "subject_id", "is_valid", "object_id",
                                         "has_fit")}
    n = config.frames_per_sequence
    for s in ids:
        meta["is_train"][s] = [s < HANCO_TEST_FIRST_SEQUENCE] * n
        meta["subject_id"][s] = [s // config.sequences_per_subject] * n
        meta["is_valid"][s] = [True] * n
        meta["object_id"][s] = [None] * n
        meta["has_fit"][s] = [True] * n
    return meta


def _config_record(config: SyntheticConfig) -> dict[str, Any]:
    return {"generator_version": GENERATOR_VERSION, "config": asdict(config)}


def _prepare_root(root: Path, config: SyntheticConfig) -> bool:
    """Create the root, check a resumed root was made with the same config, write
    ``synthetic.json`` and ``meta.json`` (only when they change, so resuming touches
    nothing that is done).

    Returns:
        True when the root was written by an older generator version whose output differs
        only in files that are rewritten (:data:`UPGRADABLE_VERSIONS`): every frame must
        then be written again, and ``synthetic.json`` is updated once all are.
    """
    root.mkdir(parents=True, exist_ok=True)
    record = _config_record(config)
    path = root / CONFIG_FILE
    upgrade = False
    if path.is_file():
        old = json.loads(path.read_text())
        same_config = old.get("config") == record["config"]
        if same_config and old.get("generator_version") in UPGRADABLE_VERSIONS:
            logger.warning("%s was written by synthetic generator version %s; rewriting every "
                           "frame with version %d (only visibility/ changes; labels derived "
                           "from it are stale)", root, old.get("generator_version"),
                           GENERATOR_VERSION)
            upgrade = True
        elif same_config and old != record:
            raise ValueError(
                f"{root} was written by synthetic generator version "
                f"{old.get('generator_version')}, this is version {GENERATOR_VERSION} (its "
                "files differ); delete the folder (and labels derived from it) or use another "
                "root")
        elif old != record:
            raise ValueError(f"{root} holds a synthetic dataset made with another config "
                             f"({old}); use another root or delete it. Wanted {record}")
    else:
        _atomic_write(path, json.dumps(record, indent=1).encode())
    meta = _json_bytes(build_meta(config))
    meta_path = root / "meta.json"
    if not meta_path.is_file() or meta_path.read_bytes() != meta:
        _atomic_write(meta_path, meta)
    return upgrade


_WORKER: tuple[FrameSynthesizer, Path] | None = None


def _init_worker(config: SyntheticConfig, root: str) -> None:
    global _WORKER
    torch.set_num_threads(1)
    _WORKER = (FrameSynthesizer(config), Path(root))


def _work(item: tuple[int, int]) -> tuple[int, int]:
    assert _WORKER is not None, "worker not initialised"
    synth, root = _WORKER
    write_frame(root, synth.frame(*item), synth.config.jpeg_quality)
    return item


@dataclass(frozen=True)
class GenerationReport:
    """What :func:`generate` did.

    Attributes:
        root: the dataset root.
        frames_written: frames rendered and written by this call.
        frames_skipped: frames already complete on disk.
        images_written: camera images written (``frames_written * num_cameras``; each is an
            rgb, an rgb_merged and a mask file).
        seconds: wall time of the call.
    """

    root: Path
    frames_written: int
    frames_skipped: int
    images_written: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        """Camera images written per second of wall time."""
        return self.images_written / self.seconds if self.seconds > 0 else 0.0


def generate(root: str | os.PathLike[str], config: SyntheticConfig, workers: int = 1,
             progress: bool = True, limit: int | None = None) -> GenerationReport:
    """Write (or complete) a synthetic HanCo dataset.

    Args:
        root: output folder (created).
        config: what to generate; a root made with another config is refused.
        workers: processes (1: in this process). Each renders with one thread.
        progress: show a tqdm bar (images).
        limit: write at most this many missing frames (benchmarks, tests).

    Returns:
        :class:`GenerationReport`.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    root = Path(root)
    upgrade = _prepare_root(root, config)
    V = config.num_cameras
    all_frames = config.frames()
    todo = [(s, f) for s, f in all_frames if upgrade or not frame_done(root, s, f, V)]
    skipped = len(all_frames) - len(todo)
    complete = limit is None or limit >= len(todo)
    if limit is not None:
        todo = todo[:limit]
    bar = tqdm(total=len(all_frames) * V, initial=skipped * V, unit="img", disable=not progress,
               desc=f"synthetic {root.name}")
    try:
        if workers <= 1 or len(todo) <= 1:
            synth = FrameSynthesizer(config)
            for seq, frame in todo:
                write_frame(root, synth.frame(seq, frame), config.jpeg_quality)
                bar.update(V)
        else:
            # fork (Linux) starts workers without re-importing torch, as DataLoader does;
            # spawn elsewhere. The output does not depend on it.
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            ctx = mp.get_context(method)
            with ctx.Pool(workers, initializer=_init_worker, initargs=(config, str(root))) as pool:
                for _ in pool.imap_unordered(_work, todo, chunksize=1):
                    bar.update(V)
    finally:
        bar.close()
    if upgrade and complete:
        _atomic_write(root / CONFIG_FILE, json.dumps(_config_record(config), indent=1).encode())
    seconds = time.perf_counter() - start
    report = GenerationReport(root=root, frames_written=len(todo), frames_skipped=skipped,
                              images_written=len(todo) * V, seconds=seconds)
    logger.info("synthetic HanCo %s: wrote %d frames (%d images) in %.1f s (%.1f img/s), "
                "%d already done", root, report.frames_written, report.images_written,
                seconds, report.images_per_second, skipped)
    return report


def ensure_synthetic_hanco(root: str | os.PathLike[str] | None = None, profile: str = "quick",
                           seed: int = 0, workers: int | None = None, mano_path: str = "",
                           progress: bool = True) -> Path:
    """Generate the profile's synthetic dataset unless it is complete; return its root.

    Args:
        root: output folder; default ``data/synthetic_hanco/<profile>`` in the repository.
        profile: ``smoke``, ``quick`` or ``full`` (:data:`PROFILE_SIZES`).
        seed: random seed.
        workers: processes; default: the CPU count (at most 8).
        mano_path: a MANO file/folder; "" for the open hand model.
        progress: show a progress bar.
    """
    config = SyntheticConfig.for_profile(profile, seed=seed, mano_path=str(mano_path or ""))
    root = Path(root) if root else DEFAULT_ROOT / profile
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    generate(root, config, workers=workers, progress=progress)
    return root


def load_visibility(root: str | os.PathLike[str], seq: int, frame: int, cam: int
                    ) -> dict[str, np.ndarray]:
    """Read one ``visibility/`` record as arrays (see the module docstring for the keys)."""
    path = Path(root) / VISIBILITY_DIR / f"{seq:04d}" / f"cam{cam}" / f"{frame:08d}.json"
    raw = json.loads(path.read_text())
    return {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in raw.items()}


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m hand_lib.data.synthetic --profile quick --workers 2``."""
    parser = argparse.ArgumentParser(description="Write a synthetic multi-view hand dataset in "
                                     "HanCo's layout (resumable, deterministic from the seed).")
    parser.add_argument("--profile", choices=sorted(PROFILE_SIZES), default="quick")
    parser.add_argument("--root", type=Path, default=None,
                        help="output folder (default data/synthetic_hanco/<profile>)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8))
    parser.add_argument("--mano", default="", help="MANO file or folder (default: open hand)")
    parser.add_argument("--train-sequences", type=int, default=None)
    parser.add_argument("--test-sequences", type=int, default=None)
    parser.add_argument("--frames", type=int, default=None, help="frames per sequence")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {"seed": args.seed, "mano_path": args.mano}
    for key, value in (("num_train_sequences", args.train_sequences),
                       ("num_test_sequences", args.test_sequences),
                       ("frames_per_sequence", args.frames)):
        if value is not None:
            overrides[key] = value
    config = SyntheticConfig.for_profile(args.profile, **overrides)
    root = args.root if args.root is not None else DEFAULT_ROOT / args.profile
    report = generate(root, config, workers=args.workers, progress=not args.no_progress)
    print(f"{root}: {report.frames_written} frames written ({report.images_written} images, "
          f"{report.images_per_second:.1f} img/s), {report.frames_skipped} already done")


if __name__ == "__main__":
    main()
