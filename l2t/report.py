"""The CPU-scale Figure 5 as Markdown tables, made from the result files (``book/prepare.py``, at every build).

Each table reads ``results/<folder>/*.json`` through ``results.load_results``, so a result counts only if
its whole config is the recipe's. A pair of runs is compared seed by seed (same images, same initialisation);
a pair whose two runs ran on different hardware (a GPU and a CPU, or two CPU instruction sets) is marked.
"""

import statistics
from pathlib import Path

from .config import config_from_dict
from .plots import label
from .protocol import FIG5_DRAWN, FIG5_METHODS, figure5_planned
from .results import load_results, read_lr_choice, run_id, variant
from .stats import paired_interval

NS = (10, 25, 50, 100)


def hardware(r):
    """Where a result ran: its GPU, or ``cpu/<instruction set>`` (``cpu/?`` before results recorded it)."""
    device = str(r.get("device", "cpu"))
    return f"cpu/{r.get('cpu_capability') or '?'}" if device.startswith("cpu") else device


def runs(folder, method, n, lr, name=None):
    """seed -> result of ``method`` (``name``: with its variant suffix, default none) at N images per class, lr."""
    name = method if name is None else name
    return {
        r["config"]["seed"]: r
        for r in _results(folder)
        if r["config"]["method"] == method
        and r["config"]["samples_per_class"] == n
        and r["config"]["lr"] == lr
        and not r["config"].get("max_iters")
        and method + variant(r["config"]) == name
    }


def _results(folder):
    """The folder's results that count (``load_results``), read again only when a file changed."""
    files = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(Path(folder).glob("*.json")))
    key = (str(Path(folder).resolve()), files)
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = [r for r in load_results(folder, planned=figure5_planned) if r["config"].get("samples_per_class")]
    return _CACHE[key]


_CACHE = {}


def paired(a, b, key="test_acc"):
    """``a`` minus ``b`` on their common seeds: ``{'seeds', 'differences', 'mixed', mean, low, high, sd}``.

    ``mixed``: the seeds whose two runs ran on different hardware (or one of them did not record its own).
    """
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    d = [a[s][key] - b[s][key] for s in seeds]
    mixed = [s for s in seeds if hardware(a[s]) != hardware(b[s])]  # a seed's two runs on different hardware
    return {"seeds": seeds, "differences": d, "mixed": mixed, **paired_interval(d)}


def _cell(p):
    """'+1.23 [−0.5, +2.9] (3 seeds)' for a paired difference ('—' when there is none)."""
    if p is None:
        return "—"
    ci = "" if p["low"] is None else f" [{p['low']:+.2f}, {p['high']:+.2f}]"
    flag = " ‡" if p["mixed"] else ""  # the page explains the mark
    return f"{p['mean']:+.2f}{ci} ({len(p['seeds'])} seed{'s' * (len(p['seeds']) > 1)}){flag}"


def _mean(rs):
    """'mean ± std' of the test accuracies of seed -> result ('x (1 seed)', '*not yet run*')."""
    accs = [r["test_acc"] for r in rs.values()]
    if not accs:
        return "*not yet run*"
    if len(accs) == 1:
        return f"{accs[0]:.2f} (1 seed)"
    return f"{statistics.mean(accs):.2f} ± {statistics.stdev(accs):.2f}"


def mean_table(folder, lr=0.01, methods=FIG5_DRAWN, ns=NS):
    """Figure 5's table: test accuracy, mean ± std over seeds, per method and N, every method at ``lr``."""
    lines = ["| method | " + " | ".join(f"N = {n}" for n in ns) + " |", "|---" * (len(ns) + 1) + "|"]
    for m in methods:
        lines.append(f"| {label(m)} | " + " | ".join(_mean(runs(folder, m, n, lr)) for n in ns) + " |")
    return "\n".join(lines)


def seeds_table(folder, lr=0.01, methods=FIG5_DRAWN, ns=(10, 25)):
    """Per seed: test accuracy of every method at N images per class, to read the paired differences from."""
    lines = []
    for n in ns:
        table = {m: runs(folder, m, n, lr) for m in methods}
        seeds = sorted({s for rs in table.values() for s in rs})
        lines += [f"| N = {n} | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---" * (len(seeds) + 1) + "|"]
        lines += [
            f"| {label(m)} | " + " | ".join(f"{rs[s]['test_acc']:.2f}" if s in rs else "—" for s in seeds) + " |"
            for m, rs in table.items()
        ] + [""]
    return "\n".join(lines).strip()


def paired_table(folder, lr=0.01, top="l2t-ww", methods=FIG5_DRAWN, ns=NS):
    """``top`` minus each method, paired by seed, mean and 95 % t-interval, per N; then minus the best of the
    paper's baselines (highest mean at that N)."""
    lines = [f"| N | {label(top)} minus | per seed | mean [95 % interval] (seeds) |", "|---|---|---|---|"]
    for n in ns:
        mine = runs(folder, top, n, lr)
        others = {m: runs(folder, m, n, lr) for m in methods if m != top}
        baselines = [m for m in FIG5_METHODS if m != top and others.get(m)]
        best = max(baselines, key=lambda m: statistics.mean(r["test_acc"] for r in others[m].values()), default=None)
        for m, name in [(m, label(m)) for m in others] + ([(best, f"best baseline ({label(best)})")] if best else []):
            p = paired(mine, others[m])
            if p:
                lines.append(f"| {n} | {name} | {', '.join(f'{v:+.2f}' for v in p['differences'])} | {_cell(p)} |")
    return "\n".join(lines)


def two_by_two(folder, lrs=(0.01, 0.03), ns=(10, 25), name="l2t-ww"):
    """L2T-ww (``name``: or a variant of it) and ``fm-all-to-all`` (the same 15 pairs, w uniform, lambda = 1)
    at each learning rate, per N."""
    top = label(name)
    lines = [f"| N | lr | {top} | fm-all-to-all | {top} minus fm-all-to-all |", "|---|---|---|---|---|"]
    for n in ns:
        for lr in lrs:
            ww, fm = runs(folder, "l2t-ww", n, lr, name=name), runs(folder, "fm-all-to-all", n, lr)
            lines.append(f"| {n} | {lr:g} | {_mean(ww)} | {_mean(fm)} | {_cell(paired(ww, fm))} |")
    return "\n".join(lines)


def lr_effect(folder, methods, lrs=(0.01, 0.03), ns=(10, 25)):
    """What moving each of ``methods`` from the first learning rate to the second does, paired by seed, per N."""
    lines = [f"| N | method | at lr {lrs[1]:g} minus at lr {lrs[0]:g} |", "|---|---|---|"]
    for n in ns:
        for m in methods:
            lines.append(
                f"| {n} | {label(m)} | {_cell(paired(runs(folder, m, n, lrs[1]), runs(folder, m, n, lrs[0])))} |"
            )
    return "\n".join(lines)


def best_lr(folder, method, n, lrs=(0.01, 0.03)):
    """The lr of ``lrs`` with the best mean *validation* accuracy at N, over the seeds every lr ran; None if none."""
    by_lr = {lr: runs(folder, method, n, lr) for lr in lrs}
    common = set.intersection(*(set(rs) for rs in by_lr.values()))
    if not common:
        return None
    return max(lrs, key=lambda lr: (sum(by_lr[lr][s]["best_val_acc"] for s in common), lr))


def best_lr_table(folder, lrs=(0.01, 0.03), ns=(10, 25)):
    """Each of L2T-ww and fm-all-to-all at its best lr per N (chosen on validation), and the paired difference."""
    lines = [
        "| N | L2T-ww's lr | fm-all-to-all's lr | L2T-ww minus fm-all-to-all, each at its lr |",
        "|---|---|---|---|",
    ]
    for n in ns:
        ww, fm = best_lr(folder, "l2t-ww", n, lrs), best_lr(folder, "fm-all-to-all", n, lrs)
        if ww is None or fm is None:
            lines.append(f"| {n} | {ww or '—'} | {fm or '—'} | — (a learning rate not yet run on the same seeds) |")
            continue
        lines.append(
            f"| {n} | {ww:g} | {fm:g} | "
            f"{_cell(paired(runs(folder, 'l2t-ww', n, ww), runs(folder, 'fm-all-to-all', n, fm)))} |"
        )
    return "\n".join(lines)


def versus_table(a, b, names):
    """Per common seed, two ways of making the same run (seed -> result each): both accuracies, the difference
    (second minus first) and where each ran."""
    lines = [f"| seed | {names[0]} | {names[1]} | second minus first | hardware |", "|---|---|---|---|---|"]
    lines += [
        f"| {s} | {a[s]['test_acc']:.2f} | {b[s]['test_acc']:.2f} | {b[s]['test_acc'] - a[s]['test_acc']:+.2f} "
        f"| {hardware(a[s])} / {hardware(b[s])} |"
        for s in sorted(set(a) & set(b))
    ]
    return "\n".join(lines) if len(lines) > 2 else "*Not yet run.*"


def side_by_side(a, b, names):
    """The same runs made in two folders (e.g. two instruction sets): per run, both accuracies and the difference."""
    ra, rb = _same_runs(a, b)
    lines = [f"| run (hardware: first / second) | {names[0]} | {names[1]} | first minus second |", "|---|---|---|---|"]
    for name in sorted(set(ra) & set(rb)):
        x, y = ra[name]["test_acc"], rb[name]["test_acc"]
        lines.append(f"| `{name}` ({hardware(ra[name])} / {hardware(rb[name])}) | {x:.2f} | {y:.2f} | {x - y:+.2f} |")
    return "\n".join(lines) if len(lines) > 2 else "*Not yet run.*"


def _same_runs(a, b):
    """The results of folders ``a`` and ``b``, each as run name -> result."""
    return ({_name(r): r for r in load_results(f)} for f in (a, b))


def _name(r):
    """A result's run name (its file's stem)."""
    return run_id(config_from_dict(r["config"]))


def runs_table(folder):
    """Every run family of a folder (method and variant, lr, N): how many seeds, on what hardware, how long each."""
    groups = {}
    for r in _results(folder):
        c = r["config"]
        groups.setdefault((c["method"] + variant(c), c["lr"], c["samples_per_class"]), []).append(r)
    lines = ["| run | lr | N | seeds | hardware | minutes per run (median) |", "|---|---|---|---|---|---|"]
    for (name, lr, n), rs in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][0])):
        times = [r["wall_time_s"] / 60 for r in rs if isinstance(r.get("wall_time_s"), (int, float))]
        minutes = statistics.median(times) if times else None
        took = "—" if minutes is None else f"{minutes:.1f}" if minutes < 10 else f"{minutes:.0f}"
        where = ", ".join(sorted({hardware(r) for r in rs}))
        seeds = ", ".join(str(s) for s in sorted(r["config"]["seed"] for r in rs))
        lines.append(f"| {label(name)} | {lr:g} | {n} | {seeds} | {where} | {took} |")
    return "\n".join(lines)


def lr_choice_table(folder):
    """The secondary view's learning-rate grid: per method, best validation accuracy at each lr, and its choice."""
    choice = read_lr_choice(folder)
    if not choice:
        return "*No learning-rate grid has finished yet (no `lr_choice.json`).*"
    lrs = sorted({float(lr) for v in choice.values() for lr in v["best_val_acc_by_lr"]}, reverse=True)
    rows = ["| method | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " | chosen |", "|---" * (len(lrs) + 2) + "|"]
    for m, v in choice.items():
        acc = {float(lr): a for lr, a in v["best_val_acc_by_lr"].items()}
        cells = " | ".join("—" if lr not in acc else f"{acc[lr]:.1f}" for lr in lrs)
        rows.append(f"| {label(m)} | {cells} | {v['chosen_lr']:g} |")
    return "\n".join(rows)


def verdict(p):
    """What a paired interval (``paired``) allows: 'ahead' or 'behind' when it excludes 0, else 'level'; None
    without an interval (no common seed, or one)."""
    if p is None or p["low"] is None:
        return None
    return "ahead" if p["low"] > 0 else "behind" if p["high"] < 0 else "level"


def _places(cells):
    """'N = 10 and 25 at lr 0.01; N = 25 at lr 0.03' for ``(N, lr words, paired)`` cells, grouped by lr."""
    by_lr = {}
    for n, lr, _ in cells:
        by_lr.setdefault(lr, []).append(str(n))
    return "; ".join(
        f"N = {' and '.join([', '.join(ns[:-1]), ns[-1]] if len(ns) > 1 else ns)} at {lr}" for lr, ns in by_lr.items()
    )


def _summary(cells):
    """The closing sentence over ``(N, lr words, paired)`` cells: where L2T-ww is ahead, behind, or level, and what
    the tightest and the widest level interval rule out."""
    said = {v: [c for c in cells if verdict(c[2]) == v] for v in ("ahead", "behind", "level")}
    if not any(said.values()):
        return "No comparison has two paired seeds yet, so no interval."
    words = {"ahead": "ahead of", "behind": "behind"}
    parts = [f"L2T-ww is {words[v]} `fm-all-to-all` at {_places(cs)}" for v, cs in said.items() if cs and v in words]
    if said["level"]:
        parts.append(
            f"learning *what* and *where* makes no difference the seeds can detect at {_places(said['level'])}"
        )
        level = sorted((p["high"] - p["low"], f"N = {n}, {lr}", p) for n, lr, p in said["level"])
        ends = [level[0]] + level[1:][-1:]  # the tightest interval, and the widest when there are two or more
        parts.append(
            " and ".join(
                f"the {kind} interval, [{p['low']:+.2f}, {p['high']:+.2f}] ({w}), rules out a gain above "
                f"{p['high']:.1f} or a loss above {-p['low']:.1f} points"
                for kind, (_, w, p) in zip(("tightest", "widest"), ends)
            )
        )
    return "; ".join(parts) + "."


def bottom_line(folder, lrs=(0.01, 0.03), ns=NS):
    """What the intervals allow (Markdown): L2T-ww minus ``fm-all-to-all`` (what learning w and lambda adds over
    the same 15 pairs, fixed) at each lr and N, then each at its best lr, then one closing sentence."""

    def pair(n, lr_ww, lr_fm):
        return paired(runs(folder, "l2t-ww", n, lr_ww), runs(folder, "fm-all-to-all", n, lr_fm))

    rows, cells = [], []
    for lr in lrs:
        ps = {n: pair(n, lr, lr) for n in ns}
        cells += [(n, f"lr {lr:g}", p) for n, p in ps.items()]
        rows.append(f"- at lr {lr:g}: " + "; ".join(f"N = {n}: {_said(p)}" for n, p in ps.items()))
    best = []
    for n in ns:
        ww, fm = best_lr(folder, "l2t-ww", n, lrs), best_lr(folder, "fm-all-to-all", n, lrs)
        if ww is None or fm is None:
            best.append(f"N = {n}: not yet run at both learning rates")
        elif ww == fm:
            best.append(f"N = {n}: both prefer {ww:g} (as in the lr {ww:g} row)")
        else:
            cells.append((n, f"lr {ww:g} against {fm:g}", pair(n, ww, fm)))
            best.append(f"N = {n}: lr {ww:g} against {fm:g}, {_said(cells[-1][2])}")
    rows.append("- each method at the learning rate its validation accuracy prefers: " + "; ".join(best))
    spread = hardware_spread(Path(folder).parent / "hardware-noise")
    if spread:
        rows.append(
            f"- for scale: the same run with only the CPU kernels' instruction set changed moved by up to "
            f"{spread[0]:.2f} points ({spread[1]} run{'s' * (spread[1] > 1)})"
        )
    steps = {n: rs[min(rs)].get("iterations") for n in ns if (rs := runs(folder, "l2t-ww", n, lrs[0]))}
    here = ", ".join(f"{k} at N = {n}" for n, k in steps.items() if isinstance(k, int))
    here = f" (these runs give it {here})" if here else ""
    text = (
        "L2T-ww minus `fm-all-to-all` (the same 15 layer pairs matched with fixed, uniform weights and λ = 1), in "
        "test-accuracy points at CPU scale, paired by seed with a 95 % interval:\n\n" + "\n".join(rows) + "\n\n"
        f"**Bottom line:** {_summary(cells)} Untested here: the paper's full training sets (its Table 1), where φ "
        f"gets tens of thousands of meta-updates, one per iteration{here}."
    )
    if "‡" in text:
        text += "\n\n‡: some seed's two runs ran on different hardware, or only one recorded its instruction set."
    return text


def hardware_spread(folder):
    """(largest |difference|, runs) between the same runs made natively and forced to AVX2 (``folder``/native and
    /avx2), or None: the hardware's own effect, to read the paired differences against."""
    a, b = _same_runs(Path(folder) / "native", Path(folder) / "avx2")
    both = set(a) & set(b)
    return (max(abs(a[n]["test_acc"] - b[n]["test_acc"]) for n in both), len(both)) if both else None


def _said(p):
    """A paired difference as the bottom line quotes it ('not yet run' when there is none)."""
    return "not yet run" if p is None else _cell(p)
