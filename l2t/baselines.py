"""Baseline transfer losses: attention transfer (AT) and learning without forgetting (LwF)."""

import torch.nn.functional as F


def attention(feature):
    """Spatial attention map of AT (Zagoruyko & Komodakis, 2017): normalised mean of squared activations."""
    return F.normalize(feature.pow(2).mean(1).flatten(1), dim=1)


def at_loss(source_features, target_features, pairs, beta=1e3):
    """AT loss: beta/2 * sum over pairs of the mean squared difference of attention maps."""
    total = 0.0
    for m, n in pairs:
        s, t = source_features[m], target_features[n]
        if s.shape[-2:] != t.shape[-2:]:
            s = F.interpolate(s, size=t.shape[-2:], mode="bilinear", align_corners=False)
        total = total + (attention(s) - attention(t)).pow(2).mean()
    return beta / 2 * total


def lwf_loss(old_logits_target, source_logits, temperature=2.0):
    """LwF (Li & Hoiem, 2017): the target's source-task head matches the source's softened outputs.

    KL(q || p) at temperature 2, times T^2 (so its gradient keeps the scale of a cross-entropy), added with
    weight ``lwf_weight`` = 1. The head is a linear layer on the target's last pooled feature map (the map
    before VGG9's last max-pool); the authors' ``lwf_lyr`` reads the classifier's input instead. Both are
    one linear layer on the target's top features; the scale and the input differ from theirs.
    """
    log_p = F.log_softmax(old_logits_target / temperature, dim=1)
    q = F.softmax(source_logits / temperature, dim=1)
    return F.kl_div(log_p, q, reduction="batchmean") * temperature**2
