"""Random scene content for the synthetic HanCo generator: hands, cameras, skin, light.

Every function draws from an explicit ``numpy.random.Generator``; the generator
(:mod:`hand_lib.data.synthetic`) derives one per (seed, sequence) and per (seed, sequence,
frame), so what a frame shows depends on those numbers only.

World frame: metres, z up, the hand near the origin. Cameras follow OpenCV (x right, y down,
z forward); ``M`` is world-to-camera (``X_cam = M[:3, :3] @ X_world + M[:3, 3]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

#: Skin albedo anchors (sRGB in [0, 1]), light to dark; a tone interpolates between two.
SKIN_TONES = np.array([
    [0.96, 0.80, 0.69],
    [0.90, 0.70, 0.58],
    [0.80, 0.58, 0.45],
    [0.66, 0.45, 0.33],
    [0.50, 0.33, 0.24],
    [0.36, 0.23, 0.17],
])  # fmt: skip


@dataclass(frozen=True)
class PosePrior:
    """Finger-pose prior in the model's PCA space.

    Attributes:
        components: (C, 45) PCA rows of the model (``hands_components``).
        scales: (C,) standard deviation of each coefficient. The open hand model's rows are
            scaled by the square root of their eigenvalue, so its coefficients are ~N(0, 1)
            and ``scales`` is 1. The official MANO rows are unit vectors with no variances in
            the file; for them a decaying spectrum ``1.2 * 0.75**i`` is used (a heuristic
            that keeps the first ~8 components, which carry most of the natural variation).
    """

    components: np.ndarray
    scales: np.ndarray

    @classmethod
    def from_components(cls, components: np.ndarray) -> PosePrior:
        """Build the prior from a model's ``hands_components`` (C, 45)."""
        components = np.asarray(components, dtype=np.float64)
        norms = np.linalg.norm(components, axis=1)
        if np.allclose(norms, 1.0, atol=1e-3):  # orthonormal rows: official MANO
            scales = 1.2 * 0.75 ** np.arange(len(components))
        else:
            scales = np.ones(len(components))
        return cls(components=components, scales=scales)


@dataclass(frozen=True)
class HandFrame:
    """A hand model's own axes in its rest pose (MANO coordinates, unit vectors).

    Attributes:
        forward: wrist -> middle MCP (keypoint 0 -> 9), the direction the fingers point.
        radial: pinky MCP -> index MCP (17 -> 5) made orthogonal to ``forward``: towards the
            thumb side.
        normal: ``forward x radial``, completing a right-handed frame (the back of a right
            hand, the palm of a left one).
    """

    forward: np.ndarray
    radial: np.ndarray
    normal: np.ndarray

    @classmethod
    def from_keypoints(cls, keypoints: np.ndarray) -> HandFrame:
        """The frame of rest-pose keypoints (21, 3), FreiHAND order."""
        k = np.asarray(keypoints, dtype=np.float64)
        forward = k[9] - k[0]
        forward = forward / np.linalg.norm(forward)
        radial = k[5] - k[17]
        radial = radial - forward * (radial @ forward)
        radial = radial / np.linalg.norm(radial)
        return cls(forward=forward, radial=radial, normal=np.cross(forward, radial))

    @property
    def matrix(self) -> np.ndarray:
        """(3, 3) with columns forward, radial, normal."""
        return np.stack([self.forward, self.radial, self.normal], axis=1)


@dataclass(frozen=True)
class OrientationPrior:
    """How a hand is held in the capture volume, as anatomical angles (degrees).

    HanCo's subjects reach into an eight-camera cage with their forearm: the hand's world
    orientation is bounded (the forearm comes from the subject's side, the hand does not
    tumble), and the variety of orientations in the images comes from the viewpoints of the
    rig. A hand's world rotation is built from five angles (:func:`hand_orientation`):

    - ``azimuth`` of the forearm about the vertical: uniform over the circle (the rig
      surrounds the hand, so where the subject stands is arbitrary);
    - ``elevation`` of the forearm: the hand reaches in roughly horizontally;
    - ``pronation``, the forearm's roll about its own axis: 0 holds the thumb side up, +-90
      turns the palm down or up (the forearm's range of motion is about 160-180 degrees);
    - wrist ``flexion`` (towards the palm or the back) and radial/ulnar ``deviation``, within
      the wrist's range of motion.

    Each sequence draws two key orientations (the second within ``drift_deg`` of the first,
    per angle) and moves between them like its key poses.
    """

    elevation_deg: tuple[float, float] = (-30.0, 45.0)
    pronation_deg: tuple[float, float] = (-100.0, 100.0)
    flexion_deg: tuple[float, float] = (-60.0, 60.0)
    deviation_deg: tuple[float, float] = (-25.0, 25.0)
    drift_deg: float = 25.0

    def ranges(self) -> np.ndarray:
        """(4, 2) the ranges of elevation, pronation, flexion and deviation, radians."""
        return np.deg2rad(np.array([self.elevation_deg, self.pronation_deg, self.flexion_deg,
                                    self.deviation_deg]))


def axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """(3, 3) rotation by ``angle`` radians about the unit vector ``axis``."""
    return Rotation.from_rotvec(np.asarray(axis, dtype=np.float64) * angle).as_matrix()


def hand_orientation(frame: HandFrame, angles: np.ndarray) -> np.ndarray:
    """(3, 3) world rotation of a hand (world: metres, z up) from its anatomical angles.

    Args:
        frame: the model's rest-pose axes.
        angles: (5,) radians: azimuth, elevation, pronation, flexion, deviation (see
            :class:`OrientationPrior`).

    The forearm direction ``f`` (from azimuth and elevation) and the vertical made
    orthogonal to it, ``s``, form the neutral hand: fingers along ``f``, thumb side up.
    Applied to the rest pose, right to left: deviation about the palm normal, flexion about
    the radial axis, pronation about the forward axis, then the neutral alignment.
    """
    azimuth, elevation, pronation, flexion, deviation = (float(a) for a in angles)
    f = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                  np.sin(elevation)])
    up = np.array([0.0, 0.0, 1.0])
    s = up - f * (up @ f)
    s = s / np.linalg.norm(s)
    world = np.stack([f, s, np.cross(f, s)], axis=1)
    align = world @ frame.matrix.T
    return (align @ axis_rotation(frame.forward, pronation) @ axis_rotation(frame.radial, flexion)
            @ axis_rotation(frame.normal, deviation))


def sample_orientation_angles(rng: np.random.Generator, prior: OrientationPrior
                              ) -> tuple[np.ndarray, np.ndarray]:
    """Two key orientations of a sequence, (5,) radians each (see :func:`hand_orientation`):
    the first uniform within the prior's ranges, the second drifted from it by
    ``N(0, drift_deg)`` per angle and clipped to the ranges (the azimuth drifts unclipped)."""
    ranges = prior.ranges()
    a = np.concatenate([[rng.uniform(0.0, 2 * np.pi)], rng.uniform(ranges[:, 0], ranges[:, 1])])
    b = a + rng.normal(0.0, np.deg2rad(prior.drift_deg), 5)
    b[1:] = np.clip(b[1:], ranges[:, 0], ranges[:, 1])
    return a, b


@dataclass(frozen=True)
class SequenceScene:
    """What stays fixed (or moves slowly) within one sequence.

    Attributes:
        betas: (10,) shape coefficients of the subject.
        skin_tone: (3,) base albedo, sRGB [0, 1].
        skin_seed: seed of the per-vertex skin pattern (one per subject).
        pose_a, pose_b: (C,) PCA coefficients of the two key poses the sequence moves
            between.
        extreme: the key pose ``pose_b`` was drawn from the extreme tail of the prior.
        angles_a, angles_b: (5,) anatomical angles of the two key orientations, radians
            (:func:`hand_orientation`).
        center: (3,) hand centre at frame 0, metres.
        K: (V, 3, 3) intrinsics, pixels.
        M: (V, 4, 4) world-to-camera extrinsics, metres.
        green: (3,) green-screen colour, sRGB [0, 1].
    """

    betas: np.ndarray
    skin_tone: np.ndarray
    skin_seed: int
    pose_a: np.ndarray
    pose_b: np.ndarray
    extreme: bool
    angles_a: np.ndarray
    angles_b: np.ndarray
    center: np.ndarray
    K: np.ndarray
    M: np.ndarray
    green: np.ndarray


#: Time units for the pose to go from key pose A to B (and back over the next as many).
POSE_HALF_PERIOD = 12.0
#: Time units between two consecutive frames of a sequence: with few frames per sequence,
#: the frames still spread over the way from A to B (frame 1 is 37% of the way, frame 2 93%).
FRAME_STRIDE = 5.0
#: Largest rotation of one finger joint, radians: natural poses / extreme poses.
MAX_JOINT_ANGLE = (1.9, 2.6)


def sample_pca_pose(rng: np.random.Generator, prior: PosePrior, extreme: bool) -> np.ndarray:
    """PCA coefficients of a finger pose.

    Natural poses draw each coefficient from the prior truncated at 2 standard deviations.
    Extreme poses push 1 to 3 of the first 6 components to 2.5 to 3.5 standard deviations
    (and leave the rest untruncated), which curls, hyper-extends or splays the fingers
    beyond the prior's bulk.

    Returns:
        (C,) coefficients (multiply with ``prior.components`` for the axis-angle offset).
    """
    C = len(prior.scales)
    z = rng.standard_normal(C)
    if extreme:
        picks = rng.choice(min(6, C), size=int(rng.integers(1, 4)), replace=False)
        z[picks] = rng.choice([-1.0, 1.0], size=len(picks)) * rng.uniform(2.5, 3.5, len(picks))
    else:
        z = np.clip(z, -2.0, 2.0)
    return z * prior.scales


def finger_pose_axis_angle(coeffs: np.ndarray, prior: PosePrior, hands_mean: np.ndarray,
                           extreme: bool) -> np.ndarray:
    """PCA coefficients -> (45,) axis-angle finger pose *without* the mean pose.

    Each joint's total rotation (mean pose included, as the layer applies it with
    ``flat_hand_mean=False``) is limited to :data:`MAX_JOINT_ANGLE` radians.
    """
    aa = coeffs @ prior.components
    total = (aa + hands_mean).reshape(15, 3)
    angle = np.linalg.norm(total, axis=1, keepdims=True)
    limit = MAX_JOINT_ANGLE[1] if extreme else MAX_JOINT_ANGLE[0]
    total = total * np.minimum(1.0, limit / np.maximum(angle, 1e-12))
    return total.reshape(45) - hands_mean


def look_at(position: np.ndarray, target: np.ndarray, up: np.ndarray, roll: float) -> np.ndarray:
    """(4, 4) world-to-camera matrix of an OpenCV camera at ``position`` looking at
    ``target``, image "up" along world ``up`` and then rolled by ``roll`` radians about the
    optical axis."""
    z = target - position
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    c, s = np.cos(roll), np.sin(roll)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ R
    M = np.eye(4)
    M[:3, :3] = R
    M[:3, 3] = -R @ position
    return M


#: Azimuth range the cameras of a rig cover, centred on the forearm's direction, degrees:
#: the subject stands in the remaining wedge, behind their own arm.
RIG_ARC_DEG = 270.0


def sample_rig(rng: np.random.Generator, num_cameras: int, image_size: tuple[int, int],
               forearm_azimuth: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A HanCo-like cage of cameras around the origin.

    Cameras sit 0.4 to 0.8 m from the hand, spread in azimuth (evenly, jittered) over
    :data:`RIG_ARC_DEG` degrees centred on ``forearm_azimuth`` (radians; no camera stands
    where the subject does, behind the arm), at elevations from -40 to 70 degrees, aim at a
    point within ~1.5 cm of the origin and are rolled by up to 10 degrees. The focal length
    scales with the distance (680 to 900 px per metre of distance), so a hand of 18 cm spans
    about 120 to 160 px of a 224 px image.

    Returns:
        K (V, 3, 3) pixels and M (V, 4, 4) world-to-camera.
    """
    H, W = image_size
    V = num_cameras
    arc = np.deg2rad(RIG_ARC_DEG)
    step = arc / V
    az0 = forearm_azimuth - arc / 2 + step / 2 + rng.uniform(-0.5, 0.5) * step
    K = np.zeros((V, 3, 3))
    M = np.zeros((V, 4, 4))
    scale = min(H, W) / 224.0
    for k in range(V):
        az = az0 + step * k + rng.uniform(-0.25, 0.25) * step
        el = np.deg2rad(rng.uniform(-40.0, 70.0))
        dist = rng.uniform(0.4, 0.8)
        direction = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        target = rng.normal(0.0, 0.015, 3)
        roll = np.deg2rad(rng.uniform(-10.0, 10.0))
        M[k] = look_at(dist * direction, target, np.array([0.0, 0.0, 1.0]), roll)
        f = dist * rng.uniform(680.0, 900.0) * scale
        K[k] = [[f, 0.0, (W - 1) / 2 + rng.uniform(-4, 4) * scale],
                [0.0, f, (H - 1) / 2 + rng.uniform(-4, 4) * scale],
                [0.0, 0.0, 1.0]]
    return K, M


def sample_skin_tone(rng: np.random.Generator) -> np.ndarray:
    """(3,) base skin albedo: a point between two neighbouring :data:`SKIN_TONES`, with a
    small per-channel tint."""
    t = rng.uniform(0.0, len(SKIN_TONES) - 1)
    i = min(int(t), len(SKIN_TONES) - 2)
    tone = SKIN_TONES[i] + (t - i) * (SKIN_TONES[i + 1] - SKIN_TONES[i])
    return np.clip(tone * rng.uniform(0.94, 1.06, 3), 0.05, 1.0)


def skin_albedo(rest_vertices: np.ndarray, tips: np.ndarray, tone: np.ndarray,
                seed: int) -> np.ndarray:
    """Per-vertex skin albedo of a subject.

    Base tone, modulated by a smooth random field over the rest-pose surface (blotches of
    3 to 8 cm, +-8 %), per-vertex noise (+-3 %), a lighter palm (the rest pose's palm faces
    -y) and lighter, pinker nails on the back of each fingertip.

    Args:
        rest_vertices: (V, 3) rest-pose vertices, metres (MANO frame).
        tips: (5,) fingertip vertex ids.
        tone: (3,) base albedo.
        seed: pattern seed.

    Returns:
        (V, 3) float32 albedo in [0, 1].
    """
    rng = np.random.default_rng(seed)
    x = rest_vertices
    field = np.zeros(len(x))
    for _ in range(4):
        k = rng.normal(size=3)
        k *= 2 * np.pi / (np.linalg.norm(k) * rng.uniform(0.03, 0.08))
        field += np.sin(x @ k + rng.uniform(0, 2 * np.pi))
    albedo = tone[None, :] * (1.0 + 0.04 * field[:, None])
    albedo *= 1.0 + rng.uniform(-0.03, 0.03, (len(x), 1))
    palm = np.clip(-(x[:, 1] - np.median(x[:, 1])) / 0.01, 0.0, 1.0)
    albedo = albedo + palm[:, None] * 0.25 * (np.array([0.95, 0.78, 0.70]) - albedo)
    nail = np.array([0.93, 0.74, 0.72])
    for t in tips:
        d = np.linalg.norm(x - x[t], axis=1)
        on_nail = np.clip((0.009 - d) / 0.003, 0.0, 1.0) * (x[:, 1] > x[t, 1] - 0.002)
        albedo = albedo + on_nail[:, None] * 0.6 * (nail - albedo)
    return np.clip(albedo, 0.0, 1.0).astype(np.float32)


def sample_lighting_world(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One frame's light: S2HAND's 11 values with the direction in *world* coordinates.

    Returns:
        params (11,): ambient intensity 0.35-0.65, directional 0.35-0.8, near-white colours
        with a tint; direction (3,) unit vector towards the light, world frame (to be rotated
        into each camera).
    """
    params = np.zeros(11)
    params[0] = rng.uniform(0.35, 0.65)
    params[1] = rng.uniform(0.35, 0.8)
    params[2:5] = np.clip(1.0 + rng.normal(0.0, 0.06, 3), 0.8, 1.2)
    params[5:8] = np.clip(1.0 + rng.normal(0.0, 0.08, 3), 0.8, 1.2)
    direction = rng.normal(size=3)
    direction[2] = abs(direction[2]) + 0.3  # light mostly from above, like a studio
    direction /= np.linalg.norm(direction)
    params[8:11] = direction
    return params, direction


def sample_green(rng: np.random.Generator) -> np.ndarray:
    """(3,) a green-screen colour."""
    return np.array([rng.uniform(0.05, 0.3), rng.uniform(0.5, 0.8), rng.uniform(0.1, 0.35)])


def sample_sequence(rng: np.random.Generator, subject_rng: np.random.Generator,
                    prior: PosePrior, num_cameras: int, image_size: tuple[int, int],
                    extreme_probability: float = 0.15,
                    orientation: OrientationPrior | None = None,
                    pose_bank: np.ndarray | None = None) -> SequenceScene:
    """Draw a sequence: subject (from ``subject_rng``), key poses and orientations, rig,
    screen. With a ``pose_bank`` (K, C) the sequence holds one of its K poses (both key
    poses are that pose) instead of drawing from the prior."""
    orientation = orientation or OrientationPrior()
    betas = np.clip(subject_rng.standard_normal(10), -2.5, 2.5)
    tone = sample_skin_tone(subject_rng)
    skin_seed = int(subject_rng.integers(0, 2**31))
    extreme = bool(rng.random() < extreme_probability)
    pose_a = sample_pca_pose(rng, prior, extreme=False)
    pose_b = sample_pca_pose(rng, prior, extreme=extreme)
    if pose_bank is not None:
        pose_a = pose_b = np.asarray(pose_bank)[int(rng.integers(len(pose_bank)))]
    angles_a, angles_b = sample_orientation_angles(rng, orientation)
    center = rng.normal(0.0, 0.01, 3)
    K, M = sample_rig(rng, num_cameras, image_size, forearm_azimuth=float(angles_a[0]))
    return SequenceScene(betas=betas, skin_tone=tone, skin_seed=skin_seed, pose_a=pose_a,
                         pose_b=pose_b, extreme=extreme, angles_a=angles_a, angles_b=angles_b,
                         center=center, K=K, M=M, green=sample_green(rng))


def sample_pose_bank(rng: np.random.Generator, prior: PosePrior, size: int) -> np.ndarray:
    """(size, C) distinct key poses for a pose-bank dataset: each the farthest, among 64
    draws from the prior (every other one from its extreme tail), from the poses already in
    the bank (greedy farthest-point sampling in PCA space)."""
    pool = np.stack([sample_pca_pose(rng, prior, extreme=bool(i % 2)) for i in range(64)])
    chosen = [int(np.argmax(np.linalg.norm(pool, axis=1)))]
    while len(chosen) < size:
        d = np.min(np.linalg.norm(pool[:, None] - pool[chosen][None], axis=2), axis=1)
        chosen.append(int(np.argmax(d)))
    return pool[chosen]


def frame_motion(scene: SequenceScene, frame: int, rng: np.random.Generator,
                 hand_frame: HandFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PCA pose coefficients, world orientation (axis-angle) and centre of a frame.

    Frame ``f`` is at time ``f * FRAME_STRIDE``; pose and orientation angles move smoothly
    between the sequence's two key states (half period :data:`POSE_HALF_PERIOD`), with a
    little per-frame noise on the pose; the hand drifts by a few millimetres.
    """
    t = FRAME_STRIDE * frame
    w = 0.5 - 0.5 * np.cos(np.pi * t / POSE_HALF_PERIOD)
    coeffs = scene.pose_a + w * (scene.pose_b - scene.pose_a)
    coeffs = coeffs + rng.normal(0.0, 0.05, coeffs.shape) * np.abs(scene.pose_a).mean()
    angles = scene.angles_a + w * (scene.angles_b - scene.angles_a)
    rot = Rotation.from_matrix(hand_orientation(hand_frame, angles))
    center = scene.center + 0.004 * np.sin(0.3 * t + np.arange(3))
    return coeffs, rot.as_rotvec(), center
