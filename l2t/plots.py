"""Plots the book and the CLI share: the lambda graph (paper Fig. 3d) and Figure 5."""
import matplotlib.pyplot as plt


def transfer_graph(pairs, amounts, ax=None, source_name="source", target_name="target", max_amount=None):
    """Source layers (left) joined to target layers (right) by lines whose width is the pair's lambda.

    Widths are relative to ``max_amount`` (default: the largest amount drawn); pass the same value to
    compare several graphs side by side.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4))
    sources = sorted({m for m, _ in pairs})
    targets = sorted({n for _, n in pairs})
    ys = lambda items: {v: 1 - i / max(1, len(items) - 1) for i, v in enumerate(items)}
    sy, ty = ys(sources), ys(targets)
    top = max(max_amount if max_amount is not None else max(amounts), 1e-12)
    for (m, n), a in zip(pairs, amounts):
        ax.plot([0, 1], [sy[m], ty[n]], color="tab:blue", lw=0.3 + 6 * a / top, alpha=0.8, solid_capstyle="round")
    for m in sources:
        ax.text(-0.05, sy[m], f"{source_name} {m}", ha="right", va="center")
    for n in targets:
        ax.text(1.05, ty[n], f"{target_name} {n}", ha="left", va="center")
    ax.set_xlim(-0.6, 1.6)
    ax.axis("off")
    ax.set_title("amount of transfer $\\lambda^{m,n}$ (line width)")
    return ax.figure


def figure5_plot(summary, ax=None, title="CIFAR-10 from ResNet32-TinyImageNet (CPU-scale)"):
    """Test accuracy vs samples per class: mean ± std per method, each seed as a dot (collapsed: x)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    for method, by_n in summary.items():
        ns = sorted(by_n, key=int)
        means = [by_n[n]["mean"] for n in ns]
        stds = [by_n[n]["std"] for n in ns]
        line = ax.errorbar([int(n) for n in ns], means, yerr=stds, marker="o", capsize=3, label=method)
        for n in ns:
            for acc, bad in zip(by_n[n]["test_acc"], by_n[n]["collapsed"]):
                ax.scatter(int(n), acc, marker="x" if bad else ".", color=line[0].get_color(), alpha=0.6, zorder=3)
    ax.set_xscale("log")
    all_n = sorted({int(n) for by_n in summary.values() for n in by_n})
    ax.set_xticks(all_n, [str(n) for n in all_n])
    ax.minorticks_off()
    ax.set_xlabel("training images per class (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax.figure
