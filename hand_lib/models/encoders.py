"""Image encoders from torchvision that return a feature pyramid.

No weights can be downloaded at run time, so encoders start from random initialisation
(S2HAND's own default) unless ``weights_path`` names a local state dict, e.g. torchvision's
ImageNet checkpoint saved with ``torch.save(model.state_dict(), path)`` on a machine that
has it. Loading checks every key and names the file on any mismatch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock

RESNETS = ("resnet18", "resnet34", "resnet50")
EFFICIENTNETS = ("efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3")
ENCODERS = RESNETS + EFFICIENTNETS

#: residual blocks per stage of the ResNets that can be narrowed (``width`` != 1)
_BASIC_RESNET_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}

#: ImageNet normalisation (what torchvision's pretrained weights expect).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class FeaturePyramid:
    """Encoder features, finest level first.

    Attributes:
        levels: 4 maps at strides 4, 8, 16, 32 of the input: (B, C_i, H/s, W/s).
        pooled: (B, C_4) global average of the last level.
    """

    levels: list[Tensor]
    pooled: Tensor


def _narrow_resnet(name: str, width: float) -> nn.Module:
    """A ResNet-18/34 with every stage's channels scaled by ``width`` (64 * width at the
    stem; torchvision's blocks and layout otherwise), as torchvision module names."""
    base = int(round(64 * width))
    if base < 8:
        raise ValueError(f"width {width} leaves {base} stem channels; need >= 8")
    net = nn.Module()
    net.conv1 = nn.Conv2d(3, base, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(base)
    net.relu = nn.ReLU(inplace=True)
    net.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    inplanes = base
    for i, blocks in enumerate(_BASIC_RESNET_BLOCKS[name]):
        planes, stride = base * 2**i, 1 if i == 0 else 2
        down = None
        if stride != 1 or inplanes != planes:
            down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                 nn.BatchNorm2d(planes))
        layers = [BasicBlock(inplanes, planes, stride, down)]
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        setattr(net, f"layer{i + 1}", nn.Sequential(*layers))
        inplanes = planes
    for m in net.modules():  # torchvision's initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net


class ImageEncoder(nn.Module):
    """A torchvision backbone cut into four stages (strides 4, 8, 16, 32).

    Args:
        name: one of :data:`ENCODERS`.
        weights_path: optional local state dict of the torchvision model (ImageNet weights).
        width: channel multiplier of ResNet-18/34 (1: torchvision's network; 0.5 halves every
            stage, about a quarter of the compute). Other encoders take only 1.

    Attributes:
        channels: (4,) channel counts of the four levels.
    """

    def __init__(self, name: str = "resnet18", weights_path: str | os.PathLike | None = None,
                 width: float = 1.0):
        super().__init__()
        if name not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {name!r}")
        if width != 1.0 and name not in _BASIC_RESNET_BLOCKS:
            raise ValueError(f"width {width} needs one of {sorted(_BASIC_RESNET_BLOCKS)}, "
                             f"got {name!r} (use width=1)")
        if width != 1.0 and weights_path:
            raise ValueError("pretrained weights need width=1 (torchvision's network)")
        self.name = name
        self.width = width
        if width != 1.0:
            net = _narrow_resnet(name, width)
        else:
            net = getattr(torchvision.models, name)(weights=None)
        if weights_path:
            load_backbone_weights(net, weights_path)
        if name in RESNETS:
            stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
            self.stages = nn.ModuleList(
                [nn.Sequential(stem, net.layer1), net.layer2, net.layer3, net.layer4]
            )
        else:
            f = net.features  # strides: [0,1]=2, 2=4, 3=8, [4,5]=16, [6,7,8]=32
            self.stages = nn.ModuleList(
                [nn.Sequential(f[0], f[1], f[2]), f[3], nn.Sequential(f[4], f[5]),
                 nn.Sequential(f[6], f[7], f[8])]  # fmt: skip
            )
        with torch.no_grad():
            probe = self._levels(torch.zeros(1, 3, 64, 64))
        self.channels = tuple(int(x.shape[1]) for x in probe)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)

    def _levels(self, x: Tensor) -> list[Tensor]:
        levels = []
        for stage in self.stages:
            x = stage(x)
            levels.append(x)
        return levels

    def forward(self, images: Tensor) -> FeaturePyramid:
        """Args: images (B, 3, H, W) RGB in [0, 1] (normalised here). Returns the pyramid."""
        if images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape)
            raise ValueError(f"images must be (B, 3, H, W) RGB in [0, 1], got {shape}")
        levels = self._levels((images - self.mean) / self.std)
        return FeaturePyramid(levels=levels, pooled=levels[-1].mean(dim=(2, 3)))


def load_backbone_weights(net: nn.Module, path: str | os.PathLike) -> None:
    """Load a local torchvision state dict into ``net`` (strict), with errors naming the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"encoder weights {path} not found: save torchvision's ImageNet state dict there, "
            "or leave weights_path empty for random initialisation"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even when not strict
        raise ValueError(f"{path} does not match {type(net).__name__}: {exc}") from exc
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match {type(net).__name__}: missing keys {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}"
        )
