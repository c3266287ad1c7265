"""Tiny networks and data for fast, exact tests (double precision friendly)."""
import torch
from torch import nn


class TinyNet(nn.Module):
    """conv-BN-ReLU (feature 0) -> pool -> conv-BN-ReLU (feature 1) -> pool -> linear."""

    def __init__(self, channels=(4, 6), num_classes=3):
        super().__init__()
        c0, c1 = channels
        self.conv0, self.bn0 = nn.Conv2d(3, c0, 3, padding=1), nn.BatchNorm2d(c0)
        self.conv1, self.bn1 = nn.Conv2d(c0, c1, 3, padding=1), nn.BatchNorm2d(c1)
        self.fc = nn.Linear(c1, num_classes)
        self.feature_channels = [c0, c1]
        for bn in (self.bn0, self.bn1):   # non-trivial affine parameters
            nn.init.uniform_(bn.weight, 0.5, 1.5)
            nn.init.uniform_(bn.bias, -0.2, 0.2)

    def forward(self, x):
        f0 = torch.relu(self.bn0(self.conv0(x)))
        f1 = torch.relu(self.bn1(self.conv1(nn.functional.max_pool2d(f0, 2))))
        return self.fc(f1.mean((2, 3))), [f0, f1]


def tiny_problem(seed=0, dtype=torch.float64, batch=6):
    torch.manual_seed(seed)
    target = TinyNet((4, 6)).to(dtype)
    source = TinyNet((5, 3), num_classes=7).to(dtype).eval().requires_grad_(False)
    x = torch.randn(batch, 3, 8, 8, dtype=dtype)
    y = torch.randint(0, 3, (batch,))
    return target, source, x, y
