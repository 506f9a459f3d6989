"""Building blocks of HaMuCo's cross-view interaction network.

Tokens are laid out as ``(B, N, J, D)``: B samples, N views, J = 21 joints, D channels.
Nothing here knows the order of the views: there is no view embedding, the graph block
pools across views with a max and the attention treats all views x joints tokens as a
set, so every block is equivariant to permutations of the N views.

``visible`` masks (B, N) bool say which views may inform the others (True = visible). A
view that is not visible contributes to no other token; its own tokens are still updated
(from the visible views), so a view hidden by random masking during training still gets a
prediction, made from the other views.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["CrossViewLayer", "GraphBlock", "TransformerBlock", "sample_joint_features"]


def sample_joint_features(levels: list[Tensor], keypoints_2d: Tensor) -> Tensor:
    """Bilinearly sample feature maps at 2D keypoints, with no gradient to the keypoints.

    The keypoints are detached on purpose: the sampled features feed the cross-view
    network, and letting its losses move the single-view 2D keypoints through the sampling
    locations would give the single-view head a gradient that only says "look elsewhere".

    Args:
        levels: feature maps (P, C_i, H_i, W_i), any number of levels and sizes.
        keypoints_2d: (P, J, 2) normalised image coordinates in [-1, 1] (``grid_sample``
            with ``align_corners=False``: -1 and 1 are the outer pixel edges); points outside
            the image sample zeros.

    Returns:
        (P, J, sum_i C_i) features, levels concatenated in the order given.
    """
    if keypoints_2d.ndim != 3 or keypoints_2d.shape[-1] != 2:
        raise ValueError(f"keypoints_2d must be (P, J, 2), got {tuple(keypoints_2d.shape)}")
    grid = keypoints_2d.detach()[:, :, None, :]  # (P, J, 1, 2)
    sampled = [
        F.grid_sample(level, grid.to(level.dtype), mode="bilinear", align_corners=False)[..., 0]
        for level in levels
    ]  # each (P, C_i, J)
    return torch.cat(sampled, dim=1).transpose(1, 2)


class GraphBlock(nn.Module):
    """Per-view graph convolutions over the joints, max-pooled across the visible views.

    ``LayerNorm -> A1 X W1 -> LeakyReLU -> dropout -> A2 X W2 -> LeakyReLU -> dropout``, each
    adjacency ``A`` (J, J) learnable and initialised to the identity (so the block starts as a
    per-joint MLP and learns which joints inform which). The result of each view is
    max-pooled over the visible views of its sample and broadcast back to every view.

    Args:
        dim: token channels D.
        num_joints: J.
        dropout: dropout probability.
    """

    def __init__(self, dim: int, num_joints: int = 21, dropout: float = 0.1) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.adjacency = nn.ParameterList(
            [nn.Parameter(torch.eye(num_joints)) for _ in range(2)]
        )
        self.linear = nn.ModuleList([nn.Linear(dim, dim) for _ in range(2)])
        self.act = nn.LeakyReLU(0.2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: Tensor, visible: Tensor) -> Tensor:
        """Args: tokens (B, N, J, D), visible (B, N) bool, at least one True per sample.

        Returns: (B, N, J, D), the same pooled value for every view of a sample.
        """
        x = self.norm(tokens)
        for adjacency, linear in zip(self.adjacency, self.linear, strict=True):
            x = self.dropout(self.act(adjacency @ linear(x)))
        hidden = ~visible[:, :, None, None]
        pooled = x.masked_fill(hidden, float("-inf")).amax(dim=1, keepdim=True)
        return pooled.expand_as(x)


class TransformerBlock(nn.Module):
    """Pre-norm transformer block over all views x joints tokens of a sample.

    ``x + MHA(LN x)`` then ``+ MLP(LN .)``. Tokens of views that are not visible are masked
    out as keys (nobody attends to them) but are still updated as queries.

    Args:
        dim: token channels D (divisible by ``num_heads``).
        num_heads: attention heads.
        mlp_ratio: hidden width of the MLP, in multiples of D.
        dropout: dropout probability (attention weights and MLP).
    """

    def __init__(
        self, dim: int, num_heads: int = 4, mlp_ratio: float = 2.0, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(round(dim * mlp_ratio))
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, tokens: Tensor, visible: Tensor) -> Tensor:
        """Args: tokens (B, N, J, D), visible (B, N) bool. Returns (B, N, J, D)."""
        B, N, J, D = tokens.shape
        x = tokens.reshape(B, N * J, D)
        ignore = (~visible)[:, :, None].expand(B, N, J).reshape(B, N * J)
        h = self.norm_attn(x)
        x = x + self.attn(h, h, h, key_padding_mask=ignore, need_weights=False)[0]
        x = x + self.mlp(self.norm_mlp(x))
        return x.reshape(B, N, J, D)


class CrossViewLayer(nn.Module):
    """One interaction layer: the sum of a :class:`TransformerBlock` (residual included)
    and a :class:`GraphBlock` branch, both reading the same input tokens."""

    def __init__(
        self,
        dim: int,
        num_joints: int = 21,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.graph = GraphBlock(dim, num_joints, dropout)
        self.transformer = TransformerBlock(dim, num_heads, mlp_ratio, dropout)

    def forward(self, tokens: Tensor, visible: Tensor) -> Tensor:
        """Args: tokens (B, N, J, D), visible (B, N) bool. Returns (B, N, J, D)."""
        return self.transformer(tokens, visible) + self.graph(tokens, visible)
