"""Grader of chapter 08's exercise 8, the experiment question: L2T-ww minus ``fm-all-to-all`` paired by seed.

Stage 1 compares the student's ``accuracies(folder, method, n, lr)`` (one run family's plain result files,
seed -> test accuracy) with ``report.runs``; stage 2 their ``comparison(folder, a, b)`` ((N, lr) -> mean, low,
high, number of seeds) with ``report.paired`` at every (N, lr) where the two methods share at least two seeds.
Both are checked on the committed results folder, whose reference is computed afresh at every call (runs
keep landing there), and on a small folder made here: valid runs beside a suffixed variant, a recipe check,
a renamed copy and a summary, so that every rule is checked whichever runs have landed.
"""

import json
import math
import random
import statistics
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from ..protocol import figure5_base
from ..report import paired, runs
from ..results import load_results, run_id
from .grading import staged

# run families of the committed folder: plain files with -kept and -bnauthors files beside them, a family
# with plain and -kept seeds, one with only suffixed files (so none of its own), and baselines
FAMILIES = [
    ("l2t-ww", 10, 0.01),
    ("l2t-ww", 25, 0.03),
    ("l2t-ww", 10, 0.03),
    ("fm-all-to-all", 25, 0.03),
    ("fm-all-to-all", 10, 0.01),
    ("l2t-ww", 100, 0.01),
]

# the made-up folder: (method, N, lr, seeds) of its plain runs; at N = 10, lr 0.01 the two methods share
# seeds 2 and 3 only, at N = 25 only seed 0 (no interval)
MADE_UP = [
    ("l2t-ww", 10, 0.01, (0, 2, 3)),
    ("l2t-ww", 10, 0.03, (0, 1, 2)),
    ("l2t-ww", 25, 0.01, (0,)),
    ("fm-all-to-all", 10, 0.01, (1, 2, 3)),
    ("fm-all-to-all", 10, 0.03, (0, 1, 2)),
    ("fm-all-to-all", 25, 0.01, (0, 1)),
]
OTHER_PROTOCOLS = [
    dict(method="l2t-ww", samples_per_class=10, seed=1, lookahead_unreached="kept"),  # -kept
    dict(method="l2t-ww", samples_per_class=10, seed=0, bn_updates="authors"),  # -bnauthors
    dict(method="fm-all-to-all", samples_per_class=10, seed=0, max_iters=5),
]  # -it5
MADE_UP_FAMILIES = [("l2t-ww", 10, 0.01), ("fm-all-to-all", 10, 0.01), ("l2t-ww", 10, 0.03), ("l2t-ww", 25, 0.03)]

NONE = "returned None (is the function still the template's `...`?)"


def make_folder(folder):
    """Write the made-up results folder into ``folder``: runs of the CPU-scale recipe, other protocols, a copy
    of seed 0's result renamed as seed 5's, and a summary that is no run result."""
    folder, rng = Path(folder), random.Random(8)
    plain = [dict(method=m, samples_per_class=n, lr=lr, seed=s) for m, n, lr, seeds in MADE_UP for s in seeds]
    for changes in plain + OTHER_PROTOCOLS:
        cfg = replace(figure5_base("quick"), **changes)
        acc = round(rng.uniform(28, 45), 2)
        result = {"config": asdict(cfg), "test_acc": acc, "best_val_acc": acc + 2.5, "final_train_acc": 100.0}
        (folder / f"{run_id(cfg)}.json").write_text(json.dumps(result))
    (folder / "l2t-ww-n10-s5-lr0.01.json").write_text((folder / "l2t-ww-n10-s0-lr0.01.json").read_text())
    (folder / "summary.json").write_text(json.dumps({"l2t-ww": {"10": {"seeds": [0, 2, 3], "mean": 33.0}}}))
    return folder


def library_accuracies(folder, method, n, lr):
    """seed -> test accuracy of one run family, as the book's tables read it (``report.runs``)."""
    return {s: r["test_acc"] for s, r in runs(folder, method, n, lr).items()}


def library_table(folder, a="l2t-ww", b="fm-all-to-all"):
    """(N, lr) -> (mean, low, high, seeds) of ``a`` minus ``b`` (``report.paired``) where they share >= 2 seeds."""
    cells = {
        (r["config"]["samples_per_class"], r["config"]["lr"])
        for r in load_results(folder)
        if r["config"]["method"] in (a, b) and r["config"].get("samples_per_class")
    }
    table = {}
    for n, lr in cells:
        p = paired(runs(folder, a, n, lr), runs(folder, b, n, lr))
        if p and len(p["seeds"]) >= 2:
            table[(n, lr)] = (p["mean"], p["low"], p["high"], len(p["seeds"]))
    return table


def _seeds(keys):
    return sorted(keys, key=lambda s: (str(type(s)), s))


def accuracies_problem(got, want, label):
    """The first way ``got`` (seed -> accuracy) differs from ``want``; None if it does not."""
    if got is None:
        return f"{label}: {NONE}"
    if not isinstance(got, dict):
        return f"{label}: returned a {type(got).__name__}, expected a dict seed -> test accuracy"
    if any(not isinstance(s, int) for s in got):
        return (
            f"{label}: seed {next(s for s in got if not isinstance(s, int))!r} is not an int (take it from the config)"
        )
    if set(got) != set(want):
        extra = [s for s in _seeds(got) if s not in want]
        why = (
            f"seed {extra[0]!r} has no plain result of this family: a file with a suffix after the lr "
            "(-kept, -bnauthors, -it5), a copy named after another seed, or another family?"
            if extra
            else "a plain result file of this family was not read"
        )
        return f"{label}: seeds {_seeds(got)}, expected {sorted(want)} ({why})"
    for s in sorted(want):
        if not isinstance(got[s], (int, float)) or not math.isclose(got[s], want[s], rel_tol=1e-9):
            return f"{label}: seed {s}: {got[s]!r} instead of {want[s]!r} (its result's test_acc)"
    return None


def table_problem(got, want, label):
    """The first way ``got`` ((N, lr) -> (mean, low, high, seeds)) differs from ``want``; None if it does not."""
    if got is None:
        return f"{label}: {NONE}"
    if not isinstance(got, dict):
        return f"{label}: returned a {type(got).__name__}, expected a dict (N, lr) -> (mean, low, high, seeds)"
    odd = [
        k for k in got if not (isinstance(k, tuple) and len(k) == 2 and isinstance(k[0], int)) or isinstance(k[1], str)
    ]
    if odd:
        return f"{label}: the key {odd[0]!r} is not (N, lr) with N an int and lr a number, as in the configs"
    missing = sorted(set(want) - set(got))
    if missing:
        return f"{label}: no entry for (N, lr) = {missing[0]}, where the two methods share {want[missing[0]][3]} seeds"
    extra = sorted((k for k in got if k not in want), key=repr)
    if extra:
        return (
            f"{label}: an entry for {extra[0]!r}; the keys are (N, lr) where the two methods share at "
            "least two seeds (one paired seed has no interval)"
        )
    for (n, lr), row in sorted(want.items()):
        mine = got[(n, lr)]
        if not isinstance(mine, (tuple, list)) or len(mine) != 4:
            return f"{label}, N = {n}, lr {lr:g}: {mine!r:.80}, expected (mean, low, high, number of seeds)"
        for name, g, w in zip(("mean", "low", "high", "number of seeds"), mine, row):
            if g is None or not math.isclose(float(g), w, rel_tol=1e-6, abs_tol=1e-9):
                shown = "None" if g is None else f"{float(g):.6g}"
                return f"{label}, N = {n}, lr {lr:g}: {name} {shown} instead of {w:.6g}"
    return None


def check_experiment(accuracies, comparison, folder):
    """Exercise 8 (chapter 08): ``accuracies`` and ``comparison`` against the library, on ``folder`` and a made-up
    one (stage 1: reading the runs, stage 2: the paired table)."""
    real = f"{Path(folder).parent.name}/{Path(folder).name}"  # results/figure5-quick

    def reading(where, path, families):
        for method, n, lr in families:
            problem = accuracies_problem(
                accuracies(path, method, n, lr),
                library_accuracies(path, method, n, lr),
                f"{where}, {method}, N = {n}, lr {lr:g}",
            )
            if problem:
                return problem
        return None

    def comparing(where, path, a="l2t-ww", b="fm-all-to-all"):
        try:
            got = comparison(path, a, b)
        except statistics.StatisticsError as e:  # what exercise 7's solution raises on one paired seed
            return f"{where}, {a} minus {b}: raised StatisticsError: {e} (an (N, lr) with one shared seed?)"
        return table_problem(got, library_table(path, a, b), f"{where}, {a} minus {b}")

    with tempfile.TemporaryDirectory() as tmp:
        made = make_folder(tmp)
        return staged(
            "the experiment question (L2T-ww against fm-all-to-all)",
            [
                (
                    "reading the runs",
                    lambda: reading(real, folder, FAMILIES) or reading("a made-up folder", made, MADE_UP_FAMILIES),
                ),
                (
                    "the paired comparison",
                    lambda: (
                        comparing(real, folder)
                        or comparing("a made-up folder", made)
                        or comparing("a made-up folder", made, "fm-all-to-all", "l2t-ww")
                    ),
                ),
            ],
        )
