"""Command line: ``l2t train``, ``l2t evaluate``, ``l2t inspect``, ``l2t reproduce`` (also ``python -m l2t``)."""

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from .config import BN_UPDATES, CHOICES, HELP, META_ORDERS, UNREACHED, Config, flag, read_yaml, value_type
from .files import WriteError
from .methods import method
from .train import NonFiniteLoss


def _add_config_flags(p):
    p.add_argument("--config", help="YAML file of Config fields (the paper's settings are in l2t/configs/)")
    for f in fields(Config):
        text = f"{HELP.get(f.name, f.name)} (default: {f.default})" if f.name != "sources" else None
        if f.name == "sources":
            p.add_argument(
                flag(f.name),
                dest="sources",
                action="append",
                help="source network as arch:paper, arch:imagenet or arch:PATH[#sha256] (repeat for "
                "multi-source; default: resnet32:paper, the paper's ResNet32-TinyImageNet)",
            )
        elif value_type(f.name) is bool:
            p.add_argument(flag(f.name), dest=f.name, action="store_true", default=None, help=text)
        else:
            typ = value_type(f.name)
            p.add_argument(flag(f.name), dest=f.name, type=typ, default=None, choices=CHOICES.get(f.name), help=text)


def config_from_args(args):
    """Config = defaults, then the YAML file, then the flags given on the command line."""
    values = read_yaml(args.config) if args.config else {}
    values.update({f.name: getattr(args, f.name) for f in fields(Config) if getattr(args, f.name) is not None})
    cfg = Config(**values)
    m = method(cfg.method)
    for name, part in USES.items():  # a flag given for a method that never reads it would be recorded, never used
        if getattr(args, name) is not None and not m[part]:
            raise ValueError(f"{flag(name)} applies to methods that use {PARTS[part]}; {cfg.method} uses none")
    return cfg


# the settings only some methods read (a YAML file may hold them for others: only flags are refused)
USES = {"sources": "source", "beta": "fm", "at_beta": "at", "lwf_weight": "lwf"}
USES |= dict.fromkeys(["T", "meta_lr", "meta_weight_decay", "meta_every", "meta_order", "lookahead_unreached"], "what")
USES["bn_updates"] = "what"
PARTS = {
    "source": "a source network",
    "fm": "feature matching (Eq. 3)",
    "at": "attention transfer",
    "lwf": "LwF's distillation",
    "what": "meta-networks (Algorithm 1)",
}


def cmd_train(args):
    """``l2t train``: one training run; prints the result's headline numbers."""
    from .train import Trainer

    cfg = config_from_args(args)
    result = Trainer(cfg).fit(resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite)
    print(
        json.dumps(
            {k: result[k] for k in ("best_val_epoch", "best_val_acc", "test_acc", "wall_time_s", "collapsed")}, indent=1
        )
    )


def cmd_evaluate(args):
    """``l2t evaluate RUN``: test accuracy of a run's last and best-validation weights."""
    import torch

    from .inspect import load_run

    trainer = load_run(args.run, args.device)
    out = {"final_test_acc": trainer.accuracy(trainer.data["test"]), "best_val_epoch": trainer.best["epoch"]}
    best, now = trainer.best["state"], trainer.model.state_dict()
    if best is not None and all(torch.equal(v, now[k].to(v.device)) for k, v in best.items()):  # the last epoch's
        out["best_val_test_acc"] = out["final_test_acc"]
    elif best is not None:
        out["best_val_test_acc"] = trainer.accuracy(trainer.data["test"], state=best)
    print(json.dumps(out, indent=1))


def cmd_inspect(args):
    """``l2t inspect RUN``: the learned lambda per pair on validation images (Fig. 3(d)), optionally drawn."""
    from .inspect import load_run, transfer_weights

    trainer = load_run(args.run, args.device)
    weights = transfer_weights(trainer, trainer.data["val"])
    if args.plot:
        from .plots import transfer_graph

        fig = transfer_graph(weights["pairs"], weights["lambda"])
        fig.savefig(args.plot, dpi=150, bbox_inches="tight")
    summary = {"pairs": weights["pairs"], "lambda": [round(v, 4) for v in weights["lambda"]]}
    print(json.dumps(summary if not args.full else weights, indent=1))


def cmd_reproduce(args):
    """``l2t reproduce EXPERIMENT``: a paper experiment's runs, resumable (Fig. 5, Tables 1-2)."""
    from .reproduce import reproduce

    options = {
        k: getattr(args, k)
        for k in (
            "seeds",
            "methods",
            "samples",
            "out",
            "device",
            "dry_run",
            "max_iters",
            "meta_order",
            "meta_every",
            "cuda_graph",
            "lr_grid",
            "keep_model",
            "lr",
            "bn_updates",
        )
    }
    reproduce(args.experiment, scale=args.scale, column=args.column, unreached=args.lookahead_unreached, **options)


def cmd_train_source(args):
    """``l2t train-source``: a source network in the paper's checkpoint format (for Table 2)."""
    from .sources import train_source

    result = train_source(
        args.arch,
        args.dataset,
        args.out,
        seed=args.seed,
        device=args.device,
        epochs=args.epochs,
        max_iters=args.max_iters,
        val_per_class=args.val_per_class,
        overwrite=args.overwrite,
    )
    print(json.dumps({"checkpoint": args.out, "best_val_acc": result["best_val_acc"], "test_acc": result["test_acc"]}))


def main(argv=None):
    """Entry point of the ``l2t`` command."""
    parser = _parser()
    args = parser.parse_args(_joined_pairs(sys.argv[1:] if argv is None else argv))
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, NonFiniteLoss, WriteError) as e:
        print(f"l2t {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line saying what is kept, not a traceback
        print(f"l2t {args.command}: interrupted; {_kept(getattr(args, 'out', None))}", file=sys.stderr)
        return 130
    return 0


def _joined_pairs(argv):
    """``--pairs -1-0`` as ``--pairs=-1-0``: argparse would take a value that starts with '-' for a flag."""
    out = []
    for a in argv:
        if out and out[-1] == "--pairs" and a.startswith("-"):
            out[-1] = f"--pairs={a}"
        else:
            out.append(a)
    return out


def _kept(out):
    """Where an interrupted command's last checkpoint is, and how to continue from it."""
    ckpt = Path(out or "") / "checkpoint.pt"
    if out and ckpt.is_file():
        from .runfolder import checkpoint_epoch

        epoch = checkpoint_epoch(ckpt)
        if epoch is None:
            return f"{ckpt} is unreadable; start again with --overwrite"
        return f"the last checkpoint is {ckpt} (epoch {epoch}); add --resume to continue from it"
    return "no checkpoint of this command was kept" if out else "runs in progress keep their checkpoints in runs/"


def _parser():
    """The ``l2t`` command line: train, evaluate, inspect, reproduce, train-source."""
    parser = argparse.ArgumentParser(prog="l2t", description="Learning What and Where to Transfer (ICML 2019)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a target network with one method")
    _add_config_flags(p)
    p.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in an --out that holds a run: its files are moved aside, not deleted",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("evaluate", help="test accuracy of a run folder (final and best-validation weights)")
    p.add_argument("run", help="the --out folder of an `l2t train` run")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("inspect", help="lambda per pair and what-weights of an L2T run (Fig. 3d)")
    p.add_argument("run", help="the --out folder of an L2T run")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--plot", help="save the lambda graph to this image file")
    p.add_argument("--full", action="store_true", help="also print the channel weights")
    p.set_defaults(func=cmd_inspect)
    _reproduce_flags(sub.add_parser("reproduce", help="run an experiment of the paper (resumable), then summarise it"))
    _train_source_flags(
        sub.add_parser("train-source", help="train a source network (CIFAR ResNet) in the paper's checkpoint format")
    )
    return parser


def _reproduce_flags(p):
    """``l2t reproduce``'s flags."""
    p.add_argument("experiment", choices=["figure5", "table1", "table2"])
    p.add_argument(
        "--scale",
        choices=["quick", "paper"],
        default="quick",
        help="quick: the CPU-scale protocol; paper: the paper's settings, for a GPU (default: quick)",
    )
    p.add_argument("--seeds", type=int, nargs="+", help="seeds to run (default: the recipe's)")
    p.add_argument("--methods", nargs="+", help="methods by paper name (default: the experiment's)")
    p.add_argument("--samples", type=int, nargs="+", help="figure5: samples per class")
    p.add_argument("--column", help="table1: cifar100, stl10, cub200, dog, mit67 or stanford40")
    p.add_argument("--out", help="results folder (default: results/<experiment>-<scale>)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--max-iters", type=int, help="stop every run after this many iterations (recipe check)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list the runs, their configs and which are done or resume from a checkpoint; run nothing",
    )
    p.add_argument(
        "--meta-order",
        choices=list(META_ORDERS),
        default="exact",
        help="figure5: L2T runs with the first-order meta-gradient (at the exact method's lr)",
    )
    p.add_argument("--meta-every", type=int, default=1, help="figure5: L2T runs update phi every k-th iteration")
    p.add_argument(
        "--lr-grid",
        action="store_true",
        help="figure5 quick: each method at its own lr, chosen on validation (the secondary view; "
        "default: every method at lr 0.01)",
    )
    p.add_argument(
        "--lr", type=float, help="figure5: every method at this learning rate instead of the scale's (quick: 0.01)"
    )
    p.add_argument(
        "--lookahead-unreached",
        choices=list(UNREACHED),
        default="zero-grad",
        help="figure5: L2T runs' lookahead rule for parameters a step's loss does not reach "
        "(default zero-grad, the authors'; kept: results suffixed -kept)",
    )
    p.add_argument(
        "--bn-updates",
        choices=list(BN_UPDATES),
        default="once",
        help="figure5: L2T runs move BatchNorm statistics once an iteration (default) or twice, as the "
        "authors' code (results suffixed -bnauthors)",
    )
    p.add_argument(
        "--keep-model",
        action="store_true",
        help="figure5: also keep each run's best-validation target network in float16 beside its result "
        "(<run>-model.pt, about 18 MB for VGG9; L2T runs always keep phi, <run>-phi.pt)",
    )
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="replay each iteration as CUDA graphs (same computation, fewer launches; GPU only)",
    )
    p.set_defaults(func=cmd_reproduce)


def _train_source_flags(p):
    """``l2t train-source``'s flags."""
    p.add_argument("--arch", default="resnet32", choices=["resnet20", "resnet32", "resnet44", "resnet56"])
    p.add_argument("--dataset", default="tinyimagenet", help="tinyimagenet or cifar10 (as in Table 2)")
    p.add_argument("--out", required=True, help="checkpoint file to write (.pth.tar)")
    p.add_argument("--epochs", type=int, default=200, help="training epochs (default: 200)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--max-iters", type=int, help="stop after this many iterations (checks)")
    p.add_argument("--val-per-class", type=int, default=50, help="training images per class held out for validation")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (the old file is moved aside)")
    p.set_defaults(func=cmd_train_source)
