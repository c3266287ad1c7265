"""Count the floating-point work of one training iteration per method (torch.utils.flop_counter).

The same configurations, batch and models as ``step_time.py``. FLOPs do not depend on the machine, so the
ratio to ``scratch`` printed here is the floor any implementation of a method must pay in arithmetic;
``step_time.py``'s ratio of *times* can only come close to it by running the extra work as efficiently as
plain training runs. Counts convolutions and matrix products (forward, backward and double backward).

    python benchmarks/flops.py [--batch 128] [--out benchmarks/results/flops.json]
"""

import argparse
import json
import time
from pathlib import Path

import torch
from step_time import CONFIGS, make_trainer, variant_label
from torch.utils.flop_counter import FlopCounterMode


def count(method, T, order, every, batch):
    """FLOPs of one iteration (the mean over a cycle of ``every`` iterations), with the source's share."""
    trainer = make_trainer(method, T, order, every, 0, "cpu", batch)
    x, y = next(iter(trainer.train_loader))
    with FlopCounterMode(display=False) as counter:
        for _ in range(every):
            trainer.step(x, y)
    name = type(trainer.sources[0]).__name__ if trainer.sources else None
    source = sum(counter.get_flop_counts().get(name, {}).values())
    return {
        "method": method,
        "T": T,
        "meta_order": order,
        "meta_every": every,
        "gflop": counter.get_total_flops() / every / 1e9,
        "source_gflop": source / every / 1e9,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--out", default="benchmarks/results/flops.json")
    args = p.parse_args()
    rows = []
    for method, T, order, every, _, _ in CONFIGS:
        rows.append(count(method, T, order, every, args.batch))
    scratch = next(r["gflop"] for r in rows if r["method"] == "scratch")
    print(f"{'method':<16}{'T':>3}{'meta-gradient':>22}{'GFLOP':>10}{'x scratch':>11}{'source GFLOP':>14}")
    for r in rows:
        r["ratio_to_scratch"] = r["gflop"] / scratch
        print(
            f"{r['method']:<16}{r['T'] if r['method'] == 'l2t-ww' else '-':>3}{variant_label(r):>22}"
            f"{r['gflop']:>10.1f}{r['ratio_to_scratch']:>11.2f}{r['source_gflop']:>14.1f}"
        )
    report = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "batch": args.batch, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
