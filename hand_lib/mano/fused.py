"""Optional fused CPU skinning kernel, compiled on first use, with the PyTorch path as fallback.

Linear blend skinning in PyTorch takes a dozen ``(V, J) @ (J, B)`` products and as many
element-wise passes over (V, B) planes each way; at batch 1024 every pass leaves the cache
and skinning dominates a CPU forward + backward. ``csrc/skinning_cpu.cpp`` does the same
arithmetic in one pass over the vertices (reading each input once, writing each output
once, skipping joints whose weight is zero). It is built with
``torch.utils.cpp_extension`` the first time a CPU layer skins (about 30 s, then cached in
``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``) and needs a C++
compiler and the Python headers; when either is missing the layer falls back, once with
a warning, to the pure PyTorch path, which gives the same numbers (tested).

``HAND_LIB_FUSED_SKINNING`` selects: ``auto`` (default: use it on the CPU when it builds),
``off`` (always the PyTorch path) or ``require`` (raise if it cannot be built).
CUDA tensors and code traced by ``torch.compile`` always take the PyTorch path.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import shutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

ENV_VAR = "HAND_LIB_FUSED_SKINNING"
SOURCE = Path(__file__).with_name("csrc") / "skinning_cpu.cpp"
_MODES = ("auto", "off", "require")

log = logging.getLogger(__name__)
_kernel: ModuleType | None = None
_failure: str | None = None
_forced: str | None = None


def mode() -> str:
    """The current setting: :func:`forced`'s if inside one, else ``HAND_LIB_FUSED_SKINNING``
    (read on every call)."""
    value = _forced or os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in _MODES:
        raise ValueError(f"{ENV_VAR} must be one of {', '.join(_MODES)}, got {value!r}")
    return value


@contextlib.contextmanager
def forced(value: str) -> Iterator[None]:
    """Use ``value`` ("auto", "off" or "require") instead of the environment inside the
    block, e.g. to time or compare both paths in one process."""
    global _forced
    if value not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, got {value!r}")
    previous, _forced = _forced, value
    try:
        yield
    finally:
        _forced = previous


def active_path(device: torch.device | str = "cpu") -> str:
    """``"fused-cpu"`` if skinning on ``device`` takes the C++ kernel now (building it if
    needed), else ``"torch"``."""
    if torch.device(device).type != "cpu" or mode() == "off":
        return "torch"
    return "fused-cpu" if cpu_kernel() is not None else "torch"


def _flags() -> list[str]:
    flags = ["-O3"]  # torch.utils.cpp_extension adds the C++ standard its headers need
    if sys.platform != "darwin":  # Apple clang has no -fopenmp; at::parallel_for then runs serially
        flags.append("-fopenmp")
    if platform.machine().lower() in ("x86_64", "amd64"):
        flags.append("-march=native")  # built on the machine that runs it
    return flags


def _build_name(flags: list[str]) -> str:
    """Extension name keyed by the source, the flags and this CPU, so a build directory
    shared between machines (a networked home) never serves a binary built for another
    instruction set."""
    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update(" ".join(flags).encode())
    digest.update(torch.__version__.encode())
    try:
        cpu = next(
            line
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        )
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    digest.update(cpu.encode())
    return f"hand_lib_skinning_cpu_{digest.hexdigest()[:12]}"


def _first_error(exc: Exception) -> str:
    """The compiler's first error line (ninja's last line only says that the build stopped)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    compiler = [line for line in lines if "error:" in line]  # gcc/clang: "file:line: error: ..."
    return f"{type(exc).__name__}: {(compiler or lines or ['no message'])[0][:300]}"


def cpu_kernel() -> ModuleType | None:
    """The compiled extension, building it on the first call; None when disabled or when
    the build failed (``require`` mode raises instead)."""
    global _kernel, _failure
    current = mode()
    if current == "off":
        return None
    if _kernel is None and _failure is None:
        from torch.utils import cpp_extension

        flags = _flags()
        name = _build_name(flags)
        # torch looks for `ninja` on PATH; the pip wheel puts it beside this interpreter,
        # which is not on PATH when a venv's python runs without activating the venv
        here = Path(sys.executable).parent
        if shutil.which("ninja") is None and shutil.which("ninja", path=str(here)):
            os.environ["PATH"] = f"{here}{os.pathsep}{os.environ.get('PATH', '')}"
        log.info("building the fused CPU skinning kernel %s (once, ~30 s)", name)
        try:
            _kernel = cpp_extension.load(
                name=name,
                sources=[str(SOURCE)],
                extra_cflags=flags,
                extra_ldflags=["-fopenmp"] if "-fopenmp" in flags else [],
                verbose=False,
            )
        except Exception as exc:  # no compiler, no headers, unsupported platform
            _failure = _first_error(exc)
            if current != "require":
                warnings.warn(
                    f"hand_lib: the fused CPU skinning kernel ({SOURCE.name}) could not be "
                    f"built ({_failure}); using the PyTorch path (same results, slower). "
                    f"Set {ENV_VAR}=off to skip the attempt.",
                    RuntimeWarning,
                    stacklevel=3,
                )
    if _kernel is None and current == "require":
        raise RuntimeError(
            f"{ENV_VAR}=require but the fused CPU skinning kernel {SOURCE} could not be "
            f"built: {_failure}"
        )
    return _kernel


def applies_to(vertices: Tensor) -> bool:
    """Whether skinning ``vertices`` should take the fused kernel (without building it)."""
    return (
        vertices.device.type == "cpu"
        and vertices.dtype in (torch.float32, torch.float64)
        and not torch.compiler.is_compiling()
        and mode() != "off"
    )


class FusedSkinning(torch.autograd.Function):
    """Autograd wrapper of the C++ kernel; same contract as
    :class:`hand_lib.mano.lbs._BlendAndApply` (coordinate-major layouts), first-order
    gradients only."""

    @staticmethod
    def forward(
        ctx, kernel, weights: Tensor, transforms: Tensor, vertices: Tensor, transl: Tensor | None
    ) -> Tensor:  # type: ignore[override]
        # weights (V, J); transforms (3, 4, J, B); vertices (3, V, B); transl (3, 1, B) or None
        J, B = transforms.shape[2:]
        flat = transforms.reshape(12, J, B)
        ctx.kernel = kernel
        ctx.has_transl = transl is not None
        ctx.save_for_backward(weights, flat, vertices)
        shift = None if transl is None else transl.reshape(3, B)
        return kernel.skinning_forward(weights, flat, vertices, shift)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        weights, flat, vertices = ctx.saved_tensors
        grad_t, grad_v, grad_shift = ctx.kernel.skinning_backward(
            weights, flat, vertices, grad_out.contiguous()
        )
        J, B = flat.shape[1:]
        grad_transforms = grad_t.view(3, 4, J, B) if ctx.needs_input_grad[2] else None
        grad_vertices = grad_v if ctx.needs_input_grad[3] else None
        grad_transl = None
        if ctx.has_transl and ctx.needs_input_grad[4]:
            grad_transl = grad_shift.view(3, 1, B)
        return None, None, grad_transforms, grad_vertices, grad_transl
