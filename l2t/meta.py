"""The meta-networks phi: *what* (channel weights w^{m,n}) and *where* (pair amounts lambda^{m,n}).

Both read the average-pooled source map S^m(x) (paper, Section 3.1):
    w^{m,n}      = softmax(f_phi^{m,n}(pool(S^m(x))))      what: Linear(C_m, C_m), zero-initialised -> uniform
    lambda^{m,n} = ReLU6(g_phi^{m,n}(pool(S^m(x))))        where: Linear(C_m, 1), weight 0, bias 1.0 -> 1
(The authors' code initialises g's weight randomly; we zero it so that every pair starts at exactly 1.)
"""
import torch
from torch import nn

from .matching import pooled


class What(nn.Module):
    """f_phi: per pair, softmax channel weights over the source map's channels (Eq. 2's w)."""

    def __init__(self, pairs, source_channels):
        super().__init__()
        self.pairs = list(pairs)
        self.nets = nn.ModuleList(nn.Linear(source_channels[m], source_channels[m]) for m, _ in self.pairs)
        for net in self.nets:
            nn.init.zeros_(net.weight)
            nn.init.zeros_(net.bias)

    def forward(self, source_features):
        """List of [B, C_m] weights, each row summing to 1."""
        return [torch.softmax(net(pooled(source_features[m])), dim=1) for net, (m, _) in zip(self.nets, self.pairs)]


class Where(nn.Module):
    """g_phi: per pair, a non-negative amount lambda per sample (Eq. 3's lambda)."""

    def __init__(self, pairs, source_channels, init=1.0):
        super().__init__()
        self.pairs = list(pairs)
        self.nets = nn.ModuleList(nn.Linear(source_channels[m], 1) for m, _ in self.pairs)
        for net in self.nets:
            nn.init.zeros_(net.weight)
            nn.init.constant_(net.bias, init)

    def forward(self, source_features):
        """List of [B] amounts in [0, 6]."""
        return [nn.functional.relu6(net(pooled(source_features[m]))).squeeze(1)
                for net, (m, _) in zip(self.nets, self.pairs)]
