"""Weighted feature matching (paper, Eq. 2-3).

For a pair (m, n), r_theta is a 1x1 convolution from the target's map T^n to the source's channels, and

    L_wfm^{m,n} = 1/(HW) * sum_c w_c * sum_{i,j} (r_theta(T^n)_{c,i,j} - S^m_{c,i,j})^2      (Eq. 2)
    L_wfm       = beta * sum_{(m,n)} lambda^{m,n} * L_wfm^{m,n}, averaged over the batch       (Eq. 3)

When the two maps differ in size, S^m is bilinearly resized to T^n's size. Plain feature matching
(FitNets hints) is the same loss with uniform w = 1/C and lambda = 1.

``Regressors.forward`` and ``wfm_loss`` compute these pair by pair, as written above. Training uses the same
numbers in a stacked form with fewer operations: ``Regressors.stacked`` runs the pairs of one target map as
one convolution (source maps resized once per batch by ``stacked_sources``), and ``wfm_coefficients``
turns w, lambda and beta into one factor per column, so that L_wfm = sum(coefficients * errors).
"""

import torch
import torch.nn.functional as F
from torch import nn


class Regressors(nn.Module):
    """The 1x1 convolutions r_theta, one per pair: target channels -> source channels."""

    def __init__(self, pairs, source_channels, target_channels):
        super().__init__()
        self.pairs = list(pairs)
        self.convs = nn.ModuleList(nn.Conv2d(target_channels[n], source_channels[m], 1) for m, n in self.pairs)
        # the stacked form: pairs that read the same target map n run as one convolution
        self.groups = pairs_by(self.pairs, side=1)
        self.order = [k for ks in self.groups.values() for k in ks]  # the pair of each block of columns
        channels = [source_channels[self.pairs[k][0]] for k in self.order]
        self.register_buffer(
            "column_pair", torch.tensor([i for i, c in enumerate(channels) for _ in range(c)]), persistent=False
        )  # column -> its pair's position in order
        self.register_buffer("uniform", torch.cat([torch.full((c,), 1 / c) for c in channels]), persistent=False)

    def forward(self, source_features, target_features):
        """Per pair, the per-sample per-channel squared error 1/(HW) sum_ij (r(T^n) - S^m)^2, shape [B, C_m]."""
        errors = []
        for conv, (m, n) in zip(self.convs, self.pairs):
            t = conv(target_features[n])
            errors.append((t - resized(source_features[m], t.shape[-2:])).pow(2).mean(dim=(2, 3)))
        return errors

    def stacked_sources(self, source_features, target_sizes):
        """Per target map n, its pairs' S^m resized to n's size and stacked on channels (once per batch)."""
        return {
            n: torch.cat([resized(source_features[self.pairs[k][0]], target_sizes[n]) for k in ks], 1)
            for n, ks in self.groups.items()
        }

    def stacked(self, sources, target_features, params=None):
        """Every pair's errors of ``forward`` as one [B, sum C_m] tensor, columns in ``order``'s pairs.

        Eq. 2's e^{m,n}_c = 1/(HW) sum_ij (r_theta(T^n) - S^m)^2, the same numbers as ``forward``, in one
        convolution per target map instead of one per pair; tests/test_stacked.py::
        test_stacked_errors_are_the_per_pair_errors proves them equal to the per-pair form chapter 02 teaches.
        ``sources`` from ``stacked_sources``; ``params`` (names as in ``named_parameters``) replace the
        module's own, as in a lookahead step.
        """
        p = dict(self.named_parameters()) if params is None else params
        errors = []
        for n, ks in self.groups.items():
            weight = torch.cat([p[f"convs.{k}.weight"] for k in ks])
            bias = torch.cat([p[f"convs.{k}.bias"] for k in ks])
            t = F.conv2d(target_features[n], weight, bias)
            errors.append((t - sources[n]).pow(2).mean(dim=(2, 3)))
        return torch.cat(errors, 1)


def pairs_by(pairs, side):
    """Indices of the pairs grouped by their source map (``side=0``) or target map (``side=1``), in first-seen order."""
    groups = {}
    for k, pair in enumerate(pairs):
        groups.setdefault(pair[side], []).append(k)
    return groups


def resized(source_map, size):
    """S^m bilinearly resized to a target map's (H, W) when the two differ (Eq. 2 on unequal sizes)."""
    if source_map.shape[-2:] == size:
        return source_map
    return F.interpolate(source_map, size=size, mode="bilinear", align_corners=False)


def wfm_loss(errors, what=None, where=None, beta=0.5):
    """L_wfm of Eq. 3 from per-pair errors [B, C]; ``what`` [B, C] channel weights, ``where`` [B] amounts.

    ``what=None`` means uniform weights 1/C, ``where=None`` means lambda = 1 (unweighted FM).
    """
    total = 0.0
    for k, e in enumerate(errors):
        per_sample = e.mean(1) if what is None else (what[k] * e).sum(1)
        if where is not None:
            per_sample = where[k] * per_sample
        total = total + per_sample.mean()
    return beta * total


def wfm_coefficients(regressors, what=None, where=None, beta=0.5, batch=1):
    """Eq. 3's factors beta / B * lambda^{m,n} * w^{m,n}_c per column of ``Regressors.stacked``.

    With them, L_wfm = sum(coefficients * errors) over a batch of B = ``batch`` images: the same loss as
    ``wfm_loss`` in two operations, which every lookahead step reuses (phi does not change within it).
    ``what=None`` means w = 1/C, ``where=None`` means lambda = 1. tests/test_stacked.py::
    test_coefficients_times_errors_is_wfm_loss proves sum(coefficients * stacked) = ``wfm_loss`` (Eq. 3).
    """
    order = regressors.order
    w = regressors.uniform if what is None else torch.cat([what[k] for k in order], 1)
    if where is not None:
        w = w * torch.stack([where[k] for k in order], 1).index_select(1, regressors.column_pair)
    return w * (beta / batch)


def pooled(feature):
    """Global average pool of a feature map [B, C, H, W] -> [B, C], the meta-networks' input."""
    return feature.mean(dim=(2, 3))
