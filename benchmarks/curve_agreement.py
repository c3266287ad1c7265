"""Two versions of the library, one short real run each: do they give the same loss curve?

Runs ``l2t train`` (l2t-ww, CIFAR-10, 10 images per class, lr 0.01, seed 0, a few iterations on the CPU)
once with this checkout's library and once with another checkout's (``--before``, e.g. a ``git worktree``
of the previous commit), then compares the per-epoch training loss and lambda. A change that keeps the
mathematics must agree to float32 rounding; a changed algorithm would not.

Float32 rounding is not small here: the meta-gradient amplifies it (the book's conditioning study), and
Adam's first steps move phi by about lr * sign(gradient). So the script also runs a control: the *same*
``--before`` library on one thread instead of two, which changes only the order of float32 sums. The change
passes when its differences are of the control's size.

    python benchmarks/curve_agreement.py --before /tmp/before [--epochs 6]
        [--out benchmarks/results/curve_agreement-cpu.json]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def run(library, out, epochs, threads=None):
    """Per-epoch metrics of one short run with the library found at ``library``."""
    cmd = [
        sys.executable,
        "-m",
        "l2t",
        "train",
        "--method",
        "l2t-ww",
        "--samples-per-class",
        "10",
        "--val-per-class",
        "5",
        "--epochs",
        str(epochs),
        "--eval-every",
        str(epochs),
        "--lr",
        "0.01",
        "--seed",
        "0",
        "--device",
        "cpu",
        "--no-progress",
        "--out",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(library), **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    subprocess.run(cmd, check=True, env=env, cwd=library, stdout=subprocess.DEVNULL)
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="root of the other checkout (its l2t/ is imported)")
    p.add_argument("--epochs", type=int, default=6, help="epochs (= iterations at 10 images per class)")
    p.add_argument("--out", default=None, help="JSON file to write")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        before = run(Path(args.before).resolve(), Path(tmp) / "before", args.epochs)
        after = run(HERE, Path(tmp) / "after", args.epochs)
        control = run(Path(args.before).resolve(), Path(tmp) / "control", args.epochs, threads=1)
    report = {}
    for name, other in (("after", after), ("control: before on 1 thread", control)):
        rows, worst_loss, worst_lambda = [], 0.0, 0.0
        print(name)
        for b, a in zip(before, other):
            loss = abs(a["train_loss"] - b["train_loss"]) / abs(b["train_loss"])
            lam = max(abs(x - y) for x, y in zip(a["lambda"], b["lambda"]))
            worst_loss, worst_lambda = max(worst_loss, loss), max(worst_lambda, lam)
            rows.append(
                {
                    "epoch": b["epoch"],
                    "loss_before": b["train_loss"],
                    "loss": a["train_loss"],
                    "loss_relative_difference": loss,
                    "lambda_max_abs_difference": lam,
                }
            )
            print(
                f"  epoch {b['epoch']}: loss {b['train_loss']:.6f} vs {a['train_loss']:.6f} (relative {loss:.1e}), "
                f"max |lambda difference| {lam:.1e}"
            )
        print(f"  worst: loss {worst_loss:.1e} relative, lambda {worst_lambda:.1e}")
        report[name] = {"rows": rows, "worst_loss_relative": worst_loss, "worst_lambda_abs": worst_lambda}
    if args.out:
        commit = lambda root: subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        Path(args.out).write_text(
            json.dumps(
                {"before": commit(args.before), "after": commit(HERE), "epochs": args.epochs, **report}, indent=1
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
