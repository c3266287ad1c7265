"""A results folder: each run's file name (``run_id``), reading result files strictly, the lr grid's choices.

One JSON per finished run, named by its method, N, seed, lr and options; a file counts only if it is a
readable result whose name is its own config's and, given a planned config, whose settings are that plan's.
"""

import json
from dataclasses import asdict
from pathlib import Path

from .config import config_from_dict, differences
from .files import atomic_write_text, lock
from .methods import method


def run_id(cfg):
    """A run's file name: method, data size, seed and learning rate."""
    size = f"n{cfg.samples_per_class}" if cfg.samples_per_class is not None else cfg.dataset
    extra = "".join("+" + _source_name(s) for s in cfg.sources[1:])
    short = f"-it{cfg.max_iters}" if cfg.max_iters else ""  # recipe checks never pass for real runs
    return f"{cfg.method}{extra}-{size}-s{cfg.seed}-lr{cfg.lr:g}{variant(cfg)}{short}"


def variant(cfg):
    """A run's meta-gradient options as a name suffix: '' for Algorithm 1 exactly, with the authors' lookahead.

    ``-first``/``-everyK``: the cheaper options; ``-kept``: the lookahead left parameters its step's loss does
    not reach where they were (``lookahead_unreached="kept"``). Results written before that setting existed
    ran that rule, so a meta-method's config without it reads as ``kept``. ``-bnauthors``: BatchNorm statistics
    moved twice an iteration, as the authors' code (``bn_updates="authors"``; before it existed: once).
    """
    cfg = cfg if isinstance(cfg, dict) else asdict(cfg)
    order = cfg.get("meta_order", "exact")
    every = cfg.get("meta_every", 1)
    meta = method(cfg["method"])["what"]
    kept = meta and cfg.get("lookahead_unreached", "kept") == "kept"
    bn = meta and cfg.get("bn_updates", "once") == "authors"
    return (
        ("" if order == "exact" else f"-{order}")
        + ("" if every == 1 else f"-every{every}")
        + ("-kept" if kept else "")
        + ("-bnauthors" if bn else "")
    )


def _source_name(spec):
    arch, _, path = spec.partition(":")
    return arch if path in ("", "paper") else Path(path).name.split(".")[0]


SUMMARY_FILES = ("lr_choice.json", "summary.json", "summary-own-lr.json", "paired.json")  # not run results


def result_problem(path, cfg=None):
    """Why the result file ``path`` must not be counted ('' if it may): unreadable, not a result, a stray copy
    (its name is not its own config's run name), or, given the planned ``cfg``, a run of other settings."""
    return _read_result(path, cfg)[1]


def _read_result(path, cfg=None):
    """``(result dict or None, why it must not be counted or '')`` of one result file (``result_problem``)."""
    try:
        r = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"not readable JSON ({type(e).__name__})"
    if (
        not isinstance(r, dict)
        or not isinstance(r.get("config"), dict)
        or not isinstance(r.get("test_acc"), (int, float))
    ):
        return None, "not a run result (no config or test_acc)"
    if isinstance(r["test_acc"], bool) or not 0 <= r["test_acc"] <= 100:  # NaN fails the comparison too
        return None, f"its test_acc {r['test_acc']!r} is not a percentage in [0, 100]"
    wall = r.get("wall_time_s", 0.0)
    if not isinstance(wall, (int, float)) or isinstance(wall, bool) or not 0 <= wall < float("inf"):
        return None, f"its wall_time_s {wall!r} is not a time in seconds"
    try:
        own = run_id(config_from_dict(r["config"]))
    except (TypeError, ValueError, KeyError) as e:
        return None, f"its config is not a valid run config ({e})"
    if Path(path).stem != own:
        return None, f"its config's run is {own}.json: a copy or a renamed file"
    if cfg is not None:
        planned = asdict(cfg)
        stored = {
            **asdict(config_from_dict({k: v for k, v in r["config"].items() if k in planned})),
            **{k: v for k, v in r["config"].items() if k in planned},
        }
        if not method(cfg.method)["what"]:  # the meta-gradient's settings do not touch a run without one
            for k in ("lookahead_unreached", "meta_order", "meta_every", "bn_updates"):
                stored[k] = planned[k]
        changed = differences(stored, planned)
        if changed:
            return None, f"made with other settings ({changed})"
    return r, ""


def load_results(results, skipped=None, planned=None):
    """Every valid result JSON in a folder (not the summaries); ``skipped`` (a list) receives (name, why) of the rest.

    ``planned``: config dict -> the ``Config`` its recipe plans for that run; a result made with other settings
    is then left out (and named), by the same test as ``--dry-run``'s.
    """
    out = []
    for p in sorted(Path(results).glob("*.json")):
        if p.name in SUMMARY_FILES:
            continue
        r, why = _read_result(p)
        if not why and planned is not None:
            try:
                r, why = _read_result(p, planned(r["config"]))
            except (TypeError, ValueError) as e:
                r, why = None, f"not a run of this recipe ({e})"
        if why:
            if skipped is not None:
                skipped.append((p.name, why))
            continue
        out.append(r)
    return out


def read_lr_choice(results):
    """A results folder's lr_choice.json as a dict, method -> its entry ({} before any grid has finished)."""
    path = Path(results) / "lr_choice.json"
    if not path.exists():
        return {}
    try:
        choice = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not readable JSON ({e}); restore it from git, or move it away") from None
    if not isinstance(choice, dict):
        raise ValueError(f"{path} must map each method to its lr choice, got {type(choice).__name__}")
    return choice


def chosen_lr(choice, config):
    """The lr that counts for a run (config dict).

    Its exact method's choice (same lookahead rule), else its option's own grid's.
    """
    rule = "-kept" if variant(config).endswith("-kept") else ""
    for key in (config["method"] + rule, config["method"] + variant(config)):
        if key in choice:
            return choice[key]["chosen_lr"]
    return None


def record_lr_choice(results, method, scores, choice, n):
    """Keep the lr the grid chose for ``method`` in lr_choice.json, with every lr's best validation accuracy."""
    path = Path(results) / "lr_choice.json"
    entry = {
        "chosen_lr": choice,
        "best_val_acc_by_lr": {f"{k:g}": v for k, v in scores.items()},
        "chosen_at": f"N={n} per class, seed 0, by best validation accuracy",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with lock(f"{path}.lock"):  # parallel processes (one per N) must not lose each other's choices
        table = read_lr_choice(results)
        if table.get(method) == entry:  # a resumed or a parallel process: nothing to write
            return
        table[method] = entry
        atomic_write_text(path, json.dumps(table, indent=1))
