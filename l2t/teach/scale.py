"""The notebooks' three scales, chosen by the reader, and what a run costs on a GPU.

quick (a CPU), gpu (one Colab GPU), paper (the paper's recipes). Every GPU time the book states comes from
``colab_minutes``: the seconds per iteration of the committed runs that ran on a data-centre GPU (the slowest
run of the method: wall time over iterations, evaluation included) times one stated factor for a free Colab GPU.
"""

import math
from pathlib import Path

SCALES = ("quick", "gpu", "paper")
COLAB_FACTOR = 8  # a free Colab GPU against the data-centre GPU the committed runs were timed on (a stated guess)
FIGURE5 = Path(__file__).resolve().parents[2] / "results" / "figure5-quick"


def device_for(scale):
    """The device a notebook scale runs on: the CPU for ``quick``, a CUDA GPU for ``gpu`` and ``paper``."""
    if scale not in SCALES:
        raise ValueError(f"SCALE = {scale!r} is not one of {', '.join(map(repr, SCALES))}")
    if scale == "quick":
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(
            f"SCALE = {scale!r} needs a CUDA GPU and none is visible. On Colab choose "
            "Runtime > Change runtime type > GPU, then run the notebook again; or set SCALE = 'quick'."
        )
    return "cuda"


def iterations(n, epochs=200, batch_size=128, classes=10):
    """SGD iterations of a run on ``n`` images per class: one per batch, the last batch may be smaller."""
    return math.ceil(n * classes / batch_size) * epochs


def _gpu_runs(folder):
    """(method, seconds per iteration) of every committed result that ran on a GPU."""
    from ..results import load_results

    return [
        (r["config"]["method"], r["wall_time_s"] / r["iterations"])
        for r in load_results(folder)
        if not str(r.get("device", "cpu")).startswith("cpu") and r.get("iterations") and r.get("wall_time_s")
    ]


def gpu_seconds_per_iteration(method, folder=FIGURE5, runs=None):
    """The slowest measured GPU iteration of ``method``: its own runs, else (a method with a meta-step) L2T-ww's,
    else the slowest run of a method without one. Never an estimate below what a committed run took.

    ``runs``: ``folder``'s GPU runs when the caller has read them already.
    """
    runs = _gpu_runs(folder) if runs is None else runs
    meta = method.startswith("l2t")
    own = [s for m, s in runs if m == method] or [s for m, s in runs if m.startswith("l2t") == meta]
    if not own:
        raise ValueError(f"no committed GPU run in {folder} to time {method!r} by")
    return max(own)


def colab_minutes(runs, folder=FIGURE5, factor=COLAB_FACTOR):
    """Minutes for ``runs`` ([(method, iterations)]) on a free Colab GPU: ``factor`` x the measured GPU times."""
    measured = _gpu_runs(folder)  # read once for every run
    return factor * sum(gpu_seconds_per_iteration(m, folder, measured) * k for m, k in runs) / 60


BASELINES = ("scratch", "lwf", "at", "fm-one-to-one", "l2t-w-one-to-one", "l2t-ww")  # chapter 07's six methods
# what each chapter's gpu (and, where it states minutes, paper) scale trains: [(method, iterations)]
CHAPTER_RUNS = {
    ("02", "gpu"): [("fm-one-to-one", 2000)],  # one pair, 2,000 steps of batch 128
    ("06", "gpu"): [("l2t-ww", iterations(25))],
    ("06", "paper"): [("l2t-ww", iterations(25))],
    ("07", "gpu"): [(m, iterations(10)) for m in BASELINES],
    ("07", "paper"): [(m, iterations(25)) for m in BASELINES],
    ("08", "gpu"): [("scratch", iterations(10))] * 3,  # the three learning rates
    # a ResNet20 source on 5,000 images for 30 epochs; then L2T-ww with two sources (30 pairs: counted twice)
    ("09", "gpu"): [("scratch", iterations(500, epochs=30)), ("l2t-ww", 2 * iterations(10))],
    ("10", "gpu"): [("l2t-ww", iterations(25)), ("fm-single", iterations(25)), ("l2t-w-single", iterations(25))],
    ("10", "paper"): [("l2t-ww", iterations(25)), ("fm-single", iterations(25)), ("l2t-w-single", iterations(25))],
}


def chapter_minutes(chapter, scale, folder=FIGURE5):
    """Minutes on a free Colab GPU of what chapter ``chapter`` trains at ``scale`` (``CHAPTER_RUNS``)."""
    return colab_minutes(CHAPTER_RUNS[chapter, scale], folder)


def settle_table(folder=FIGURE5, a="l2t-ww", b="fm-all-to-all", lr=0.01, ks=(5, 10, 20)):
    """What settling ``a`` against ``b`` would take, per N: the spread of their paired differences so far, the
    95 % interval's half-width that k seeds at that spread give, and the hours k seeds of both take on a GPU."""
    from ..report import paired, runs
    from ..stats import half_width

    rows = [
        "| N | seeds so far | sd of the differences | "
        + " | ".join(f"± with {k} seeds" for k in ks)
        + f" | {max(ks)} seeds of both: data-centre GPU | on Colab |",
        "|---" * (len(ks) + 5) + "|",
    ]
    for n in (10, 25, 50, 100):
        p = paired(runs(folder, a, n, lr), runs(folder, b, n, lr))
        if not p or p["sd"] is None:
            continue
        try:
            measured = colab_minutes([(a, iterations(n)), (b, iterations(n))], folder, factor=1) * max(ks) / 60
            hours = [f"{measured:.1f} h", f"{measured * COLAB_FACTOR:.1f} h"]
        except ValueError:  # no run of the folder was timed on a GPU
            hours = ["—", "—"]
        rows.append(
            f"| {n} | {len(p['seeds'])} | {p['sd']:.2f} | "
            + " | ".join(f"±{half_width(p['sd'], k):.2f}" for k in ks)
            + f" | {hours[0]} | {hours[1]} |"
        )
    if len(rows) == 2:
        return f"*No N has two paired seeds of {a} and {b} at lr {lr:g} yet.*"
    return "\n".join(rows)
