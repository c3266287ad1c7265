"""Tiny networks and data for fast, exact tests (double precision friendly)."""
import torch

from l2t.toy import ToyNet as TinyNet   # conv-BN-ReLU (map 0) -> pool -> conv-BN-ReLU (map 1) -> linear


def tiny_problem(seed=0, dtype=torch.float64, batch=6):
    torch.manual_seed(seed)
    target = TinyNet((4, 6)).to(dtype)
    source = TinyNet((5, 3), num_classes=7).to(dtype).eval().requires_grad_(False)
    x = torch.randn(batch, 3, 8, 8, dtype=dtype)
    y = torch.randint(0, 3, (batch,))
    return target, source, x, y
