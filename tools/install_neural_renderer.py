"""Build and install neural-renderer-pytorch 1.1.3 against PyTorch 2.x (CUDA only).

The PyPI sdist no longer compiles with current PyTorch. This script downloads it with pip,
applies the source edits known to be needed on PyTorch 2.x (measured with torch 2.11 on an
H100: the build then takes about 2 minutes) and installs the edited tree:

- ``AT_CHECK`` -> ``TORCH_CHECK`` and ``x.type().is_cuda()`` -> ``x.is_cuda()``
  (the ``*_cuda.cpp`` files);
- ``AT_DISPATCH_FLOATING_TYPES(X.type(), ...)`` -> ``AT_DISPATCH_FLOATING_TYPES(X.scalar_type(),
  ...)`` (the ``*_kernel.cu`` files);
- ``.data<T>()`` -> ``.data_ptr<T>()`` (deprecated accessor; all C++/CUDA files).

It refuses to run unless torch is a CUDA build with a visible GPU and a CUDA compiler is
found, because the extension has no CPU code at all. The project never needs it: it is the
optional comparison backend ``RenderSettings(backend="neural_renderer")``.

    python tools/install_neural_renderer.py            # download, patch, build, install
    python tools/install_neural_renderer.py --sdist FILE.tar.gz  # no PyPI: a carried sdist
    python tools/install_neural_renderer.py --patch-only DIR   # just edit an unpacked tree
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "neural-renderer-pytorch==1.1.3"

# (pattern, replacement, file suffixes it applies to)
EDITS: list[tuple[re.Pattern[str], str, tuple[str, ...]]] = [
    (re.compile(r"\bAT_CHECK\b"), "TORCH_CHECK", (".cpp", ".cu", ".h")),
    (re.compile(r"\.type\(\)\.is_cuda\(\)"), ".is_cuda()", (".cpp", ".cu", ".h")),
    (re.compile(r"(AT_DISPATCH_FLOATING_TYPES\s*\(\s*[A-Za-z_][A-Za-z0-9_.]*)\.type\(\)"),
     r"\1.scalar_type()", (".cpp", ".cu", ".h")),
    (re.compile(r"\.data<([^<>()]+)>\(\)"), r".data_ptr<\1>()", (".cpp", ".cu", ".h")),
]
# What must be gone after patching (a new upstream spelling would otherwise slip through).
LEFTOVERS = [re.compile(r"\bAT_CHECK\b"), re.compile(r"\.type\(\)\.is_cuda\(\)"),
             re.compile(r"AT_DISPATCH_FLOATING_TYPES\s*\([^,]*\.type\(\)")]


class InstallError(RuntimeError):
    """The build cannot or must not proceed here."""


def patch_sources(root: Path) -> dict[str, int]:
    """Apply ``EDITS`` to every C++/CUDA file under ``root`` in place.

    Returns:
        {relative path: number of replacements} for the files that changed.

    Raises:
        InstallError: no sources found, or an old API spelling is left after editing.
    """
    sources = [p for p in sorted(root.rglob("*")) if p.suffix in (".cpp", ".cu", ".h")]
    if not sources:
        raise InstallError(f"no C++/CUDA sources under {root}")
    changed: dict[str, int] = {}
    for path in sources:
        text = path.read_text()
        total = 0
        for pattern, replacement, suffixes in EDITS:
            if path.suffix in suffixes:
                text, n = pattern.subn(replacement, text)
                total += n
        if total:
            path.write_text(text)
            changed[str(path.relative_to(root))] = total
        for pattern in LEFTOVERS:
            if pattern.search(text):
                raise InstallError(f"{path}: still uses {pattern.pattern!r} after patching")
    return changed


def check_cuda_build_environment() -> None:
    """Raise ``InstallError`` unless torch has CUDA, a GPU is visible and nvcc is found."""
    try:
        import torch
        from torch.utils.cpp_extension import CUDA_HOME
    except ImportError as error:  # pragma: no cover - torch is a project dependency
        raise InstallError(f"torch is not importable: {error}") from error
    if torch.version.cuda is None:
        raise InstallError(
            f"torch {torch.__version__} is a CPU-only build: neural_renderer is CUDA-only and "
            "cannot be built here. The project does not need it (backend='torch')."
        )
    if not torch.cuda.is_available():
        raise InstallError("torch has CUDA support but no GPU is visible "
                           "(torch.cuda.is_available() is False)")
    nvcc = shutil.which("nvcc") or (CUDA_HOME and str(Path(CUDA_HOME) / "bin" / "nvcc"))
    if not nvcc or not Path(nvcc).exists():
        raise InstallError("no CUDA compiler: put nvcc on PATH or set CUDA_HOME")


def download_sdist(dest: Path) -> Path:
    """pip-download the sdist into ``dest`` (needs PyPI); return the archive."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", PACKAGE, "--no-deps", "--no-binary", ":all:",
         "--no-build-isolation", "-d", str(dest)],
        check=True,
    )
    archives = sorted(dest.glob("*.tar.gz"))
    if len(archives) != 1:
        raise InstallError(f"expected one sdist in {dest}, found {[a.name for a in archives]}")
    return archives[0]


def unpack_sdist(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` into ``dest``; return the source tree (the folder with setup.py)."""
    if not archive.is_file():
        raise InstallError(f"{archive}: no such sdist (neural_renderer_pytorch-1.1.3.tar.gz)")
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover
            tar.extractall(dest)
    trees = [p for p in dest.iterdir() if p.is_dir() and (p / "setup.py").exists()]
    if len(trees) != 1:
        raise InstallError(f"expected one source tree with setup.py in {dest}")
    return trees[0]


def install_tree(tree: Path) -> None:
    """pip-install the patched tree against the torch already installed."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
                    str(tree)], check=True)
    check = ("import neural_renderer, torch; print('neural_renderer imports with torch', "
             "torch.__version__)")
    subprocess.run([sys.executable, "-c", check], check=True, cwd=tempfile.gettempdir())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch-only", type=Path, default=None, metavar="DIR",
                        help="only apply the source edits to an unpacked tree")
    parser.add_argument("--sdist", type=Path, default=None, metavar="FILE",
                        help="use this neural_renderer_pytorch-1.1.3.tar.gz instead of "
                             "downloading it (for machines without PyPI)")  # fmt: skip
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="work in DIR (kept) instead of a temporary folder")
    args = parser.parse_args(argv)
    try:
        if args.patch_only is not None:
            for name, n in patch_sources(args.patch_only).items():
                print(f"patched {name}: {n} edits")
            return 0
        check_cuda_build_environment()
        with tempfile.TemporaryDirectory() as tmp:
            work = args.keep or Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            archive = args.sdist or download_sdist(work)
            tree = unpack_sdist(archive, work)
            for name, n in patch_sources(tree).items():
                print(f"patched {name}: {n} edits")
            install_tree(tree)
    except (InstallError, subprocess.CalledProcessError) as error:
        print(f"install_neural_renderer: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
