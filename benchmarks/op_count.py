"""Count the ATen operator calls of one training iteration: a measure of work that no machine changes.

A small-image step on a GPU is bound by how many kernels it launches, and each top-level ATen call (one
with no ATen call above it: what Python or the autograd engine asks the dispatcher for) launches at least
one. ``torch.profiler`` records them on the CPU; the count is the same on every machine and every run.

Same models and batch as ``step_time.py`` (VGG9 target, ResNet32 source, 15 pairs, batch 128). Prints a
table per configuration with the operators called most, and writes JSON.

    python benchmarks/op_count.py [--out benchmarks/results/op_count.json] [--label after]
"""

import argparse
import collections
import json
import platform
import subprocess
from pathlib import Path

import torch
from step_time import make_trainer
from torch.profiler import ProfilerActivity, profile

CONFIGS = [("scratch", 2), ("fm-one-to-one", 2), ("l2t-ww", 1), ("l2t-ww", 2), ("l2t-ww", 3)]


def top_level_ops(events):
    """Names of the ATen calls that have no ATen call above them."""
    names = []
    for e in events:
        if not e.name.startswith("aten::"):
            continue
        parent = e.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        if parent is None:
            names.append(e.name)
    return names


def count(method, T, batch):
    """Top-level ATen calls of one iteration (after two warm-up iterations), by operator."""
    trainer = make_trainer(method, T, "exact", 1, 0, "cpu", batch)
    x, y = next(iter(trainer.train_loader))
    for _ in range(2):
        trainer.step(x, y)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.step(x, y)
    return collections.Counter(top_level_ops(prof.events()))


def git_commit():
    """The commit of the checkout that the imported l2t comes from ('+dirty' with uncommitted changes to it)."""
    import l2t

    root = str(Path(l2t.__file__).parent)
    run = lambda *a: subprocess.run(["git", "-C", root, *a], capture_output=True, text=True).stdout.strip()
    return run("rev-parse", "--short", "HEAD") + ("+dirty" if run("status", "--porcelain", "--", ".") else "")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--label", default="", help="a name for this code version in the JSON (e.g. before, after)")
    p.add_argument("--out", default=None, help="JSON file to write")
    args = p.parse_args()
    rows = []
    for method, T in CONFIGS:
        ops = count(method, T, args.batch)
        rows.append({"method": method, "T": T, "top_level_ops": sum(ops.values()), "by_op": dict(ops.most_common())})
    scratch = rows[0]["top_level_ops"]
    print(f"{'method':<15}{'T':>3}{'top-level ATen calls':>22}{'x scratch':>11}   most called")
    for r in rows:
        r["ratio_to_scratch"] = r["top_level_ops"] / scratch
        top = ", ".join(f"{k[6:]} {v}" for k, v in list(r["by_op"].items())[:5])
        print(f"{r['method']:<15}{r['T']:>3}{r['top_level_ops']:>22}{r['ratio_to_scratch']:>11.1f}   {top}")
    if args.out:
        out = {
            "label": args.label,
            "commit": git_commit(),
            "torch": torch.__version__,
            "batch": args.batch,
            "machine": platform.platform(),
            "rows": rows,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
        print("wrote", args.out)


if __name__ == "__main__":
    main()
