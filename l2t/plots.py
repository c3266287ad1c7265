"""Plots the book and the CLI share.

The lambda graph (paper Fig. 3d) and heat map, Figure 5, its per-seed pairing, the lead split.
"""

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
    low, high = min(amounts), max(amounts)
    key = [(top, "scale")] if max_amount is not None and top != high else []  # a key: widths of the drawn extremes
    key += [(high, "largest"), (low, "smallest")] if low < high else [(high, "every pair")]
    for v, word in key:
        ax.plot([], [], color="tab:blue", lw=0.3 + 6 * v / top, alpha=0.8, label=f"{word}: $\\lambda$ = {v:.2f}")
    ax.legend(
        loc="lower center",
        bbox_to_anchor=(0.5, -0.12),
        ncol=len(key),
        frameon=False,
        fontsize=8,
        title="line width",
        title_fontsize=8,
    )
    ax.set_xlim(-0.6, 1.6)
    ax.axis("off")
    ax.set_title("amount of transfer $\\lambda^{m,n}$ (line width)")
    return ax.figure


def lambda_grid(pairs, amounts, ax=None, title="$\\lambda^{m,n}$ per pair", label="$\\lambda^{m,n}$"):
    """lambda per pair as a heat map, source maps as rows and target maps as columns, values written in the cells."""
    import numpy as np
    import seaborn as sns

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 2.8))
    sources, targets = sorted({m for m, _ in pairs}), sorted({n for _, n in pairs})
    grid = np.full((len(sources), len(targets)), np.nan)
    for (m, n), a in zip(pairs, amounts):
        grid[sources.index(m), targets.index(n)] = a
    sns.heatmap(
        grid,
        ax=ax,
        cmap="viridis",
        annot=True,
        fmt=".3f",
        annot_kws={"fontsize": 8},
        mask=np.isnan(grid),
        cbar_kws={"label": label, "fraction": 0.046, "pad": 0.04},
        xticklabels=[f"T{n}" for n in targets],
        yticklabels=[f"S{m}" for m in sources],
    )
    ax.set_xlabel("target map n")
    ax.set_ylabel("source map m")
    ax.tick_params(axis="y", rotation=0)
    ax.set_title(title)
    return grid


# the names the book's tables use, for legends and axes
LABELS = {
    "scratch": "scratch",
    "lwf": "LwF",
    "at": "AT",
    "fm-one-to-one": "FM (one-to-one)",
    "fm-all-to-all": "fm-all-to-all (ablation)",
    "l2t-ww": "L2T-ww",
}


def label(method):
    """A method's name as the tables print it (``l2t-ww-kept`` -> ``L2T-ww-kept``)."""
    base = max((m for m in LABELS if method.startswith(m)), key=len, default=None)
    return LABELS[base] + method[len(base) :] if base else method


def figure5_plot(summary, ax=None, title="CIFAR-10 from ResNet32-TinyImageNet (CPU-scale)", note=None, dashed=()):
    """Test accuracy vs samples per class: mean ± std per method, each seed as a dot (collapsed: x).

    Methods are nudged apart along x, and a method's seeds a little more, so that every seed stays readable;
    ``dashed`` methods (an ablation) are drawn dashed; a method without a run at some N says so in the legend.
    ``note`` is written in the top-left corner (for example the paper's claim, to read the figure against).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.2))
    all_n = sorted({int(n) for by_n in summary.values() for n in by_n})
    for k, (method, by_n) in enumerate(summary.items()):
        ns = sorted(by_n, key=int)
        shift = 1.04 ** (k - (len(summary) - 1) / 2)  # a few % apart on the log axis
        xs = [int(n) * shift for n in ns]
        means = [by_n[n]["mean"] for n in ns]
        stds = [by_n[n]["std"] or 0.0 for n in ns]  # None: one seed, no error bar
        have = {int(m) for m in ns}
        missing = [n for n in all_n if n not in have]
        name = label(method) + (f" (N = {', '.join(map(str, missing))}: not run yet)" if missing else "")
        line = ax.errorbar(
            xs, means, yerr=stds, marker="o", capsize=3, label=name, ls="--" if method in dashed else "-"
        )
        for x, n in zip(xs, ns):
            accs = by_n[n]["test_acc"]
            for j, (acc, bad) in enumerate(zip(accs, by_n[n]["collapsed"])):
                spread = 1.008 ** (j - (len(accs) - 1) / 2)  # a seed's dot beside the others, not on top of them
                ax.scatter(x * spread, acc, marker="x" if bad else ".", color=line[0].get_color(), alpha=0.6, zorder=3)
    ax.set_xscale("log")
    ax.set_xticks(all_n, [str(n) for n in all_n])
    ax.minorticks_off()
    ax.set_xlabel("training images per class (log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    names = ax.get_legend_handles_labels()[1]
    if len(names) > 6 or max(map(len, names)) > 40:  # many or long names: beside the plot, not over the points
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False)
    else:
        ax.legend(loc="lower right", fontsize=8)
    if note:
        ax.text(
            0.02,
            0.98,
            note,
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize=8,
            bbox=dict(boxstyle="round", facecolor="white", edgecolor="0.7"),
        )
    return ax.figure


def paired_plot(
    summary, methods=None, top="l2t-ww", title="Per seed: the same training images for every method (CPU-scale)"
):
    """One panel per N: each method's per-seed test accuracies, a seed's points joined across methods.

    A seed fixes the training subset and the initialisation, so a line that rises from one method to the
    next is a paired win; the mean is a short black bar. Collapsed runs are drawn as x. Each panel has its
    own y-range (the gaps at small N are a point or two); a panel where ``top`` has no run says so.
    """
    methods = methods or list(summary)
    ns = sorted({int(n) for m in methods for n in summary.get(m, {})})
    cols = min(2, len(ns))  # two panels a row: readable at a page's width
    rows_n = -(-len(ns) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(max(4.0, 0.75 * len(methods)) * cols, 4.0 * rows_n), squeeze=False)
    for ax in axes.flat[len(ns) :]:
        ax.axis("off")
    for ax, n in zip(axes.flat, ns):
        here = [m for m in methods if n in {int(k) for k in summary.get(m, {})}]
        rows = [next(v for k, v in summary[m].items() if int(k) == n) for m in here]
        seeds = sorted({s for r in rows for s in r["seeds"]})
        for s, color in zip(seeds, plt.cm.tab10.colors):
            pts = [
                (i, r["test_acc"][r["seeds"].index(s)], r["collapsed"][r["seeds"].index(s)])
                for i, r in enumerate(rows)
                if s in r["seeds"]
            ]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, lw=0.8, alpha=0.7, label=f"seed {s}")
            for i, acc, bad in pts:
                ax.scatter(i, acc, color=color, marker="x" if bad else "o", s=18, zorder=3)
        for i, r in enumerate(rows):
            ax.plot([i - 0.25, i + 0.25], [r["mean"]] * 2, color="k", lw=2, label="mean" if i == 0 else None)
        ax.set_xticks(range(len(here)), [label(m) for m in here], rotation=35, ha="right")
        ax.set_title(f"N = {n} per class")
        if top in methods and top not in here:
            ax.text(0.02, 0.97, f"{label(top)}: not run yet at this N", transform=ax.transAxes, va="top", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for row in axes:
        row[0].set_ylabel("test accuracy (%)")
    axes.flat[0].legend(fontsize=8)  # the first panel has every seed
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def lead_split(summary, base="fm-one-to-one", middle="fm-all-to-all", top="l2t-ww"):
    """Per N and seed, L2T-ww's lead over FM split into more pairs (middle - base) and learned w, λ (top - middle).

    Only seeds that all three methods ran count, so every difference is paired (same images, same init).
    """
    out = {}
    for n in sorted({int(k) for k in summary.get(top, {})}, key=int):
        rows = [next((v for k, v in summary.get(m, {}).items() if int(k) == n), None) for m in (base, middle, top)]
        if None in rows:
            continue
        acc = [dict(zip(r["seeds"], r["test_acc"])) for r in rows]
        seeds = sorted(set(acc[0]) & set(acc[1]) & set(acc[2]))
        if seeds:
            out[n] = {
                "seeds": seeds,
                "pairs": [acc[1][s] - acc[0][s] for s in seeds],
                "weights": [acc[2][s] - acc[1][s] for s in seeds],
            }
    return out


def lead_split_plot(summary, title="L2T-ww's lead over FM (one-to-one), split (CPU-scale)"):
    """Per N, two bars side by side: what matching 15 pairs with fixed w and lambda adds over FM one-to-one
    (fm-all-to-all - FM), and what learning them adds on top (L2T-ww - fm-all-to-all); each a mean over
    seeds with its 95 % t-interval, a dot per seed and its value written beside it. The two add up to the lead."""
    from .stats import paired_interval

    split = lead_split(summary)
    parts = (
        ("pairs", "tab:red", "15 pairs, fixed w and λ:  fm-all-to-all − FM"),
        ("weights", "tab:purple", "learning w and λ:  L2T-ww − fm-all-to-all"),
    )
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for i, d in enumerate(split.values()):
        for k, (key, colour, name) in enumerate(parts):
            x, values = i + (k - 0.5) * 0.38, d[key]
            st = paired_interval(values)
            err = None if st["low"] is None else [[st["mean"] - st["low"]], [st["high"] - st["mean"]]]
            ax.bar(
                x,
                st["mean"],
                width=0.34,
                color=colour,
                alpha=0.55,
                yerr=err,
                capsize=4,
                error_kw={"lw": 1},
                label=name if i == 0 else None,
            )
            ax.scatter(
                [x + 0.08 * (j - (len(values) - 1) / 2) for j in range(len(values))],
                values,
                color="k",
                s=12,
                zorder=3,
                label="one seed" if i == k == 0 else None,
            )
            top = max([0.0, st["mean"], *values] + ([st["high"]] if st["high"] is not None else []))
            ax.annotate(
                f"{st['mean']:+.2f}",
                (x, top),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=9,
            )
    ax.axhline(0, color="k", lw=0.8)
    ax.margins(y=0.12)
    ax.set_xticks(
        range(len(split)), [f"N = {n}\n({len(d['seeds'])} seed{'s' * (len(d['seeds']) > 1)})" for n, d in split.items()]
    )
    ax.set_ylabel("test accuracy points")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=1, frameon=False)
    fig.tight_layout()
    return fig
