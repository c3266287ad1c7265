"""torchvision ResNet18/34 at 224x224, returning ``(logits, features)``.

Features: the stem (after max-pool, 64 channels @56) and the output of each of the 4 stages
(64@56, 128@28, 256@14, 512@7), in that order — 5 maps. The authors' code takes its map 0 before the
max-pool (64@112); here it is after it. No ready-made pair set uses map 0 (they match maps 1-4), so the
paper's recipes are the same either way; only a hand-written ``--pairs`` with index 0 differs.
The torchvision module is used as is (composition, not a copy of its code).
"""

import torch
import torchvision
from torch import nn


class TorchvisionResNet(nn.Module):
    """Wraps ``torchvision.models.resnet18/34``; ``pretrained=True`` loads ImageNet weights (online)."""

    def __init__(self, arch="resnet18", num_classes=1000, pretrained=False):
        super().__init__()
        weights = "DEFAULT" if pretrained else None
        net = getattr(torchvision.models, arch)(weights=weights)
        if num_classes != net.fc.out_features:
            net.fc = nn.Linear(net.fc.in_features, num_classes)
        self.net = net
        self.feature_channels = [64, 64, 128, 256, 512]

    @property
    def fc(self):
        """The classifier (torchvision's ``fc``)."""
        return self.net.fc

    def embed(self, x):
        """Penultimate features and the 5 candidate feature maps (stem, layer1..layer4)."""
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        features = [x]
        for layer in (n.layer1, n.layer2, n.layer3, n.layer4):
            x = layer(x)
            features.append(x)
        return torch.flatten(n.avgpool(x), 1), features

    def forward(self, x):
        pooled, features = self.embed(x)
        return self.net.fc(pooled), features
