"""Saliency maps (paper, Figure 6): how strongly each input pixel moves the true class's logit."""

import torch


def saliency(model, x, labels):
    """|d logit_y / d x| maximised over colour channels, one [H, W] map per image (Fig. 6; Simonyan et al., 2014).

    ``model(x)`` returns ``(logits, features)`` as every l2t model does; it is evaluated in eval mode (its
    mode is restored afterwards) and no parameter gradient is left behind.
    """
    was_training = model.training
    model.eval()
    x = x.detach().clone().requires_grad_(True)
    try:
        logits, _ = model(x)
        chosen = logits.gather(1, labels.view(-1, 1).to(logits.device)).sum()
        (grad,) = torch.autograd.grad(chosen, x)
    finally:
        model.train(was_training)
    return grad.abs().amax(dim=1)


def normalize_maps(maps, quantile=0.99):
    """Each map scaled to [0, 1] by its own ``quantile`` value (clipped above), for side-by-side display."""
    flat = maps.flatten(1)
    top = torch.quantile(flat, quantile, dim=1).clamp_min(1e-12)
    return (maps / top.view(-1, 1, 1)).clamp(0, 1)


def centre_share(maps, border=8):
    """Share of each map's total saliency inside the centre square (``border`` pixels cut from each side)."""
    inner = maps[:, border:-border, border:-border].flatten(1).sum(1)
    return inner / maps.flatten(1).sum(1).clamp_min(1e-12)
