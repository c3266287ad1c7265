"""The CPU-scale Figure 5 protocol in one place: its methods, learning rates, seeds and per-run settings.

``l2t reproduce figure5 --scale quick`` runs it; the summaries and the book count only results made by it.

* CIFAR-10 target (VGG9), the paper's ResNet32-TinyImageNet source, N in {10, 25, 50, 100} per class;
* 200 epochs as in the paper (batch 128: 200 / 400 / 800 / 1,600 SGD iterations for N = 10 / 25 / 50 / 100);
* validation: a fixed 500 CIFAR-10 *training* images outside every subset, every 10 epochs; the full
  10,000-image test set once, at the best-validation epoch;
* every method at one learning rate, 0.01, where every method fits its training set (at 10-25 images per
  class the paper's 0.1 can leave scratch untrained), so that method differences are not lr differences;
  ``--lr-grid`` runs the secondary view instead: each method's lr chosen from {0.1, 0.03, 0.01} by best
  validation accuracy at N = 10, seed 0, written to ``lr_choice.json``;
* seeds 0, 1, 2 at N = 10 and 25, seeds 0, 1 at N = 50 and 100; small N first, cheap methods first.
"""

from dataclasses import replace

from .config import Config, config_from_dict

FIG5_METHODS = ["scratch", "lwf", "at", "fm-one-to-one", "l2t-ww"]

FIG5_DRAWN = [*FIG5_METHODS, "fm-all-to-all"]  # the figure: the paper's lines, and the ablation (dashed)

LR_GRID = [0.1, 0.03, 0.01]

QUICK_LR = 0.01  # the CPU-scale figure's one learning rate for every method: where all of them train

LR_N = 10  # the lr grid runs at N = 10 per class, seed 0, whichever N a process is asked for


def figure5_base(scale):
    """The figure-5 config shared by every run of a scale."""
    base = Config(dataset="cifar10", target="vgg9", sources=["resnet32:paper"], epochs=200, batch_size=128)
    if scale == "quick":
        return replace(base, lr=QUICK_LR, val_per_class=50, eval_every=10, ckpt_every=20)
    return replace(base, val_per_class=100, eval_every=1, ckpt_every=1)


def figure5_seeds(n):
    """The CPU-scale protocol's seeds at N images per class: three up to N = 25, two above (where runs cost more)."""
    return [0, 1, 2] if n <= 25 else [0, 1]


def figure5_planned(config, scale="quick"):
    """The config ``figure5`` plans for a stored run's method, N, seed, lr and meta-gradient options."""
    c = config_from_dict(config)
    return replace(
        figure5_base(scale),
        method=c.method,
        samples_per_class=c.samples_per_class,
        seed=c.seed,
        lr=c.lr,
        meta_order=c.meta_order,
        meta_every=c.meta_every,
        max_iters=c.max_iters,
        lookahead_unreached=c.lookahead_unreached,
        bn_updates=c.bn_updates,
    )
