"""The fused CPU skinning kernel (hand_lib.mano.fused) against the PyTorch path.

The kernel is built here when a C++ compiler is present (CI has one): a build failure then
fails these tests instead of silently timing the fallback. Without a compiler they skip.
"""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

from hand_lib.mano import ManoLayer, fused
from hand_lib.mano.lbs import _BlendAndApply, linear_blend_skinning

pytestmark = pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None, reason="no C++ compiler"
)


@pytest.fixture(scope="module")
def kernel():
    with fused.forced("require"):
        return fused.cpu_kernel()


def _inputs(V, J, B, dtype, sparse, seed=0):
    gen = torch.Generator().manual_seed(seed)
    weights = torch.rand(V, J, generator=gen, dtype=dtype)
    if sparse:  # a few joints per vertex, like skinning weights
        keep = torch.rand(V, J, generator=gen) < 0.2
        keep[torch.arange(V), torch.randint(0, J, (V,), generator=gen)] = True
        weights = weights * keep
    weights = weights / weights.sum(1, keepdim=True)
    transforms = torch.randn(3, 4, J, B, generator=gen, dtype=dtype)
    vertices = torch.randn(3, V, B, generator=gen, dtype=dtype)
    transl = torch.randn(3, 1, B, generator=gen, dtype=dtype)
    return weights, transforms, vertices, transl


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("B", [1, 17, 300])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("with_transl", [False, True])
def test_matches_pytorch_path(kernel, dtype, B, sparse, with_transl):
    """Forward and every gradient agree with _BlendAndApply (batch sizes that are not a
    multiple of the SIMD width included)."""
    weights, transforms, vertices, transl = _inputs(23, 7, B, dtype, sparse)
    transl = transl if with_transl else None
    grad = torch.randn(3, 23, B, dtype=dtype)
    results = []
    for fn in (
        lambda *a: fused.FusedSkinning.apply(kernel, weights, *a),
        lambda *a: _BlendAndApply.apply(weights, *a),
    ):
        leaves = [t.clone().requires_grad_() if t is not None else None
                  for t in (transforms, vertices, transl)]  # fmt: skip
        out = fn(*leaves)
        out.backward(grad)
        results.append([out, *(t.grad for t in leaves if t is not None)])
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, **tol)


def test_gradcheck(kernel):
    """The hand-written backward against finite differences (float64)."""
    weights, transforms, vertices, transl = _inputs(9, 4, 19, torch.float64, sparse=True, seed=1)
    leaves = [t.requires_grad_() for t in (transforms, vertices, transl)]
    assert torch.autograd.gradcheck(
        lambda *a: fused.FusedSkinning.apply(kernel, weights, *a), leaves
    )


def test_result_does_not_depend_on_thread_count(kernel):
    """Blocks are cut by thread count; each lane's arithmetic is the same, so bitwise equal."""
    weights, transforms, vertices, transl = _inputs(50, 16, 700, torch.float32, sparse=True)
    grad = torch.randn(3, 50, 700)
    threads = torch.get_num_threads()
    outs = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            out = kernel.skinning_forward(weights, transforms.reshape(12, 16, 700), vertices,
                                          transl.reshape(3, 700))  # fmt: skip
            outs.append([out, *kernel.skinning_backward(
                weights, transforms.reshape(12, 16, 700), vertices, grad)])  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    for other in outs[1:]:
        for a, b in zip(outs[0], other, strict=True):
            assert torch.equal(a, b)


def test_layer_same_on_both_paths(kernel):
    """ManoLayer on the open hand: the fused and the PyTorch skinning give the same mesh,
    keypoints and input gradients."""
    layer = ManoLayer()
    gen = torch.Generator().manual_seed(3)
    pose = torch.randn(37, 16, 3, generator=gen) * 0.4
    betas = torch.randn(37, 10, generator=gen)
    transl = torch.randn(37, 3, generator=gen) * 0.1
    results = []
    for path in ("require", "off"):
        with fused.forced(path):
            p, b, t = (x.clone().requires_grad_() for x in (pose, betas, transl))
            out = layer(p, b, t)
            (out.vertices.square().sum() + out.keypoints.sum()).backward()
            results.append((out.vertices, out.keypoints, p.grad, b.grad, t.grad))
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-6)
    assert fused.active_path("cpu") == "fused-cpu"
    assert fused.active_path("cuda") == "torch"  # decided from the device type alone
    with fused.forced("off"):
        assert fused.active_path("cpu") == "torch"


def test_bad_shapes_raise(kernel):
    weights, transforms, vertices, _ = _inputs(10, 4, 5, torch.float32, sparse=False)
    with pytest.raises(RuntimeError, match=r"transforms must be \(12, J, B\)"):
        kernel.skinning_forward(weights, transforms.reshape(12, 4, 5)[:, :3], vertices, None)
    with pytest.raises(RuntimeError, match="one dtype"):
        kernel.skinning_forward(weights.double(), transforms.reshape(12, 4, 5), vertices, None)
    with pytest.raises(RuntimeError, match=r"transl must be contiguous \(3, B\)"):
        kernel.skinning_forward(weights, transforms.reshape(12, 4, 5), vertices,
                                torch.zeros(3, 4))  # fmt: skip


def test_build_failure_falls_back_with_a_warning(monkeypatch):
    """No compiler: 'auto' warns once and skins with PyTorch; 'require' raises naming the
    source file and the compiler's error."""
    from torch.utils import cpp_extension

    def broken(**kwargs):
        raise RuntimeError("Error building extension:\nfoo.cpp:1: error: no compiler here\n"
                           "ninja: build stopped: subcommand failed.")  # fmt: skip

    monkeypatch.setattr(cpp_extension, "load", broken)
    monkeypatch.setattr(fused, "_kernel", None)
    monkeypatch.setattr(fused, "_failure", None)
    with fused.forced("auto"), pytest.warns(RuntimeWarning, match="no compiler here"):
        assert fused.cpu_kernel() is None
    with fused.forced("auto"), warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        out = ManoLayer()(torch.zeros(2, 16, 3))  # the fallback path
    assert out.vertices.shape == (2, 778, 3)
    with fused.forced("require"), pytest.raises(RuntimeError, match="skinning_cpu.cpp"):
        fused.cpu_kernel()


def test_mode_is_validated(monkeypatch):
    monkeypatch.setenv(fused.ENV_VAR, "fast")
    with pytest.raises(ValueError, match="HAND_LIB_FUSED_SKINNING must be one of"):
        fused.mode()
    monkeypatch.setenv(fused.ENV_VAR, "off")
    assert fused.mode() == "off" and fused.cpu_kernel() is None
    vertices = torch.zeros(3, 778, 2)
    assert not fused.applies_to(vertices)
    with fused.forced("auto"):
        assert fused.applies_to(vertices)
    assert not fused.applies_to(vertices.half())


def test_linear_blend_skinning_uses_the_kernel(kernel, monkeypatch):
    """The public function dispatches to the kernel on the CPU (a spy counts the calls)."""
    calls = []
    real = fused.FusedSkinning.apply

    def spy(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(fused.FusedSkinning, "apply", spy)
    weights, transforms, vertices, _ = _inputs(10, 4, 5, torch.float32, sparse=False)
    with fused.forced("auto"):
        linear_blend_skinning(vertices, weights, transforms.permute(3, 2, 0, 1))
    with fused.forced("off"):
        linear_blend_skinning(vertices, weights, transforms.permute(3, 2, 0, 1))
    assert len(calls) == 1
