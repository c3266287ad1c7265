"""Reading a Figure 5 results folder while ``l2t reproduce figure5`` is still filling it (paper, Figure 5)."""

import json
from pathlib import Path

from ..protocol import FIG5_METHODS, QUICK_LR, figure5_seeds
from ..results import load_results, read_lr_choice, variant

FIG5_SAMPLES = (10, 25, 50, 100)


def results_folder(name="figure5-quick"):
    """The committed results folder ``results/<name>``, seen from the notebooks' folder or the repository's root."""
    for path in (Path("..") / "results" / name, Path("results") / name):
        if path.is_dir():
            return path
    return Path("..") / "results" / name


def figure5_status(folder, lr=QUICK_LR):
    """Figure 5 runs that count (every method at one ``lr``), the other runs, and what is missing.

    Returns ``{'lr_choice', 'counted', 'extra', 'other_lr', 'missing', 'planned'}``: ``counted`` are the
    result dicts of the paper's five methods run exactly at ``lr``, ``extra`` those of ablations
    (``fm-all-to-all``), cheaper meta-gradient options (``-every4``, ``-first``) and the other lookahead rule
    (``-kept``) at ``lr``, ``other_lr`` every run at another lr (the secondary view's lr grid and side runs),
    ``missing`` lists the planned ``(method, N, seed)`` without a counted result. A missing folder gives
    empty lists.
    """
    return _status(Path(folder), load_results(folder) if Path(folder).is_dir() else [], lr)


def _status(folder, results, lr=QUICK_LR):
    """``figure5_status`` of ``folder`` from its already-read ``results`` (result dicts)."""
    try:
        choice = read_lr_choice(folder)
    except json.JSONDecodeError:  # being rewritten right now
        choice = {}
    counted, extra, other = [], [], []
    for r in results:
        c = r["config"]
        if c.get("max_iters") or c.get("samples_per_class") is None:  # a recipe check, or not a Figure 5 run
            continue
        if c["lr"] != lr:
            other.append(r)
        else:
            paper_line = c["method"] in FIG5_METHODS and not variant(c)
            (counted if paper_line else extra).append(r)
    planned = [(m, n, s) for m in FIG5_METHODS for n in FIG5_SAMPLES for s in figure5_seeds(n)]
    have = {(r["config"]["method"], r["config"]["samples_per_class"], r["config"]["seed"]) for r in counted}
    return {
        "lr_choice": choice,
        "counted": counted,
        "extra": extra,
        "other_lr": other,
        "missing": [p for p in planned if p not in have],
        "planned": planned,
    }
