"""Label a HanCo-layout folder with MediaPipe Hands (run in the MediaPipe side venv).

::

    tools/mediapipe_env.sh label ROOT [--image-dir rgb] [--label-dir rgb_2D_keypoints]
        [--sequences 0 1 ...] [--limit N] [--hand right|left|any] [--overwrite]
        [--summary FILE]

Reads ``ROOT/<image-dir>/<seq>/cam<k>/<frame>.jpg`` (also ``.png``), writes
``ROOT/<label-dir>/<seq>/cam<k>/<frame>.json`` = ``[kps 21x2, cfd 21]`` atomically, skips
labels that exist (resumable; ``--overwrite`` redoes them), shows a progress bar and prints a
JSON summary (images seen, labelled, skipped, hands found, detection rate); ``--summary``
also writes it to a file. Imports NumPy, Pillow and tqdm only.

From the project venv (no mediapipe there), :func:`run_in_side_venv` runs it in the side
venv (:func:`side_venv_python`) and returns the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hand_lib.pseudo.labels import HANCO_LABEL_DIR, atomic_write_json, write_hanco_label

_SEQ_RE = re.compile(r"\d{4}")
_CAM_RE = re.compile(r"cam(\d+)")
_IMG_RE = re.compile(r"(\d{8})\.(jpg|png)")


def list_images(
    root: Path, image_dir: str, sequences: Sequence[int] | None = None
) -> list[tuple[int, int, int, Path]]:
    """Every image under ``root/image_dir`` as ``(seq, cam, frame, path)``, sorted."""
    top = root / image_dir
    if not top.is_dir():
        raise FileNotFoundError(f"{top}: image folder not found (expected "
                                f"{image_dir}/<seq>/cam<k>/<frame>.jpg)")
    wanted = None if sequences is None else set(sequences)
    out = []
    for seq_dir in sorted(p for p in top.iterdir() if p.is_dir() and _SEQ_RE.fullmatch(p.name)):
        seq = int(seq_dir.name)
        if wanted is not None and seq not in wanted:
            continue
        for cam_dir in sorted(p for p in seq_dir.iterdir() if p.is_dir()):
            m = _CAM_RE.fullmatch(cam_dir.name)
            if m is None:
                continue
            for f in sorted(cam_dir.iterdir()):
                fm = _IMG_RE.fullmatch(f.name)
                if fm is not None:
                    out.append((seq, int(m.group(1)), int(fm.group(1)), f))
    return out


def label_folder(
    root: str | Path, *, image_dir: str = "rgb", label_dir: str = HANCO_LABEL_DIR,
    sequences: Sequence[int] | None = None, limit: int | None = None, overwrite: bool = False,
    progress: bool = True, hand: str = "right", detector: Any = None,
) -> dict[str, Any]:
    """Label every image of a HanCo-layout folder with MediaPipe Hands.

    Args:
        root: HanCo-layout root.
        image_dir: image folder under ``root``.
        label_dir: label folder under ``root`` to write.
        sequences: only these sequence ids (None = all).
        limit: stop after this many images (None = all).
        overwrite: redo labels that exist (default: skip them, so runs resume).
        progress: show a tqdm bar.
        hand: which hand to keep (``"right"``, ``"left"``, ``"any"``); images are taken as
            unmirrored camera images (see :func:`hand_lib.pseudo.mediapipe.select_hand`).
        detector: a :class:`~hand_lib.pseudo.detector.HandDetector` (default: a new
            :class:`~hand_lib.pseudo.mediapipe.MediaPipeHands` for ``hand``).

    Returns:
        Summary dict: ``images``, ``labelled``, ``skipped_existing``, ``hands_found``,
        ``detection_rate`` (of the labelled images), ``per_camera`` rates.
    """
    from PIL import Image
    from tqdm.auto import tqdm

    root = Path(root)
    items = list_images(root, image_dir, sequences)
    if limit is not None:
        items = items[:limit]
    own = detector is None
    if own:
        from hand_lib.pseudo.mediapipe import MediaPipeHands

        detector = MediaPipeHands(hand=hand)
    labelled = skipped = found = 0
    per_cam: dict[int, list[int]] = {}
    try:
        for seq, cam, frame, path in tqdm(items, desc="mediapipe", disable=not progress):
            out = root / label_dir / f"{seq:04d}" / f"cam{cam}" / f"{frame:08d}.json"
            if not overwrite and out.exists():
                skipped += 1
                continue
            with Image.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
            det = detector.detect(rgb)
            write_hanco_label(out, det.keypoints_px, det.confidence, overwrite=True)
            labelled += 1
            found += int(det.hand_found)
            per_cam.setdefault(cam, [0, 0])
            per_cam[cam][0] += 1
            per_cam[cam][1] += int(det.hand_found)
    finally:
        if own:
            detector.close()
    return {
        "root": str(root), "image_dir": image_dir, "label_dir": label_dir, "hand": hand,
        "images": len(items), "labelled": labelled, "skipped_existing": skipped,
        "hands_found": found,
        "detection_rate": found / labelled if labelled else None,
        "per_camera": {f"cam{k}": v[1] / v[0] for k, v in sorted(per_cam.items())},
    }


_REPO = Path(__file__).resolve().parents[2]


def side_venv_python() -> Path | None:
    """The MediaPipe side venv's python (``$HAND_MEDIAPIPE_VENV`` or ``<repo>/.venv-mediapipe``,
    made by ``tools/mediapipe_env.sh``), or None when it does not exist."""
    venv = Path(os.environ.get("HAND_MEDIAPIPE_VENV", _REPO / ".venv-mediapipe"))
    python = venv / "bin" / "python"
    return python if python.is_file() else None


def run_in_side_venv(
    root: str | Path, *, image_dir: str = "rgb", label_dir: str = HANCO_LABEL_DIR,
    hand: str = "right", limit: int | None = None, sequences: Sequence[int] | None = None,
    python: str | Path | None = None, env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run this labeller in the side venv from any environment (e.g. the project venv).

    The subprocess runs this checkout's code (``PYTHONPATH``) with the side venv's mediapipe.

    Args:
        root, image_dir, label_dir, hand, limit, sequences: as in :func:`label_folder`.
        python: the side venv's python (default :func:`side_venv_python`).
        env: extra environment variables for the subprocess.
        timeout: seconds before the subprocess is killed.

    Returns:
        The summary dict of :func:`label_folder`.

    Raises:
        FileNotFoundError: no side venv (create it with ``tools/mediapipe_env.sh``).
        RuntimeError: the labeller failed (with the end of its stderr).
    """
    python = side_venv_python() if python is None else Path(python)
    if python is None or not python.is_file():
        raise FileNotFoundError("no MediaPipe side venv (.venv-mediapipe/bin/python or "
                                "$HAND_MEDIAPIPE_VENV): create it with tools/mediapipe_env.sh")
    child_env = {k: v for k, v in os.environ.items() if k != "PYTHONHOME"}
    child_env["PYTHONPATH"] = str(_REPO)
    # mediapipe imports matplotlib; a Jupyter kernel's inline backend does not exist there.
    child_env["MPLBACKEND"] = "Agg"
    child_env.update(env or {})
    with tempfile.TemporaryDirectory() as tmp:
        summary_file = Path(tmp) / "summary.json"
        cmd = [str(python), "-m", "hand_lib.pseudo.mediapipe_cli", str(Path(root).resolve()),
               "--image-dir", image_dir, "--label-dir", label_dir, "--hand", hand,
               "--no-progress", "--summary", str(summary_file)]
        if limit is not None:
            cmd += ["--limit", str(limit)]
        if sequences is not None:
            cmd += ["--sequences", *map(str, sequences)]
        proc = subprocess.run(cmd, env=child_env, cwd=tmp, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"mediapipe labeller failed (exit {proc.returncode}):\n"
                               f"{proc.stderr[-3000:]}")
        return json.loads(summary_file.read_text())


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    p = argparse.ArgumentParser(
        prog="python -m hand_lib.pseudo.mediapipe_cli",
        description="Label a HanCo-layout folder with MediaPipe Hands (offline).")
    p.add_argument("root", type=Path, help="HanCo-layout root")
    p.add_argument("--image-dir", default="rgb", help="image folder under root (default rgb)")
    p.add_argument("--label-dir", default=HANCO_LABEL_DIR,
                   help=f"label folder to write under root (default {HANCO_LABEL_DIR})")
    p.add_argument("--sequences", type=int, nargs="*", default=None, help="sequence ids")
    p.add_argument("--limit", type=int, default=None, help="label at most N images")
    p.add_argument("--hand", choices=("right", "left", "any"), default="right",
                   help="hand to keep (default right; 'any' ignores MediaPipe's handedness)")
    p.add_argument("--overwrite", action="store_true", help="redo existing labels")
    p.add_argument("--summary", type=Path, default=None, help="also write the summary here")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    summary = label_folder(
        args.root, image_dir=args.image_dir, label_dir=args.label_dir,
        sequences=args.sequences, limit=args.limit, overwrite=args.overwrite,
        progress=not args.no_progress, hand=args.hand)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.summary is not None:
        atomic_write_json(args.summary, summary, dump=lambda o, f: json.dump(o, f, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
