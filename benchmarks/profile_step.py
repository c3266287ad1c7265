"""Where one L2T-ww iteration's time goes: torch.profiler over a few iterations after warm-up.

Prints the operators with the most device (or CPU) time, the number of kernel launches per iteration and
the wall time per iteration, for the benchmark's configuration (batch 128, VGG9, 15 pairs, T = 2).

    python benchmarks/profile_step.py [--device cuda] [--method l2t-ww] [--T 2] [--iters 3]
"""

import argparse
import time

import torch
from step_time import make_trainer
from torch.profiler import ProfilerActivity, profile


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--method", default="l2t-ww")
    p.add_argument("--T", type=int, default=2)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    args = p.parse_args()
    trainer = make_trainer(args.method, args.T, "exact", 1, 0, args.device, args.batch)
    x, y = next(iter(trainer.train_loader))
    cuda = trainer.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(3):
        trainer.step(x, y)
    sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        for _ in range(args.iters):
            trainer.step(x, y)
        sync()
    wall = (time.perf_counter() - start) / args.iters
    events = prof.key_averages()
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(events.table(sort_by=sort, row_limit=15))
    if cuda:
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        busy = sum(e.self_device_time_total for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
        busy = busy / 1e6 / args.iters
        print(
            f"{args.method} T={args.T}: {wall * 1e3:.1f} ms per iteration (under the profiler), "
            f"{len(kernels) / args.iters:.0f} kernels per iteration, GPU busy {busy * 1e3:.1f} ms "
            f"({100 * busy / wall:.0f} % of wall)"
        )
    else:
        print(f"{args.method} T={args.T}: {wall:.2f} s per iteration (under the profiler)")


if __name__ == "__main__":
    main()
