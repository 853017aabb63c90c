"""Protocol transforms on decoded uint8 tensors: random/centre crop, flip, normalise; batches on the device.

Randomness comes only from the generator passed in, so an epoch's batches are a pure function of
(seed, epoch): a resumed run sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from bench.data.tensor_store import DecodedSplit
from bench.spec import ImageSpec


def shuffled(count: int, batch_size: int, generator: torch.Generator, drop_last: bool = False
             ) -> Iterator[torch.Tensor]:
    """Index batches of one epoch: one permutation drawn from the generator (the only draw before augmentation)."""
    order = torch.randperm(count, generator=generator)
    for start in range(0, count, batch_size):
        index = order[start : start + batch_size]
        if drop_last and len(index) < batch_size:
            break
        yield index


def in_order(count: int, batch_size: int) -> Iterator[torch.Tensor]:
    for start in range(0, count, batch_size):
        yield torch.arange(start, min(start + batch_size, count))


class ImageBatches:
    """Serves normalised (B, 3, H, W) float batches and labels for one split on one device.

    `on_device` False keeps fixed-size pixels in host memory (a split too big for the device, or the memory
    fallback after an out-of-memory error): each batch is then copied over, with the same values."""

    def __init__(self, split: DecodedSplit, images: ImageSpec, device: torch.device, on_device: bool = True) -> None:
        self.split = split
        self.spec = images
        self.device = device
        self.labels = split.labels.to(device)
        stacked = split.images if isinstance(split.images, torch.Tensor) else None
        # Fixed-size images live on the device once; ragged ones (FGVC) stay on the host and are cropped there.
        self.pixels = stacked.to(device) if stacked is not None and on_device else stacked
        self.mean = torch.tensor(images.mean, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(images.std, device=device).view(1, 3, 1, 1) * 255.0

    def __len__(self) -> int:
        return len(self.split)

    def epoch(self, batch_size: int, generator: torch.Generator, drop_last: bool = False
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled training batches with the training augmentation."""
        for index in shuffled(len(self), batch_size, generator, drop_last):
            yield self._images(index, train=True, generator=generator), self.labels[index.to(self.device)]

    def in_order(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Evaluation batches in list order (with their indices), evaluation transform."""
        for index in in_order(len(self), batch_size):
            yield index, self._images(index, train=False, generator=None), self.labels[index.to(self.device)]

    def _images(self, index: torch.Tensor, train: bool, generator: torch.Generator | None) -> torch.Tensor:
        crop = self.spec.crop
        if self.pixels is not None and crop is None:
            batch = self.pixels[index.to(self.pixels.device)].to(self.device)
        else:
            batch = self._cropped(index, train, generator)
        batch = batch.permute(0, 3, 1, 2)
        if train and self.spec.flip:
            assert generator is not None
            flip = (torch.rand(len(index), generator=generator) < 0.5).to(self.device).view(-1, 1, 1, 1)
            batch = torch.where(flip, batch.flip(-1), batch)
        return (batch.float() - self.mean) / self.std

    def _cropped(self, index: torch.Tensor, train: bool, generator: torch.Generator | None) -> torch.Tensor:
        """Crop each image (random at training if train_crop='random', else centre), then stack."""
        size = self.spec.crop
        pieces = []
        for i in index.tolist():
            image = self.pixels[i] if self.pixels is not None else self.split.images[i]
            h, w = int(image.shape[0]), int(image.shape[1])
            if size is None:
                pieces.append(image)
                continue
            if h < size or w < size:
                raise ValueError(f"image {i} of split '{self.split.name}' is {h}x{w}, smaller than crop {size}")
            if train and self.spec.train_crop == "random":
                assert generator is not None
                top = int(torch.randint(0, h - size + 1, (1,), generator=generator))
                left = int(torch.randint(0, w - size + 1, (1,), generator=generator))
            else:  # torchvision CenterCrop rounding
                top, left = round((h - size) / 2.0), round((w - size) / 2.0)
            pieces.append(image[top : top + size, left : left + size])
        return torch.stack(pieces).to(self.device)


class FeatureBatches:
    """The same batches as ImageBatches, but of frozen-backbone features computed once (linear probing).

    Valid only when the training transform is deterministic (no flip, no random crop) and the backbone is frozen
    in eval mode: then every epoch would recompute exactly these features. The shuffling draws the same
    permutation from the generator as ImageBatches.epoch, so runs see the same batches in the same order.
    """

    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.features = features
        self.labels = labels

    @staticmethod
    def usable(images: ImageSpec) -> bool:
        return not images.flip and (images.crop is None or images.train_crop != "random")

    def __len__(self) -> int:
        return len(self.labels)

    def epoch(self, batch_size: int, generator: torch.Generator, drop_last: bool = False
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for index in shuffled(len(self), batch_size, generator, drop_last):
            on_device = index.to(self.features.device)
            yield self.features[on_device], self.labels[on_device]

    def in_order(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for index in in_order(len(self), batch_size):
            on_device = index.to(self.features.device)
            yield index, self.features[on_device], self.labels[on_device]
