"""A batch sampler whose order is a pure function of (seed, epoch, rank), so that a run
killed in the middle of an epoch resumes on exactly the batch it would have drawn next."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableBatchSampler(Sampler[list[int]]):
    """Shuffled (or sequential) batches of dataset indices, sharded across DDP ranks.

    The permutation of epoch ``e`` comes from a private generator seeded with
    ``(seed, e)``; the global RNGs are never touched. Under DDP the permutation is padded by
    wrapping around to a multiple of ``world_size`` and rank ``r`` takes every
    ``world_size``-th index from ``r`` (like ``DistributedSampler``), so every rank yields
    the same number of batches.

    Args:
        num_samples: length of the dataset.
        batch_size: indices per batch.
        shuffle: shuffle each epoch; False keeps dataset order.
        seed: shuffling seed.
        drop_last: drop the last incomplete batch of each rank.
        rank, world_size: this process and the number of processes.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_samples < 1:
            raise ValueError("the dataset is empty")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.skip_batches = 0
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"no complete batch: {num_samples} samples over {world_size} process(es) give "
                f"{self.samples_per_rank} per process, fewer than batch_size {batch_size} "
                "(lower batch_size or set drop_last false)"
            )

    @property
    def samples_per_rank(self) -> int:
        """Indices each rank sees per epoch (after padding)."""
        return -(-self.num_samples // self.world_size)

    @property
    def batches_per_epoch(self) -> int:
        """Full length of an epoch in batches, ignoring ``skip_batches``."""
        if self.drop_last:
            return self.samples_per_rank // self.batch_size
        return -(-self.samples_per_rank // self.batch_size)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Select the epoch's permutation and skip its first ``skip_batches`` batches."""
        if not 0 <= skip_batches <= self.batches_per_epoch:
            raise ValueError(f"skip_batches {skip_batches} not in [0, {self.batches_per_epoch}]")
        self.epoch = epoch
        self.skip_batches = skip_batches

    def epoch_order(self) -> torch.Tensor:
        """This rank's indices for the current epoch, in order, before batching."""
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed((self.seed * 1_000_003 + self.epoch) % (2**63))
            order = torch.randperm(self.num_samples, generator=generator)
        else:
            order = torch.arange(self.num_samples)
        total = self.samples_per_rank * self.world_size
        if total > self.num_samples:
            order = order.repeat(-(-total // self.num_samples))[:total]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        indices = self.epoch_order().tolist()
        for b in range(self.skip_batches, self.batches_per_epoch):
            yield indices[b * self.batch_size : (b + 1) * self.batch_size]

    def __len__(self) -> int:
        return self.batches_per_epoch - self.skip_batches
