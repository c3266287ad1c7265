"""Reading a Figure 5 results folder while ``l2t reproduce figure5`` is still filling it (paper, Figure 5)."""
import json
from pathlib import Path

from .reproduce import FIG5_METHODS, chosen_lr, figure5_seeds, read_lr_choice, variant

FIG5_SAMPLES = (10, 25, 50, 100)


def figure5_status(folder):
    """Figure 5 runs that count (their method's lr is chosen and theirs is it), lr-grid runs still pending, and what is missing.

    Returns ``{'lr_choice', 'counted', 'extra', 'pending_grid', 'missing', 'planned'}``: ``counted`` are the
    result dicts of the paper's five methods run exactly, ``extra`` those of ablations (``fm-all-to-all``)
    and cheaper meta-gradient options (``-every4``, ``-first``) at their chosen lr, ``pending_grid`` maps a
    method whose lr is not chosen yet to its lr-grid results so far, ``missing`` lists the planned
    ``(method, N, seed)`` without a counted result. A missing folder gives empty lists.
    """
    return _status(Path(folder), _results(folder))


def _status(folder, results):
    """``figure5_status`` of ``folder`` from its already-read ``results`` (file name -> result dict)."""
    try:
        choice = read_lr_choice(folder)
    except json.JSONDecodeError:   # being rewritten right now
        choice = {}
    counted, extra, pending = [], [], {}
    for r in results.values():
        c = r["config"]
        if c.get("max_iters"):     # a recipe check (--max-iters), not a real run
            continue
        lr = chosen_lr(choice, c)   # the same rule as the summary's
        if lr is None:
            pending.setdefault(c["method"] + variant(c), []).append(r)
        elif c["lr"] == lr:
            paper_line = c["method"] in FIG5_METHODS and not variant(c)
            (counted if paper_line else extra).append(r)
    planned = [(m, n, s) for m in FIG5_METHODS for n in FIG5_SAMPLES for s in figure5_seeds(n)]
    have = {(r["config"]["method"], r["config"]["samples_per_class"], r["config"]["seed"]) for r in counted}
    return {"lr_choice": choice, "counted": counted, "extra": extra, "pending_grid": pending,
            "missing": [p for p in planned if p not in have], "planned": planned}


def _results(folder):
    """File name -> result dict for every run JSON in ``folder`` (not the summaries); unreadable files are skipped."""
    out = {}
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        if path.name in ("lr_choice.json", "summary.json"):
            continue
        try:
            out[path.name] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue   # a file being written right now
    return out
