"""The meta-networks phi: *what* (channel weights w^{m,n}) and *where* (pair amounts lambda^{m,n}).

Both read the average-pooled source map S^m(x) (paper, Section 3.1):
    w^{m,n}      = softmax(f_phi^{m,n}(pool(S^m(x))))      what: Linear(C_m, C_m), zero-initialised -> uniform
    lambda^{m,n} = ReLU6(g_phi^{m,n}(pool(S^m(x))))        where: Linear(C_m, 1), weight 0, bias 1.0 -> 1
(The authors' code initialises g's weight randomly; we zero it so that every pair starts at exactly 1.)
Pairs that share a source map read the same input, so their networks run as one matrix product
(``by_source``); the numbers are those of one Linear per pair.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .matching import pairs_by, pooled


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
        return by_source(self.nets, self.pairs, source_features, lambda z: torch.softmax(z, dim=-1))


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
        return by_source(self.nets, self.pairs, source_features, lambda z: F.relu6(z).squeeze(-1))


def by_source(nets, pairs, source_features, activation):
    """``activation(nets[k](pool(S^m)))`` for every pair k = (m, n), one matrix product per source map m.

    Eq. 4's w^{m,n} = softmax(f_phi(pool(S^m))) and lambda^{m,n} = g_phi(pool(S^m)), the pairs of one source map
    computed together; tests/test_stacked.py::test_meta_networks_by_source_map_are_one_linear_per_pair proves
    the numbers are those of one Linear per pair, the form chapters 03-04 teach.
    """
    out = [None] * len(pairs)
    for m, ks in pairs_by(pairs, side=0).items():
        weight = torch.cat([nets[k].weight for k in ks])
        bias = torch.cat([nets[k].bias for k in ks])
        z = F.linear(pooled(source_features[m]), weight, bias)
        for k, v in zip(ks, activation(z.view(len(z), len(ks), -1)).unbind(1)):
            out[k] = v
    return out
