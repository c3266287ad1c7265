"""CIFAR-style ResNets (20/32/44/56) with the official L2T-ww ``state_dict`` layout.

Layout: ``conv1`` (3x3, bias) - ``bn1`` - ReLU - ``block1`` - ``blocks2`` - ``block3`` (stride 2) -
``blocks4`` - ``block5`` (stride 2) - ``blocks6`` - 8x8 average pool - ``fc``.
Candidate feature maps (paper, Section 3): the output of ``block1`` and of every later residual block,
so 3n maps for ResNet(6n+2); for ResNet32 (n=5) 15 maps, and indices 4, 9, 14 end the three stages.
"""

import math

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock


class CifarResNet(nn.Module):
    """ResNet(6n+2) for 32x32 inputs; ``forward`` returns ``(logits, features)``."""

    def __init__(self, depth=32, num_classes=10):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56), got {depth}")
        n = (depth - 2) // 6
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.block1 = BasicBlock(16, 16)
        self.blocks2 = nn.Sequential(*[BasicBlock(16, 16) for _ in range(n - 1)])
        self.block3 = BasicBlock(16, 32, 2, _downsample(16, 32))
        self.blocks4 = nn.Sequential(*[BasicBlock(32, 32) for _ in range(n - 1)])
        self.block5 = BasicBlock(32, 64, 2, _downsample(32, 64))
        self.blocks6 = nn.Sequential(*[BasicBlock(64, 64) for _ in range(n - 1)])
        self.fc = nn.Linear(64, num_classes)
        self.feature_channels = [16] * n + [32] * n + [64] * n
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def blocks(self):
        """The residual blocks in order; each one's output is a candidate feature map."""
        return [self.block1, *self.blocks2, self.block3, *self.blocks4, self.block5, *self.blocks6]

    def embed(self, x):
        """Penultimate features (after global average pooling) and the candidate feature maps."""
        x = self.relu(self.bn1(self.conv1(x)))
        features = []
        for block in self.blocks():
            x = block(x)
            features.append(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1), features

    def forward(self, x):
        pooled, features = self.embed(x)
        return self.fc(pooled), features


def _downsample(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))
