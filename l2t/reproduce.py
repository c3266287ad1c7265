"""``l2t reproduce``: the paper's experiments as resumable recipes (one result JSON per run).

Every run is a ``Config``; finished runs (their JSON exists) are skipped, so a reproduction can be stopped
and continued. ``figure5 --scale quick`` is the CPU-scale protocol of the book's results page
(``l2t.protocol``); ``table1`` and ``table2`` are the paper's tables.
"""

import inspect
import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path

from .config import Config
from .files import atomic_write_text, lock
from .methods import method
from .protocol import FIG5_METHODS, LR_GRID, LR_N, QUICK_LR, figure5_base, figure5_planned, figure5_seeds
from .results import _read_result, read_lr_choice, record_lr_choice, result_problem, run_id, variant
from .runfolder import RunFolderError, checkpoint_epoch, epoch_of
from .sources import ensure_source, train_source
from .summary import summarize_figure5
from .train import Trainer

__all__ = [
    "reproduce",
    "figure5",
    "table1",
    "table2",
    "train_source",
    "ensure_source",
    "run_once",
    "run_id",
    "figure5_base",
    "figure5_planned",
    "summarize_figure5",
    "FIG5_METHODS",
    "LR_GRID",
    "QUICK_LR",
]

TABLE1_METHODS = [
    "scratch",
    "lwf",
    "at",
    "lwf+at",
    "fm-single",
    "fm-one-to-one",
    "l2t-w-single",
    "l2t-w-one-to-one",
    "l2t-ww",
]


# Table 2: the second source of each row, made by `l2t train-source` when missing
TABLE2_SOURCES = {
    "+resnet20-tinyimagenet": "resnet20:{root}/sources/tinyimagenet-200-resnet20.pth.tar",
    "+resnet32-tinyimagenet-2": "resnet32:{root}/sources/tinyimagenet-200-resnet32-seed1.pth.tar",
    "+resnet32-cifar10": "resnet32:{root}/sources/cifar10-resnet32.pth.tar",
}


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
    with lock(f"{out}.lock"):  # parallel processes (one per N) plan some runs alike: one trains, the other waits
        if path.exists():  # ... and then finds it done (its wait may have made the lock file anew: remove it)
            Path(f"{out}.lock").unlink(missing_ok=True)
            return _existing(path, cfg)
        cfg = replace(cfg, out=str(out), device=device, cuda_graph=cuda_graph)
        trainer = Trainer(cfg)
        try:
            result = trainer.fit(resume=True)
        except RunFolderError as e:  # l2t train's --overwrite is not reproduce's: say what to do here
            problem = e.problem.replace(f"--out {out}", f"the run folder {out}")
            raise ValueError(f"{problem}; move {out} away to start this run over") from None
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


def figure5(
    scale,
    *,
    seeds=None,
    methods=None,
    samples=None,
    out=None,
    device="auto",
    dry_run=False,
    max_iters=None,
    meta_order="exact",
    meta_every=1,
    cuda_graph=False,
    lr_grid=False,
    unreached="zero-grad",
    keep_model=False,
    lr=None,
    bn_updates="once",
):
    """Figure 5: accuracy vs samples per class, one line per method (resumable).

    Every method runs at one learning rate: ``lr``, or the scale's (quick: ``QUICK_LR``; paper: the paper's 0.1).
    ``lr_grid`` (quick scale) instead runs each method at its own lr, chosen from ``LR_GRID`` on validation at
    N = 10, seed 0 (the secondary view). ``meta_order``/``meta_every``/``unreached``/``bn_updates`` run L2T methods
    with a cheaper meta-gradient option, the other lookahead rule or the authors' BatchNorm updates (results named
    with a suffix, beside the exact ones).
    ``keep_model`` keeps each run's trained target network beside its result (``run_once``).
    """
    results = Path(out or f"results/figure5-{scale}")
    runs = Path("runs") / results.name
    samples = samples or [10, 25, 50, 100]
    _check_figure5(results, lr, lr_grid, samples)
    base = replace(
        figure5_base(scale),
        max_iters=max_iters,
        meta_order=meta_order,
        meta_every=meta_every,
        lookahead_unreached=unreached,
        bn_updates=bn_updates,
    )
    base = replace(base, lr=lr) if lr is not None else base
    methods = methods or FIG5_METHODS
    plan, chosen = [], {}
    recorded = {m: c["chosen_lr"] for m, c in read_lr_choice(results).items()}
    rule = "-kept" if unreached == "kept" else ""
    if lr_grid and variant(replace(base, lookahead_unreached="zero-grad")):  # compare the options at the same lr
        chosen = {m: recorded[m + rule] for m in methods if m + rule in recorded}
    small, large = [n for n in sorted(samples) if n <= 25], [n for n in sorted(samples) if n > 25]
    # pass 1: per method (cheap first), its lr choice and the small-N runs; pass 2: the large-N runs
    for m, ns in [(m, small) for m in methods] + [(m, large) for m in methods]:
        if lr_grid and scale == "quick" and m not in chosen:  # choose the lr first, by validation accuracy only
            grid, chosen[m] = _lr_grid(replace(base, method=m), results, runs, device, cuda_graph, dry_run, recorded)
            plan += [("lr-grid", c) for c in grid]
        for n in ns:
            for seed in seeds or figure5_seeds(n):
                cfg = _options_for(replace(base, method=m, samples_per_class=n, seed=seed, lr=chosen.get(m) or base.lr))
                plan.append(("run", cfg))
                if not dry_run:
                    run_once(cfg, results, runs, device, cuda_graph, keep_model)
                    if lr is None:  # the figure's own protocol: the partial summary is always current
                        summarize_figure5(results, verbose=False, lr=base.lr, scale=scale)
    if dry_run:
        open_lr = {m for m in methods if lr_grid and scale == "quick" and chosen.get(m) is None}
        _print_plan(
            [
                (kind, cfg, "  (lr: the grid's choice)" if kind == "run" and cfg.method in open_lr else "")
                for kind, cfg in plan
            ],
            results,
            runs,
        )
        return plan
    # a side run at another lr is summarised apart, so that the figure's own summary is never replaced
    summarize_figure5(results, lr=base.lr, out=None if lr is None else results / f"summary-lr{lr:g}", scale=scale)
    return plan


def _check_figure5(results, lr, lr_grid, samples):
    """figure5's own arguments, checked before any run, dry or not (a Config checks the rest)."""
    if results.exists() and not results.is_dir():
        raise ValueError(f"--out {results} is a file; give the folder for the results")
    if lr is not None and (lr_grid or not 0 < lr <= 10):
        raise ValueError(
            f"--lr {lr:g}: "
            + (
                "--lr-grid chooses each method's lr itself; give one of them"
                if lr_grid
                else "a learning rate must be > 0 and at most 10"
            )
        )
    if any(n < 1 for n in samples):  # before hours of lr-grid training
        raise ValueError(f"--samples must be >= 1 images per class, got {' '.join(map(str, samples))}")


def _lr_grid(base, results, runs, device, cuda_graph, dry_run, recorded):
    """The lr grid of ``base.method`` at N = LR_N, seed 0: its configs, and the lr with the best validation accuracy.

    A dry run runs nothing and shows the lr a finished grid chose (``recorded``), else None.
    """
    grid = [_options_for(replace(base, samples_per_class=LR_N, seed=0, lr=lr)) for lr in LR_GRID]
    key = base.method + variant(grid[0])  # a method without meta-networks runs (and records) its exact grid
    if dry_run:
        return grid, recorded.get(key)
    scores = {c.lr: run_once(c, results, runs, device, cuda_graph)["best_val_acc"] for c in grid}
    chosen = max(LR_GRID, key=lambda lr: (scores[lr], lr))
    if not base.max_iters:  # a recipe check's grid must not replace the real choice
        record_lr_choice(results, key, scores, chosen, LR_N)
    return grid, chosen


def run_state(cfg, results, runs):
    """Where a planned run stands: 'done' (its result JSON exists), 'resumes at epoch k/E[, ~time left]' or 'to do'."""
    path = Path(results) / f"{run_id(cfg)}.json"
    if path.exists():
        why = result_problem(path, cfg)
        return f"bad result file: {why}" if why else "done"
    ckpt = Path(runs) / run_id(cfg) / "checkpoint.pt"
    if ckpt.exists():  # mmap: only the small header is read, not the weights
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
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if epoch_of(line) < epoch]  # readable
    at = {r["epoch"]: r["elapsed_s"] for r in rows if isinstance(r.get("elapsed_s"), (int, float))}  # last wins
    steps = sorted(at[e] - at[e - 1] for e in at if e - 1 in at)
    if not steps:
        return None
    seconds = steps[len(steps) // 2] * (epochs - epoch)
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _print_plan(plan, results, runs):
    """A dry run's listing: each run's kind, name and state, then how many are done and how many remain."""
    states = {}  # by name: the grid's run at the chosen lr is also the seed-0 run
    for kind, cfg, extra in plan:
        name = run_id(cfg)
        states[name] = run_state(cfg, results, runs)
        print(f"{kind:8s} {states[name]:37s} {name}{extra}")
    states = list(states.values())
    done, resumes = states.count("done"), sum(s.startswith("resumes") for s in states)
    print(
        f"{len(states)} runs in {results}: {done} done, {resumes} resume from a checkpoint, "
        f"{len(states) - done - resumes} to do"
    )


def _options_for(cfg):
    """Methods without meta-networks ignore the meta-gradient options (their runs are the exact ones)."""
    return (
        cfg
        if method(cfg.method)["what"]
        else replace(cfg, meta_order="exact", meta_every=1, lookahead_unreached="zero-grad")
    )


# Table 1's columns: 32x32 (ResNet32-TinyImageNet -> VGG9, batch 128) and 224x224 (ResNet34-ImageNet ->
# ResNet18, batch 64). MIT67 and Stanford40 have no split file from the authors: 10 training images per
# class are held out for validation.
TABLE1_COLUMNS = {
    "cifar100": dict(dataset="cifar100", split="paper", target="vgg9", sources=["resnet32:paper"]),
    "stl10": dict(dataset="stl10", split="paper", target="vgg9", sources=["resnet32:paper"]),
    "cub200": dict(dataset="cub200", split="paper", target="resnet18", sources=["resnet34:imagenet"], batch_size=64),
    "dog": dict(dataset="dog", split="paper", target="resnet18", sources=["resnet34:imagenet"], batch_size=64),
    "mit67": dict(
        dataset="mit67", split="auto", val_per_class=10, target="resnet18", sources=["resnet34:imagenet"], batch_size=64
    ),
    "stanford40": dict(
        dataset="stanford40",
        split="auto",
        val_per_class=10,
        target="resnet18",
        sources=["resnet34:imagenet"],
        batch_size=64,
    ),
}


def table1(
    scale, column, *, seeds=None, methods=None, out=None, device="auto", dry_run=False, max_iters=None, cuda_graph=False
):
    """Table 1: one column, the paper's split, 200 epochs, the paper's optimisers, three seeds."""
    if column not in TABLE1_COLUMNS:
        raise ValueError(f"table1 --column must be one of {', '.join(TABLE1_COLUMNS)}, got {column!r}")
    base = Config(**TABLE1_COLUMNS[column], max_iters=max_iters)
    if scale == "quick":
        base = replace(base, samples_per_class=10, epochs=20, eval_every=5)
    plan = [replace(base, method=m, seed=s) for m in (methods or TABLE1_METHODS) for s in (seeds or [0, 1, 2])]
    return _run_plan(plan, out or f"results/table1-{column}-{scale}", device, dry_run, cuda_graph)


def table2(scale, *, seeds=None, out=None, device="auto", dry_run=False, max_iters=None, cuda_graph=False):
    """Table 2: multi-source L2T-ww on STL-10 (the paper's source plus a second one)."""
    from .data import data_root

    base = Config(method="l2t-ww", dataset="stl10", split="paper", target="vgg9", max_iters=max_iters)
    if scale == "quick":
        base = replace(base, samples_per_class=10, epochs=20, eval_every=5)
    plan = []
    for name, spec in TABLE2_SOURCES.items():
        spec = spec.format(root=data_root())
        if scale == "quick":  # its 2-epoch source must never sit where the paper-scale run looks for one
            spec = spec.replace(".pth.tar", "-quick.pth.tar")
        plan += [replace(base, sources=["resnet32:paper", spec], seed=s) for s in (seeds or [0, 1, 2])]
        if not dry_run:
            ensure_source(spec, scale, device)
    return _run_plan(plan, out or f"results/table2-{scale}", device, dry_run, cuda_graph)


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


FIGURE5_ONLY = {
    k: p.default
    for k, p in inspect.signature(figure5).parameters.items()
    if k not in inspect.signature(table1).parameters
}  # figure5's own options, at their defaults


def reproduce(experiment, scale="quick", column=None, **options):
    """Dispatch ``l2t reproduce <experiment>``; ``options`` are ``figure5``'s, ``table1``'s or ``table2``'s, by name."""
    if experiment == "figure5":
        return figure5(scale, **options)
    if experiment not in ("table1", "table2"):
        raise ValueError(f"unknown experiment {experiment!r}; choose figure5, table1 or table2")
    given = [k for k, default in FIGURE5_ONLY.items() if options.pop(k, default) != default]
    if given:
        raise ValueError(
            f"{', '.join('--' + k.replace('_', '-') for k in given)}: options for figure5 only "
            f"(the paper's tables use Algorithm 1 exactly)"
        )
    if experiment == "table1":
        return table1(scale, column or "stl10", **options)
    methods = options.pop("methods", None)
    if column is not None or methods not in (None, ["l2t-ww"]):
        raise ValueError("table2 runs multi-source l2t-ww on stl10 only; drop --column and --methods")
    return table2(scale, **options)
