"""Time one training iteration per method: scratch, fm-one-to-one, l2t-ww (T = 1, 2, 3).

Same random batch (128 images, 32x32), same models (the paper's ResNet32-TinyImageNet source when it is
under L2T_DATA, else a random ResNet32; VGG9 target; all-to-all 15 pairs for l2t-ww). Each configuration
runs in its own process (so peak memory is its own); prints a table and writes it as JSON.

    python benchmarks/step_time.py [--device cpu|cuda] [--iters 3] [--out benchmarks/results/step_time-cpu.json]
"""

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# (method, T, meta_order, meta_every, bf16, cuda_graph): the exact method, then the documented options
CONFIGS = [
    ("scratch", 2, "exact", 1, 0, 0),
    ("fm-one-to-one", 2, "exact", 1, 0, 0),
    ("l2t-ww", 1, "exact", 1, 0, 0),
    ("l2t-ww", 2, "exact", 1, 0, 0),
    ("l2t-ww", 3, "exact", 1, 0, 0),
    ("l2t-ww", 2, "first", 1, 0, 0),
    ("l2t-ww", 2, "exact", 4, 0, 0),
]
GPU_ONLY = [
    ("scratch", 2, "exact", 1, 1, 0),
    ("l2t-ww", 2, "exact", 1, 1, 0),  # bf16: CPUs without AMX are slower
    ("scratch", 2, "exact", 1, 0, 1),
    ("l2t-ww", 2, "exact", 1, 0, 1),
]  # CUDA graphs


def variant_label(row):
    """A result row's meta-gradient column: '-' for methods without one, else order, every k, bf16, graph."""
    label = (
        "-"
        if row["method"] != "l2t-ww"
        else (row["meta_order"] + ("" if row["meta_every"] == 1 else f", every {row['meta_every']}"))
    )
    return label + (", bf16" if row.get("bf16") else "") + (", graph" if row.get("cuda_graph") else "")


def make_trainer(method, T, order, every, bf16, device, batch, graph=0):
    """A Trainer on one random batch with the paper's source (else a random ResNet32) and a VGG9 target."""
    import torch

    from l2t.models import build_model, load_source
    from l2t.train import Config, Trainer

    torch.manual_seed(0)
    try:
        source = load_source(device=device)
    except (FileNotFoundError, ValueError):
        source = build_model("resnet32", 200).eval().requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, 32, 32), generator=g, dtype=torch.uint8)
    data = {k: (images, torch.arange(batch) % 10) for k in ("train", "val", "test")}
    cfg = Config(
        method=method,
        T=T,
        meta_order=order,
        meta_every=every,
        bf16=bool(bf16),
        batch_size=batch,
        device=device,
        cuda_graph=bool(graph),
        out="/tmp/l2t-bench",
    )
    return Trainer(cfg, data=data, sources=[source])


def one(method, T, order, every, bf16, graph, device, iters, warmup, batch):
    import torch

    trainer = make_trainer(method, T, order, every, bf16, device, batch, graph)
    iters = iters * every  # with meta_every = k, time whole cycles of k iterations
    warmup = max(warmup, trainer.graphed.warmup + 2) if graph else warmup  # eager warm-up, capture, one replay
    x, y = next(iter(trainer.train_loader))
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    times = []
    for i in range(warmup + iters):
        sync()
        start = time.perf_counter()
        trainer.step(x, y)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    # per-iteration cost: the median, or the mean over whole cycles when phi is updated every k-th iteration
    per_iter = statistics.median(times) if every == 1 else statistics.mean(times)
    out = {
        "method": method,
        "T": T,
        "meta_order": order,
        "meta_every": every,
        "bf16": bool(bf16),
        "cuda_graph": bool(graph),
        "median_s": per_iter,
        "times_s": times,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if trainer.device.type == "cuda":
        out["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--out")
    p.add_argument("--label", default="", help="a name for the code version in the JSON (e.g. before, after)")
    p.add_argument(
        "--only",
        choices=["exact-T2"],
        help="time only scratch and exact l2t-ww at T = 2 (the speed targets' ratio), e.g. before and after a change",
    )
    p.add_argument("--one", nargs=6, metavar=("METHOD", "T", "ORDER", "EVERY", "BF16", "GRAPH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        method, T, order, every, bf16, graph = args.one
        print(
            json.dumps(
                one(
                    method,
                    int(T),
                    order,
                    int(every),
                    int(bf16),
                    int(graph),
                    args.device,
                    args.iters,
                    args.warmup,
                    args.batch,
                )
            )
        )
        return
    import torch

    rows = []
    configs = CONFIGS + (GPU_ONLY if args.device.startswith("cuda") else [])
    if args.only:
        configs = [c for c in configs if c[0] == "scratch" or c[:4] == ("l2t-ww", 2, "exact", 1)]
    for method, T, order, every, bf16, graph in configs:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            method,
            str(T),
            order,
            str(every),
            str(bf16),
            str(graph),
            "--device",
            args.device,
            "--iters",
            str(args.iters),
            "--warmup",
            str(args.warmup),
            "--batch",
            str(args.batch),
        ]
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1]))
        print(
            f"  measured {method} T={T} {order} every={every} bf16={bf16} graph={graph}: {rows[-1]['median_s']:.3f} s",
            file=sys.stderr,
            flush=True,
        )
    base = {(r["bf16"], r["cuda_graph"]): r["median_s"] for r in rows if r["method"] == "scratch"}  # scratch, same mode
    print(f"{'method':<16}{'T':>3}{'meta-gradient':>22}{'s/iter':>10}{'x scratch':>11}{'peak RSS MiB':>14}")
    for r in rows:
        r["ratio_to_scratch"] = r["median_s"] / base[(r["bf16"], r["cuda_graph"])]
        print(
            f"{r['method']:<16}{r['T'] if r['method'] == 'l2t-ww' else '-':>3}{variant_label(r):>22}"
            f"{r['median_s']:>10.3f}{r['ratio_to_scratch']:>11.2f}{r['peak_rss_mib']:>14.0f}"
            + (f"  cuda {r['cuda_max_allocated_mib']:.0f} MiB" if "cuda_max_allocated_mib" in r else "")
        )
    device = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    report = {
        "label": args.label,
        "date": time.strftime("%Y-%m-%d"),
        "device": device,
        "machine": platform.platform(),
        "torch": torch.__version__,
        "batch": args.batch,
        "iters": args.iters,
        "warmup": args.warmup,
        "rows": rows,
    }
    out = Path(args.out or f"benchmarks/results/step_time-{args.device.split(':')[0]}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
