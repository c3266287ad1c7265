"""Batches of a data part: in-memory uint8 images augmented on tensors (32x32), or a DataLoader (224x224)."""

import torch
import torch.nn.functional as F

from .data import normalize


def augment(x_uint8, generator, pad=4):
    """Random crop with zero padding ``pad`` and horizontal flip, per image, on a uint8 batch."""
    b, _, h, w = x_uint8.shape
    padded = F.pad(x_uint8, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x_uint8.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(x_uint8.device)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x_uint8.device)
    rows = oy[:, None] + torch.arange(h, device=x_uint8.device)
    cols = ox[:, None] + torch.arange(w, device=x_uint8.device)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=x_uint8.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


class TensorLoader:
    """Batches from in-memory uint8 images: shuffled and augmented when ``train``; normalised floats out."""

    def __init__(self, images, labels, batch_size, train, generator=None, device="cpu"):
        self.images, self.labels = images.to(device), labels.to(device)
        self.batch_size, self.train = batch_size, train
        self.generator = generator or torch.Generator().manual_seed(0)

    def __len__(self):
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.train else torch.arange(n)
        order = order.to(self.images.device)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            x = self.images[idx]
            if self.train:
                x = augment(x, self.generator)
            yield normalize(x), self.labels[idx]


def loader(part, batch_size, train, generator=None, device="cpu", workers=0):
    """Batches of a data part: a ``TensorLoader`` for ``(images, labels)``, a ``DataLoader`` for a dataset.

    Decoded datasets (32x32) batch ``batch_size`` images; evaluation of image datasets (224x224) batches
    at most 256, to bound memory.
    """
    if isinstance(part, (tuple, list)):
        return TensorLoader(*part, batch_size, train, generator, device)
    if not train:
        return torch.utils.data.DataLoader(part, min(batch_size, 256), num_workers=workers)
    # not persistent: each epoch's workers are seeded anew from the generator, which the trainer seeds from
    # (seed, epoch), so a resumed run's crops and flips are an uninterrupted run's (Trainer._train_epoch)
    return torch.utils.data.DataLoader(
        part,
        batch_size,
        shuffle=True,
        generator=generator,
        num_workers=workers,
        pin_memory=torch.device(device).type == "cuda",
    )
