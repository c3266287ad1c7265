"""Weighted feature matching (paper, Eq. 2-3).

For a pair (m, n), r_theta is a 1x1 convolution from the target's map T^n to the source's channels, and

    L_wfm^{m,n} = 1/(HW) * sum_c w_c * sum_{i,j} (r_theta(T^n)_{c,i,j} - S^m_{c,i,j})^2      (Eq. 2)
    L_wfm       = beta * sum_{(m,n)} lambda^{m,n} * L_wfm^{m,n}, averaged over the batch       (Eq. 3)

When the two maps differ in size, S^m is bilinearly resized to T^n's size. Plain feature matching
(FitNets hints) is the same loss with uniform w = 1/C and lambda = 1.
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

    def forward(self, source_features, target_features):
        """Per pair, the per-sample per-channel squared error 1/(HW) sum_ij (r(T^n) - S^m)^2, shape [B, C_m]."""
        errors = []
        for conv, (m, n) in zip(self.convs, self.pairs):
            t = conv(target_features[n])
            s = source_features[m]
            if s.shape[-2:] != t.shape[-2:]:
                s = F.interpolate(s, size=t.shape[-2:], mode="bilinear", align_corners=False)
            errors.append((t - s).pow(2).mean(dim=(2, 3)))
        return errors


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


def pooled(feature):
    """Global average pool of a feature map [B, C, H, W] -> [B, C], the meta-networks' input."""
    return feature.mean(dim=(2, 3))
