"""``l2t reproduce``: the paper's experiments as resumable recipes (one result JSON per run).

Every run is a ``Config``; finished runs (their JSON exists) are skipped, so a reproduction can be stopped
and continued. ``figure5 --scale quick`` is the CPU-scale protocol of the book's results page:

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
import json
import os
import shutil
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

from .files import atomic_save, atomic_write_text, lock
from .methods import method
from .train import Config, Trainer, checkpoint_epoch, config_from_dict

FIG5_METHODS = ["scratch", "lwf", "at", "fm-one-to-one", "l2t-ww"]
FIG5_DRAWN = [*FIG5_METHODS, "fm-all-to-all"]   # the figure: the paper's lines, and the ablation (dashed)
LR_GRID = [0.1, 0.03, 0.01]
QUICK_LR = 0.01   # the CPU-scale figure's one learning rate for every method: where all of them train
LR_N = 10   # the lr grid runs at N = 10 per class, seed 0, whichever N a process is asked for
TABLE1_METHODS = ["scratch", "lwf", "at", "lwf+at", "fm-single", "fm-one-to-one", "l2t-w-single",
                  "l2t-w-one-to-one", "l2t-ww"]
# Table 2: the second source of each row, made by `l2t train-source` when missing
TABLE2_SOURCES = {
    "+resnet20-tinyimagenet": "resnet20:{root}/sources/tinyimagenet-200-resnet20.pth.tar",
    "+resnet32-tinyimagenet-2": "resnet32:{root}/sources/tinyimagenet-200-resnet32-seed1.pth.tar",
    "+resnet32-cifar10": "resnet32:{root}/sources/cifar10-resnet32.pth.tar",
}


def run_id(cfg):
    """A run's file name: method, data size, seed and learning rate."""
    size = f"n{cfg.samples_per_class}" if cfg.samples_per_class is not None else cfg.dataset
    extra = "".join("+" + _source_name(s) for s in cfg.sources[1:])
    short = f"-it{cfg.max_iters}" if cfg.max_iters else ""   # recipe checks never pass for real runs
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
    return ("" if order == "exact" else f"-{order}") + ("" if every == 1 else f"-every{every}") + \
        ("-kept" if kept else "") + ("-bnauthors" if bn else "")


def _source_name(spec):
    arch, _, path = spec.partition(":")
    return arch if path in ("", "paper") else Path(path).name.split(".")[0]


def run_once(cfg, results, runs, device, cuda_graph=False, keep_model=False):
    """Run ``cfg`` unless its result exists; resumes its checkpoint; returns the result dict.

    ``device`` and ``cuda_graph`` say how to run, not what: they are not part of the run's name. Beside the
    result ``<run>.json`` an L2T run also leaves its meta-networks, ``<run>-phi.pt``; ``keep_model`` also
    keeps the best-validation target network in float16, ``<run>-model.pt``.
    """
    path = Path(results) / f"{run_id(cfg)}.json"
    if path.exists():
        return _existing(path, cfg)
    out = Path(runs) / run_id(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    with lock(f"{out}.lock"):   # parallel processes (one per N) plan some runs alike: one trains, the other waits
        if path.exists():   # ... and then finds it done
            return _existing(path, cfg)
        cfg = replace(cfg, out=str(out), device=device, cuda_graph=cuda_graph)
        trainer = Trainer(cfg)
        result = trainer.fit(resume=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        if trainer.what is not None:
            trainer.save_phi(path.with_name(f"{path.stem}-phi.pt"))
        if keep_model:
            trainer.save_model(path.with_name(f"{path.stem}-model.pt"))
        atomic_write_text(path, json.dumps(result, indent=1))
        shutil.rmtree(cfg.out, ignore_errors=True)  # the checkpoint is no longer needed
        Path(f"{out}.lock").unlink(missing_ok=True)  # a waiter holding it re-checks the result, which now exists
    return result


def _existing(path, cfg):
    """The finished result at ``path`` for the planned ``cfg``; a bad or foreign file is one clear error."""
    r, why = _read_result(path, cfg)
    if why:
        raise ValueError(f"{path} exists but is not this run's result: {why}. Move it away and run again")
    return r


def figure5_base(scale):
    """The figure-5 config shared by every run of a scale."""
    base = Config(dataset="cifar10", target="vgg9", sources=["resnet32:paper"], epochs=200, batch_size=128)
    if scale == "quick":
        return replace(base, lr=QUICK_LR, val_per_class=50, eval_every=10, ckpt_every=20)
    return replace(base, val_per_class=100, eval_every=1, ckpt_every=1)


def figure5_seeds(n):
    """The CPU-scale protocol's seeds at N images per class: three up to N = 25, two above (where runs cost more)."""
    return [0, 1, 2] if n <= 25 else [0, 1]


def figure5(scale, seeds=None, methods=None, samples=None, out=None, device="auto", dry_run=False,
            max_iters=None, meta_order="exact", meta_every=1, cuda_graph=False, lr_grid=False,
            unreached="zero-grad", keep_model=False, lr=None, bn_updates="once"):
    """Figure 5: accuracy vs samples per class, one line per method (resumable).

    Every method runs at one learning rate: ``lr``, or the scale's (quick: ``QUICK_LR``; paper: the paper's 0.1).
    ``lr_grid`` (quick scale) instead runs each method at its own lr, chosen from ``LR_GRID`` on validation at
    N = 10, seed 0 (the secondary view). ``meta_order``/``meta_every``/``unreached``/``bn_updates`` run L2T methods
    with a cheaper meta-gradient option, the other lookahead rule or the authors' BatchNorm updates (results named
    with a suffix, beside the exact ones).
    ``keep_model`` keeps each run's trained target network beside its result (``run_once``).
    """
    results = Path(out or f"results/figure5-{scale}")
    if results.exists() and not results.is_dir():   # checked before any run, dry or not
        raise ValueError(f"--out {results} is a file; give the folder for the results")
    runs = Path("runs") / results.name
    if lr is not None and (lr_grid or not 0 < lr <= 10):
        raise ValueError(f"--lr {lr:g}: " + ("--lr-grid chooses each method's lr itself; give one of them" if lr_grid
                                            else "a learning rate must be > 0 and at most 10"))
    base = replace(figure5_base(scale), max_iters=max_iters, meta_order=meta_order, meta_every=meta_every,
                   lookahead_unreached=unreached, bn_updates=bn_updates)
    base = replace(base, lr=lr) if lr is not None else base
    methods = methods or FIG5_METHODS
    samples = samples or [10, 25, 50, 100]
    if any(n < 1 for n in samples):   # checked before hours of lr-grid training
        raise ValueError(f"--samples must be >= 1 images per class, got {' '.join(map(str, samples))}")
    plan, chosen = [], {}
    recorded = {m: c["chosen_lr"] for m, c in read_lr_choice(results).items()}
    rule = "-kept" if unreached == "kept" else ""
    if lr_grid and variant(replace(base, lookahead_unreached="zero-grad")):   # compare the options at the same lr
        chosen = {m: recorded[m + rule] for m in methods if m + rule in recorded}
    small, large = [n for n in sorted(samples) if n <= 25], [n for n in sorted(samples) if n > 25]
    # pass 1: per method (cheap first), its lr choice and the small-N runs; pass 2: the large-N runs
    for m, ns in [(m, small) for m in methods] + [(m, large) for m in methods]:
        if lr_grid and scale == "quick" and m not in chosen:   # choose the lr first, by validation accuracy only
            grid = [_options_for(replace(base, method=m, samples_per_class=LR_N, seed=0, lr=lr)) for lr in LR_GRID]
            plan += [("lr-grid", c) for c in grid]
            key = m + variant(grid[0])   # a method without meta-networks runs (and records) its exact grid
            if not dry_run:
                scores = {c.lr: run_once(c, results, runs, device, cuda_graph)["best_val_acc"] for c in grid}
                chosen[m] = max(LR_GRID, key=lambda lr: (scores[lr], lr))
                if not max_iters:   # a recipe check's grid must not replace the real choice
                    record_lr_choice(results, key, scores, chosen[m], LR_N)
            else:   # a dry run shows the lr a finished grid chose
                chosen[m] = recorded.get(key)
        for n in ns:
            for seed in (seeds or figure5_seeds(n)):
                cfg = _options_for(replace(base, method=m, samples_per_class=n, seed=seed, lr=chosen.get(m) or base.lr))
                plan.append(("run", cfg))
                if not dry_run:
                    run_once(cfg, results, runs, device, cuda_graph, keep_model)
                    if lr is None:   # the figure's own protocol: the partial summary is always current
                        summarize_figure5(results, verbose=False, lr=base.lr, scale=scale)
    if dry_run:
        open_lr = {m for m in methods if lr_grid and scale == "quick" and chosen.get(m) is None}
        _print_plan([(kind, cfg, "  (lr: the grid's choice)" if kind == "run" and cfg.method in open_lr else "")
                     for kind, cfg in plan], results, runs)
        return plan
    # a side run at another lr is summarised apart, so that the figure's own summary is never replaced
    summarize_figure5(results, lr=base.lr, out=None if lr is None else results / f"summary-lr{lr:g}", scale=scale)
    return plan


def read_lr_choice(results):
    """A results folder's lr_choice.json as a dict, method -> its entry ({} before any grid has finished)."""
    path = Path(results) / "lr_choice.json"
    return json.loads(path.read_text()) if path.exists() else {}


def chosen_lr(choice, config):
    """The lr that counts for a run (config dict).

    Its exact method's choice (same lookahead rule), else its option's own grid's.
    """
    rule = "-kept" if variant(config).endswith("-kept") else ""
    for key in (config["method"] + rule, config["method"] + variant(config)):
        if key in choice:
            return choice[key]["chosen_lr"]
    return None


def run_state(cfg, results, runs):
    """Where a planned run stands: 'done' (its result JSON exists), 'resumes at epoch k/E[, ~time left]' or 'to do'."""
    path = Path(results) / f"{run_id(cfg)}.json"
    if path.exists():
        why = result_problem(path, cfg)
        return f"bad result file: {why}" if why else "done"
    ckpt = Path(runs) / run_id(cfg) / "checkpoint.pt"
    if ckpt.exists():   # mmap: only the small header is read, not the weights
        epoch = checkpoint_epoch(ckpt)
        if epoch is None:
            return "unreadable checkpoint (truncated?): move it away to start over"
        left = time_left(ckpt.with_name("metrics.jsonl"), epoch, cfg.epochs)
        return f"resumes at epoch {epoch}/{cfg.epochs}" + (f", ~{left} left" if left else "")
    return "to do"


def time_left(metrics, epoch, epochs):
    """A resumed run's remaining time: the median epoch time in its metrics.jsonl x the epochs left."""
    if not metrics.exists():
        return None
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    at = {r["epoch"]: r["elapsed_s"] for r in rows if "elapsed_s" in r and r["epoch"] < epoch}   # last row wins
    steps = sorted(at[e] - at[e - 1] for e in at if e - 1 in at)
    if not steps:
        return None
    seconds = steps[len(steps) // 2] * (epochs - epoch)
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _print_plan(plan, results, runs):
    """A dry run's listing: each run's kind, name and state, then how many are done and how many remain."""
    states = {}   # by name: the grid's run at the chosen lr is also the seed-0 run
    for kind, cfg, extra in plan:
        name = run_id(cfg)
        states[name] = run_state(cfg, results, runs)
        print(f"{kind:8s} {states[name]:37s} {name}{extra}")
    states = list(states.values())
    done, resumes = states.count("done"), sum(s.startswith("resumes") for s in states)
    print(f"{len(states)} runs in {results}: {done} done, {resumes} resume from a checkpoint, "
          f"{len(states) - done - resumes} to do")


def _options_for(cfg):
    """Methods without meta-networks ignore the meta-gradient options (their runs are the exact ones)."""
    return cfg if method(cfg.method)["what"] else replace(cfg, meta_order="exact", meta_every=1,
                                                           lookahead_unreached="zero-grad")


def record_lr_choice(results, method, scores, choice, n):
    """Keep the lr the grid chose for ``method`` in lr_choice.json, with every lr's best validation accuracy."""
    path = Path(results) / "lr_choice.json"
    entry = {"chosen_lr": choice, "best_val_acc_by_lr": {f"{k:g}": v for k, v in scores.items()},
             "chosen_at": f"N={n} per class, seed 0, by best validation accuracy"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with lock(f"{path}.lock"):   # parallel processes (one per N) must not lose each other's choices
        table = read_lr_choice(results)
        if table.get(method) == entry:   # a resumed or a parallel process: nothing to write
            return
        table[method] = entry
        atomic_write_text(path, json.dumps(table, indent=1))


SUMMARY_FILES = ("lr_choice.json", "summary.json", "summary-own-lr.json", "paired.json")   # not run results


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
    if (not isinstance(r, dict) or not isinstance(r.get("config"), dict)
            or not isinstance(r.get("test_acc"), (int, float))):
        return None, "not a run result (no config or test_acc)"
    if isinstance(r["test_acc"], bool) or not 0 <= r["test_acc"] <= 100:   # NaN fails the comparison too
        return None, f"its test_acc {r['test_acc']!r} is not a percentage in [0, 100]"
    try:
        own = run_id(config_from_dict(r["config"]))
    except (TypeError, ValueError, KeyError) as e:
        return None, f"its config is not a valid run config ({e})"
    if Path(path).stem != own:
        return None, f"its config's run is {own}.json: a copy or a renamed file"
    if cfg is not None:
        from .train import _differences
        planned = asdict(cfg)
        stored = {**asdict(config_from_dict({k: v for k, v in r["config"].items() if k in planned})),
                  **{k: v for k, v in r["config"].items() if k in planned}}
        if not method(cfg.method)["what"]:   # the meta-gradient's settings do not touch a run without one
            for k in ("lookahead_unreached", "meta_order", "meta_every", "bn_updates"):
                stored[k] = planned[k]
        changed = _differences(stored, planned)
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


def _figure5_order(name):
    """The paper's baselines, the FM ablation of L2T-ww's pairs, L2T-ww, then its cheaper options."""
    order = FIG5_METHODS[:-1] + ["fm-all-to-all", "l2t-ww"]
    base = next((m for m in sorted(order, key=len, reverse=True) if name.startswith(m)), None)
    return (order.index(base) if base else len(order), len(name), name)   # the method, then its variants


def figure5_planned(config, scale="quick"):
    """The config ``figure5`` plans for a stored run's method, N, seed, lr and meta-gradient options."""
    c = config_from_dict(config)
    return replace(figure5_base(scale), method=c.method, samples_per_class=c.samples_per_class, seed=c.seed,
                   lr=c.lr, meta_order=c.meta_order, meta_every=c.meta_every, max_iters=c.max_iters,
                   lookahead_unreached=c.lookahead_unreached, bn_updates=c.bn_updates)


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
    real = [r for r in runs if not r["config"].get("max_iters")]   # not the recipe checks (--max-iters)
    whole = [r for r in real if r["config"].get("samples_per_class") is None]   # e.g. a table1 run saved here
    real = [r for r in real if r["config"].get("samples_per_class") is not None]   # Fig. 5's x-axis: images per class
    table = {}
    for r in real:
        if r["config"]["lr"] == lr:
            table.setdefault(r["config"]["method"] + variant(r["config"]), {}).setdefault(
                r["config"]["samples_per_class"], []).append(r)
    summary, lines = _summary_table(table)
    paired = paired_differences(summary)
    own = own_lr_summary(results, real)
    own_summary, own_lines = _summary_table(own) if own else ({}, [])
    head = [f"**Figure 5 at one learning rate: every method at lr {lr:g}.**", "",
            "Test accuracy (%) per seed (a seed fixes the training images and the initialisation; "
            "* = collapsed onto one class), mean ± sample std.", ""]
    text = head + lines + [""] + paired_table(paired)
    if own_lines:
        text += ["", "**Secondary view: each method at its own learning rate.**",
                 "", "Each lr chosen once from {" + ", ".join(f"{v:g}" for v in LR_GRID) + "} on validation "
                 "accuracy at N = 10, seed 0 (lr_choice.json); a choice from 500 validation images is noisy (about "
                 "2 points of standard error), so differences here mix method and learning rate.", ""] + own_lines
    other = len(real) - sum(len(v) for by_n in table.values() for v in by_n.values()) - \
        sum(len(v) for by_n in own.values() for v in by_n.values() if v[0]["config"]["lr"] != lr)
    if other > 0:
        text += ["", f"Also in this folder, in neither table: {other} run(s) at other learning rates "
                     "(the lr grid's other values and side runs)."]
    if whole:
        text += ["", f"Left out: {len(whole)} run(s) on the whole training set (no samples per class), "
                     "which are not Figure 5 runs."]
    if skipped:
        text += ["", "Not counted, and why:"] + [f"- `{name}`: {why}" for name, why in skipped]
    gpus = sorted({r["device"] for r in real if _on_gpu(r)})
    if gpus:   # the same protocol, run on a GPU
        text += ["", f"† run on {', '.join(gpus)} with the same protocol; every other run on the CPU."]
    hours = {}   # what the whole folder cost, lr-grid runs and cheaper options included
    for r in runs:
        kind = "GPU" if _on_gpu(r) else "CPU"
        hours[kind] = hours.get(kind, 0.0) + r.get("wall_time_s", 0.0) / 3600
    if hours:
        text += ["", "Training time of every run in this folder (lr grid included): " +
                 ", ".join(f"{h:.2f} {k}-hours" for k, h in sorted(hours.items())) + "."]
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary-own-lr.json").write_text(json.dumps(own_summary, indent=1))
    (out / "paired.json").write_text(json.dumps(paired, indent=1))
    (out / "summary.md").write_text("\n".join(text) + "\n")
    _figure5_figures(summary, own_summary, out, lr)
    if verbose:
        print("\n".join(text))
    return summary


def _on_gpu(r):
    return not str(r.get("device", "cpu")).startswith("cpu")


def _summary_table(table):
    """(summary dict, markdown rows) of ``table``: name -> N -> result dicts."""
    summary, lines = {}, ["| method | N | seeds: test acc (* = collapsed) | mean ± std |", "|---|---|---|---|"]
    for m in sorted(table, key=_figure5_order):
        for n in sorted(table[m]):
            rs = sorted(table[m][n], key=lambda r: r["config"]["seed"])
            accs = [r["test_acc"] for r in rs]
            mean = statistics.mean(accs)
            std = statistics.stdev(accs) if len(accs) > 1 else None   # one seed has no spread to show
            summary.setdefault(m, {})[n] = {"seeds": [r["config"]["seed"] for r in rs], "test_acc": accs,
                                            "collapsed": [r["collapsed"] for r in rs], "mean": mean, "std": std,
                                            "lr": rs[0]["config"]["lr"]}
            per_seed = ", ".join(f"s{r['config']['seed']}: {a:.2f}{'*' if r['collapsed'] else ''}"
                                 f"{'†' if _on_gpu(r) else ''}" for r, a in zip(rs, accs))
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
        runs = [r for r in load_results(results)
                if not r["config"].get("max_iters") and r["config"].get("samples_per_class") is not None]
    lrs, table = {}, {}
    for r in runs:
        lrs.setdefault(r["config"]["method"] + variant(r["config"]), set()).add(r["config"]["lr"])
    for r in runs:
        c = r["config"]
        name, lr = c["method"] + variant(c), chosen_lr(choice, c)   # an option reuses its exact method's lr
        if lr is not None and c["lr"] != lr:
            continue  # an lr-grid run that lost
        if lr is None and (choice or len(lrs[name]) > 1):   # a grid is under way: never average lrs as seeds
            name = f"{name} [lr {c['lr']:g}, grid not finished]"
        table.setdefault(name, {}).setdefault(c["samples_per_class"], []).append(r)
    return table


def own_lr_json(table):
    """``own_lr_summary``'s table as a summary dict (the shape of summary.json)."""
    return _summary_table(table)[0] if table else {}


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
                rows[m] = {"seeds": seeds, "differences": [mine[s] - other[s] for s in seeds],
                           **paired_interval([mine[s] - other[s] for s in seeds], level)}
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
    lines = [f"Paired by seed: {top} minus each method (points), mean and 95 % t-interval over the seeds both ran.",
             "", "| N | method | seeds | per seed | mean | 95 % interval |", "|---|---|---|---|---|---|"]
    for n, rows in paired.items():
        for m, d in rows.items():
            label = f"best baseline ({d['method']})" if m == "best baseline" else m
            ci = "—" if d["low"] is None else f"[{d['low']:+.2f}, {d['high']:+.2f}]"
            lines.append(f"| {n} | {label} | {len(d['seeds'])} | {', '.join(f'{v:+.2f}' for v in d['differences'])} "
                         f"| {d['mean']:+.2f} | {ci} |")
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
        figures += [("figure5.png", figure5_plot(lines, title=f"Every method at lr {lr:g} (CPU-scale)",   # the paper's
                                                 dashed=("fm-all-to-all",))),        # lines, and the ablation dashed
                    ("paired.png", paired_plot(summary))]
    if lead_split(summary):   # lead_split.png: L2T-ww's lead over FM = more pairs + learned weights, equal lr
        figures.append(("lead_split.png", lead_split_plot(summary)))
    else:
        (out / "lead_split.png").unlink(missing_ok=True)   # never leave a stale split behind
    if own:
        paper = set(FIG5_METHODS) | {name + "-kept" for name in FIG5_METHODS}   # the paper's lines, either rule
        lines = {m: v for m, v in own.items() if m.split(" [")[0] in paper}
        figures.append(("figure5-own-lr.png", figure5_plot(lines or own, title="Secondary view: each method at its "
                                                           "own lr, chosen on validation (CPU-scale)")))
    for name, fig in figures:
        fig.savefig(out / name, dpi=150, bbox_inches="tight")
        plt.close(fig)


# Table 1's columns: 32x32 (ResNet32-TinyImageNet -> VGG9, batch 128) and 224x224 (ResNet34-ImageNet ->
# ResNet18, batch 64). MIT67 and Stanford40 have no split file from the authors: 10 training images per
# class are held out for validation.
TABLE1_COLUMNS = {
    "cifar100": dict(dataset="cifar100", split="paper", target="vgg9", sources=["resnet32:paper"]),
    "stl10": dict(dataset="stl10", split="paper", target="vgg9", sources=["resnet32:paper"]),
    "cub200": dict(dataset="cub200", split="paper", target="resnet18", sources=["resnet34:imagenet"], batch_size=64),
    "dog": dict(dataset="dog", split="paper", target="resnet18", sources=["resnet34:imagenet"], batch_size=64),
    "mit67": dict(dataset="mit67", split="auto", val_per_class=10, target="resnet18", sources=["resnet34:imagenet"],
                  batch_size=64),
    "stanford40": dict(dataset="stanford40", split="auto", val_per_class=10, target="resnet18",
                       sources=["resnet34:imagenet"], batch_size=64),
}


def table1(scale, column, seeds=None, methods=None, out=None, device="auto", dry_run=False, max_iters=None,
           cuda_graph=False):
    """Table 1: one column, the paper's split, 200 epochs, the paper's optimisers, three seeds."""
    if column not in TABLE1_COLUMNS:
        raise ValueError(f"table1 --column must be one of {', '.join(TABLE1_COLUMNS)}, got {column!r}")
    base = Config(**TABLE1_COLUMNS[column], max_iters=max_iters)
    if scale == "quick":
        base = replace(base, samples_per_class=10, epochs=20, eval_every=5)
    plan = [replace(base, method=m, seed=s) for m in (methods or TABLE1_METHODS) for s in (seeds or [0, 1, 2])]
    return _run_plan(plan, out or f"results/table1-{column}-{scale}", device, dry_run, cuda_graph)


def table2(scale, seeds=None, out=None, device="auto", dry_run=False, max_iters=None, cuda_graph=False):
    """Table 2: multi-source L2T-ww on STL-10 (the paper's source plus a second one)."""
    from .data import data_root
    base = Config(method="l2t-ww", dataset="stl10", split="paper", target="vgg9", max_iters=max_iters)
    if scale == "quick":
        base = replace(base, samples_per_class=10, epochs=20, eval_every=5)
    plan = []
    for name, spec in TABLE2_SOURCES.items():
        spec = spec.format(root=data_root())
        if scale == "quick":   # its 2-epoch source must never sit where the paper-scale run looks for one
            spec = spec.replace(".pth.tar", "-quick.pth.tar")
        plan += [replace(base, sources=["resnet32:paper", spec], seed=s) for s in (seeds or [0, 1, 2])]
        if not dry_run:
            ensure_source(spec, scale, device)
    return _run_plan(plan, out or f"results/table2-{scale}", device, dry_run, cuda_graph)


def ensure_source(spec, scale, device):
    """Train a missing extra source network (``l2t train-source``) in the paper's checkpoint format."""
    arch, path = spec.split(":", 1)
    if Path(path).exists():
        return
    dataset = "cifar10" if "cifar10" in Path(path).name else "tinyimagenet"
    seed = 1 if "seed1" in Path(path).name else 0
    train_source(arch, dataset, path, seed=seed, device=device, epochs=200 if scale == "paper" else 2)


def train_source(arch, dataset, path, seed=0, device="auto", epochs=200, max_iters=None, val_per_class=50,
                 overwrite=False):
    """Train a source network (scratch on the full dataset) and save it as the paper's checkpoints are saved.

    An existing file at ``path`` (the paper's own checkpoint, say) is never written over: it is refused before
    training, or with ``overwrite`` moved aside to ``<path>.replaced-<time>`` once the new one is ready.
    """
    path = Path(path)
    if path.is_dir() or not path.name:
        raise ValueError(f"--out {path} is a folder; give the checkpoint file to write, e.g. {path}/source.pth.tar")
    if path.exists() and not overwrite:
        raise ValueError(f"--out {path} exists and l2t never writes over a checkpoint; choose another --out, or "
                         f"--overwrite to move the old file aside")
    parent = next(q for q in [path.parent, *path.parent.parents] if q.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ValueError(f"--out {path}: {parent} is {'not a folder' if not parent.is_dir() else 'not writable'}")
    cfg = Config(method="scratch", dataset=dataset, target=arch, seed=seed, device=device, epochs=epochs,
                 out=str(Path("runs") / "sources" / Path(path).stem), max_iters=max_iters, val_per_class=val_per_class)
    trainer = Trainer(cfg)
    result = trainer.fit(resume=True)
    state = trainer.best["state"] or trainer.model.state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():   # --overwrite: the old file is kept beside the new one
        os.replace(path, path.with_name(f"{path.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"))
    atomic_save({"epoch": result["best_val_epoch"], "best": result["best_val_acc"], "test_prec": result["test_acc"],
                  "state_dict": state, "num_classes": trainer.model.fc.out_features}, path)
    return result


def _run_plan(plan, results, device, dry_run, cuda_graph=False):
    results, runs = Path(results), Path("runs") / Path(results).name
    if results.exists() and not results.is_dir():
        raise ValueError(f"--out {results} is a file; give the folder for the results")
    if dry_run:
        _print_plan([("run", cfg, f"  {json.dumps(asdict(cfg))}") for cfg in plan], results, runs)
        return plan
    for cfg in plan:
        run_once(cfg, results, runs, device, cuda_graph)
    return plan


def reproduce(experiment, scale="quick", seeds=None, methods=None, out=None, column=None, samples=None,
              device="auto", dry_run=False, max_iters=None, meta_order="exact", meta_every=1, cuda_graph=False,
              lr_grid=False, unreached="zero-grad", keep_model=False, lr=None, bn_updates="once"):
    """Dispatch ``l2t reproduce <experiment>``."""
    if experiment == "figure5":
        return figure5(scale, seeds=seeds, methods=methods, samples=samples, out=out, device=device, dry_run=dry_run,
                       max_iters=max_iters, meta_order=meta_order, meta_every=meta_every, cuda_graph=cuda_graph,
                       lr_grid=lr_grid, unreached=unreached, keep_model=keep_model, lr=lr, bn_updates=bn_updates)
    if (meta_order, meta_every, lr_grid, unreached, keep_model, lr, bn_updates) != \
            ("exact", 1, False, "zero-grad", False, None, "once"):
        raise ValueError("--meta-order/--meta-every/--lr-grid/--lookahead-unreached/--keep-model/--lr/--bn-updates "
                         "are for figure5 "
                         "(the paper's tables use Algorithm 1 exactly)")
    if experiment == "table1":
        return table1(scale, column or "stl10", seeds, methods, out, device, dry_run, max_iters, cuda_graph)
    if experiment == "table2":
        return table2(scale, seeds, out, device, dry_run, max_iters, cuda_graph)
    raise ValueError(f"unknown experiment {experiment!r}; choose figure5, table1 or table2")
