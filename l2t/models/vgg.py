"""VGG9 with batch norm, the paper's 32x32 target network.

cfg ``64,M,128,M,256,256,M,512,512,M,512,512,M``; each number is conv3x3-BN-ReLU, ``M`` a 2x2 max-pool;
then global average pooling and one linear classifier. Candidate feature maps: the 5 maps just before
each max-pool (64@32, 128@16, 256@8, 512@4, 512@2 for 32x32 input).
"""

import torch
from torch import nn

CFG9 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


class VGG(nn.Module):
    """VGG-BN for small images; ``forward`` returns ``(logits, features)``."""

    def __init__(self, cfg=CFG9, num_classes=10):
        super().__init__()
        layers, cin = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, num_classes)
        self.feature_channels = [cfg[i - 1] for i, v in enumerate(cfg) if v == "M"]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def embed(self, x):
        """Penultimate features (after global average pooling) and the candidate feature maps."""
        features = []
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                features.append(x)
            x = layer(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1), features

    def forward(self, x):
        pooled, features = self.embed(x)
        return self.classifier(pooled), features
