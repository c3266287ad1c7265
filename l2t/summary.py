"""Figure 5's summary from a results folder: per-seed tables, paired differences with intervals, the figures."""

import json
import statistics
from pathlib import Path

from .protocol import FIG5_DRAWN, FIG5_METHODS, LR_GRID, QUICK_LR, figure5_planned
from .results import chosen_lr, load_results, read_lr_choice, variant


def summarize_figure5(results, verbose=True, out=None, lr=QUICK_LR, scale="quick"):
    """Figure 5's summary: every method at one learning rate ``lr``, per seed, with paired differences to L2T-ww.

    Writes ``summary.md``/``summary.json`` (per method and N: per-seed test accuracies, collapsed runs
    marked, mean ± std), ``paired.json`` (L2T-ww minus each method, seed by seed, with a 95 % t-interval),
    ``figure5.png``, ``paired.png``, ``lead_split.png``; and the secondary view, each method at its own lr
    chosen on validation (``own_lr_summary``): ``summary-own-lr.json``, ``figure5-own-lr.png``.
    The files go to ``out`` (default: ``results`` itself). Only results of the ``scale``'s protocol count
    (``figure5_planned``); any other result file is named under "Not counted" with the reason. Returns the
    equal-lr summary.
    """
    results = Path(results)
    out = Path(out) if out is not None else results
    out.mkdir(parents=True, exist_ok=True)
    skipped = []
    runs = load_results(results, skipped, planned=lambda c: figure5_planned(c, scale))
    real = [r for r in runs if not r["config"].get("max_iters")]  # not the recipe checks (--max-iters)
    whole = [r for r in real if r["config"].get("samples_per_class") is None]  # e.g. a table1 run saved here
    real = [r for r in real if r["config"].get("samples_per_class") is not None]  # Fig. 5's x-axis: images per class
    table = {}
    for r in real:
        if r["config"]["lr"] == lr:
            table.setdefault(r["config"]["method"] + variant(r["config"]), {}).setdefault(
                r["config"]["samples_per_class"], []
            ).append(r)
    summary, lines = _summary_table(table)
    paired = paired_differences(summary)
    own = own_lr_summary(results, real)
    own_summary, own_lines = _summary_table(own) if own else ({}, [])
    head = [
        f"**Figure 5 at one learning rate: every method at lr {lr:g}.**",
        "",
        "Test accuracy (%) per seed (a seed fixes the training images and the initialisation; "
        "* = collapsed onto one class), mean ± sample std.",
        "",
    ]
    text = head + lines + [""] + paired_table(paired)
    if own_lines:
        text += [
            "",
            "**Secondary view: each method at its own learning rate.**",
            "",
            "Each lr chosen once from {" + ", ".join(f"{v:g}" for v in LR_GRID) + "} on validation "
            "accuracy at N = 10, seed 0 (lr_choice.json); a choice from 500 validation images is noisy (about "
            "2 points of standard error), so differences here mix method and learning rate.",
            "",
        ] + own_lines
    text += _notes(runs, real, whole, skipped, table, own, lr)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary-own-lr.json").write_text(json.dumps(own_summary, indent=1))
    (out / "paired.json").write_text(json.dumps(paired, indent=1))
    (out / "summary.md").write_text("\n".join(text) + "\n")
    _figure5_figures(summary, own_summary, out, lr)
    if verbose:
        print("\n".join(text))
    return summary


def _notes(runs, real, whole, skipped, table, own, lr):
    """The summary's closing notes: runs in neither table, left out or not counted, GPU runs, the folder's cost."""
    text = []
    other = (
        len(real)
        - sum(len(v) for by_n in table.values() for v in by_n.values())
        - sum(len(v) for by_n in own.values() for v in by_n.values() if v[0]["config"]["lr"] != lr)
    )
    if other > 0:
        text += [
            "",
            f"Also in this folder, in neither table: {other} run(s) at other learning rates "
            "(the lr grid's other values and side runs).",
        ]
    if whole:
        text += [
            "",
            f"Left out: {len(whole)} run(s) on the whole training set (no samples per class), "
            "which are not Figure 5 runs.",
        ]
    if skipped:
        text += ["", "Not counted, and why:"] + [f"- `{name}`: {why}" for name, why in skipped]
    gpus = sorted({r["device"] for r in real if _on_gpu(r)})
    if gpus:  # the same protocol, run on a GPU
        text += ["", f"† run on {', '.join(gpus)} with the same protocol; every other run on the CPU."]
    hours = {}  # what the whole folder cost, lr-grid runs and cheaper options included
    for r in runs:
        kind = "GPU" if _on_gpu(r) else "CPU"
        hours[kind] = hours.get(kind, 0.0) + r.get("wall_time_s", 0.0) / 3600
    if hours:
        text += [
            "",
            "Training time of every run in this folder (lr grid included): "
            + ", ".join(f"{h:.2f} {k}-hours" for k, h in sorted(hours.items()))
            + ".",
        ]
    return text


def _on_gpu(r):
    return not str(r.get("device", "cpu")).startswith("cpu")


def _figure5_order(name):
    """The paper's baselines, the FM ablation of L2T-ww's pairs, L2T-ww, then its cheaper options."""
    order = FIG5_METHODS[:-1] + ["fm-all-to-all", "l2t-ww"]
    base = next((m for m in sorted(order, key=len, reverse=True) if name.startswith(m)), None)
    return (order.index(base) if base else len(order), len(name), name)  # the method, then its variants


def _summary_table(table):
    """(summary dict, markdown rows) of ``table``: name -> N -> result dicts."""
    summary, lines = {}, ["| method | N | seeds: test acc (* = collapsed) | mean ± std |", "|---|---|---|---|"]
    for m in sorted(table, key=_figure5_order):
        for n in sorted(table[m]):
            rs = sorted(table[m][n], key=lambda r: r["config"]["seed"])
            accs = [r["test_acc"] for r in rs]
            mean = statistics.mean(accs)
            std = statistics.stdev(accs) if len(accs) > 1 else None  # one seed has no spread to show
            summary.setdefault(m, {})[n] = {
                "seeds": [r["config"]["seed"] for r in rs],
                "test_acc": accs,
                "collapsed": [r["collapsed"] for r in rs],
                "mean": mean,
                "std": std,
                "lr": rs[0]["config"]["lr"],
            }
            per_seed = ", ".join(
                f"s{r['config']['seed']}: {a:.2f}{'*' if r['collapsed'] else ''}{'†' if _on_gpu(r) else ''}"
                for r, a in zip(rs, accs)
            )
            label = m if "[" in m else f"{m} (lr {rs[0]['config']['lr']:g})"
            spread = f"± {std:.2f}" if std is not None else "(1 seed)"
            lines.append(f"| {label} | {n} | {per_seed} | {mean:.2f} {spread} |")
    return summary, lines


def own_lr_summary(results, runs=None):
    """The secondary view: name -> N -> runs of each method at the lr its grid chose (lr_choice.json).

    A method whose grid has not finished shows each lr it ran at separately ("[lr 0.1, grid not finished]"),
    so two learning rates are never averaged as if they were two seeds.
    """
    choice = read_lr_choice(results)
    if runs is None:
        runs = [
            r
            for r in load_results(results)
            if not r["config"].get("max_iters") and r["config"].get("samples_per_class") is not None
        ]
    lrs, table = {}, {}
    for r in runs:
        lrs.setdefault(r["config"]["method"] + variant(r["config"]), set()).add(r["config"]["lr"])
    for r in runs:
        c = r["config"]
        name, lr = c["method"] + variant(c), chosen_lr(choice, c)  # an option reuses its exact method's lr
        if lr is not None and c["lr"] != lr:
            continue  # an lr-grid run that lost
        if lr is None and (choice or len(lrs[name]) > 1):  # a grid is under way: never average lrs as seeds
            name = f"{name} [lr {c['lr']:g}, grid not finished]"
        table.setdefault(name, {}).setdefault(c["samples_per_class"], []).append(r)
    return table


def paired_differences(summary, top="l2t-ww", level=0.95):
    """Per N and method: ``top`` minus the method on the seeds both ran (same images, same init), with a t-interval.

    Also ``best baseline``: the paper's baseline (scratch, LwF, AT, FM) with the highest mean at that N.
    """
    from .stats import paired_interval

    out = {}
    for n in sorted({int(k) for k in summary.get(top, {})}):
        mine = dict(zip(*[summary[top][n][k] for k in ("seeds", "test_acc")]))
        rows = {}
        for m in summary:
            if m == top or n not in summary[m]:
                continue
            other = dict(zip(summary[m][n]["seeds"], summary[m][n]["test_acc"]))
            seeds = sorted(set(mine) & set(other))
            if seeds:
                rows[m] = {
                    "seeds": seeds,
                    "differences": [mine[s] - other[s] for s in seeds],
                    **paired_interval([mine[s] - other[s] for s in seeds], level),
                }
        baselines = [m for m in FIG5_METHODS[:-1] if m in rows]
        if baselines:
            best = max(baselines, key=lambda m: summary[m][n]["mean"])
            rows["best baseline"] = {"method": best, **rows[best]}
        if rows:
            out[n] = rows
    return out


def paired_table(paired, top="l2t-ww"):
    """Markdown rows of ``paired_differences``."""
    if not paired:
        return [f"No paired differences yet: {top} has no run at this learning rate."]
    lines = [
        f"Paired by seed: {top} minus each method (points), mean and 95 % t-interval over the seeds both ran.",
        "",
        "| N | method | seeds | per seed | mean | 95 % interval |",
        "|---|---|---|---|---|---|",
    ]
    for n, rows in paired.items():
        for m, d in rows.items():
            label = f"best baseline ({d['method']})" if m == "best baseline" else m
            ci = "—" if d["low"] is None else f"[{d['low']:+.2f}, {d['high']:+.2f}]"
            lines.append(
                f"| {n} | {label} | {len(d['seeds'])} | {', '.join(f'{v:+.2f}' for v in d['differences'])} "
                f"| {d['mean']:+.2f} | {ci} |"
            )
    return lines


def _figure5_figures(summary, own, out, lr):
    """figure5.png, paired.png, lead_split.png, figure5-own-lr.png.

    figure5.png: the paper's five lines at lr, fm-all-to-all dashed.
    """
    import matplotlib.pyplot as plt

    from .plots import figure5_plot, lead_split, lead_split_plot, paired_plot

    figures = []
    if summary:
        lines = {m: v for m, v in summary.items() if m in FIG5_DRAWN} or summary
        figures += [
            (
                "figure5.png",
                figure5_plot(
                    lines,
                    title=f"Every method at lr {lr:g} (CPU-scale)",  # the paper's
                    dashed=("fm-all-to-all",),
                ),
            ),  # lines, and the ablation dashed
            ("paired.png", paired_plot(summary, methods=[m for m in summary if m in FIG5_DRAWN] or None)),
        ]
    if lead_split(summary):  # lead_split.png: L2T-ww's lead over FM = more pairs + learned weights, equal lr
        figures.append(("lead_split.png", lead_split_plot(summary)))
    else:
        (out / "lead_split.png").unlink(missing_ok=True)  # never leave a stale split behind
    if own:
        drawn = set(FIG5_DRAWN) | {name + "-kept" for name in FIG5_DRAWN}  # the figure's lines, either rule
        lines = {m: v for m, v in own.items() if m in drawn}  # a grid not finished: in the table, not drawn
        figures.append(
            (
                "figure5-own-lr.png",
                figure5_plot(
                    lines or own,
                    title="Secondary view: each method at its own lr, chosen on validation (CPU-scale)",
                    dashed=("fm-all-to-all",),
                ),
            )
        )
    for name, fig in figures:
        fig.savefig(out / name, dpi=150, bbox_inches="tight")
        plt.close(fig)
