"""The one-shot GPU check: the CUDA tests, eager and graphed step times with peak memory, one timed epoch of
each chapter's ``gpu`` scale. Everything goes into one JSON; run it first whenever a GPU is lent.

    benchmarks/gpu_check.sh [OUT.json]                      # on a GPU: about 5-8 minutes on one H100
    python benchmarks/gpu_check.py --device cpu --quick     # the script itself, on the CPU parts only

Step times: one iteration of scratch and of exact L2T-ww (T = 2, 15 pairs, batch 128), eager and replayed as
CUDA graphs (``--cuda-graph``), each in its own process (``benchmarks/step_time.py``), so that its peak memory
is its own. Chapter epochs: each chapter's ``gpu`` setting (the CPU-scale Figure 5 protocol's recipe at its
N) on images of CIFAR-10's shape, so the timing needs no dataset: ``EPOCHS`` epochs (one validation) and the
10,000-image test pass, then the time per epoch and the chapter's 200-epoch estimate.
"""

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from l2t.models import build_model, load_source  # noqa: E402
from l2t.protocol import figure5_base  # noqa: E402
from l2t.train import Trainer  # noqa: E402

EPOCHS = 10  # the protocol validates every 10th epoch: ten epochs hold one validation
CHAPTERS = {  # chapter -> (its gpu scale's runs as (method, N, sources), how many epochs it trains)
    "06 full L2T-ww": ([("l2t-ww", 25, 1)], 200),
    "07 baselines": (
        [(m, 10, 1) for m in ("scratch", "lwf", "at", "fm-one-to-one", "l2t-w-one-to-one", "l2t-ww")],
        200,
    ),
    "09 two sources": ([("l2t-ww", 10, 2)], 200),
    "10 looking inside": ([("l2t-ww", 25, 1)], 200),
}


def cuda_tests():
    """pytest on the tests that need CUDA: their counts of passed, failed and skipped."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_cudagraph.py",
        "tests/test_trainer.py",
        "-k",
        "cuda or graph",
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True).stdout
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error)", out.splitlines()[-1])}
    return {"command": " ".join(cmd[1:]), "counts": counts, "tail": out.splitlines()[-5:]}


def step_times(device, iters):
    """Seconds per iteration and peak memory of scratch and exact L2T-ww, eager and (on CUDA) graphed."""
    rows = []
    for method in ("scratch", "l2t-ww"):
        for graph in (0, 1) if device == "cuda" else (0,):
            cmd = [
                sys.executable,
                "benchmarks/step_time.py",
                "--one",
                method,
                "2",
                "exact",
                "1",
                "0",
                str(graph),
                "--device",
                device,
                "--iters",
                str(iters),
                "--warmup",
                "3",
            ]
            out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.splitlines()[-1]))
    return rows


def shaped_data(n, g):
    """Random uint8 images of CIFAR-10's shape: N per class for training, 500 to validate, 10,000 to test."""
    make = lambda k: (torch.randint(0, 256, (k, 3, 32, 32), generator=g, dtype=torch.uint8), torch.arange(k) % 10)
    return {"train": make(10 * n), "val": make(500), "test": make(10_000)}


def chapter_epochs(device, epochs):
    """Each chapter's gpu-scale runs for ``epochs`` epochs: seconds per epoch, and its whole run's estimate."""
    try:
        paper = load_source(device="cpu")
    except (FileNotFoundError, ValueError):  # no data root here: a random source of the same shape
        paper = build_model("resnet32", 200).eval().requires_grad_(False)
    second = build_model("resnet20", 10).eval().requires_grad_(False)
    rows = []
    for chapter, (runs, total_epochs) in CHAPTERS.items():
        training = final = 0.0
        for method, n, k in runs:
            cfg = replace(
                figure5_base("quick"),
                method=method,
                samples_per_class=n,
                epochs=epochs,
                device=device,
                sources=["resnet32:paper", "resnet20:random"][:k],
                out=tempfile.mkdtemp(),
            )
            trainer = Trainer(cfg, data=shaped_data(n, torch.Generator().manual_seed(0)), sources=[paper, second][:k])
            start = time.perf_counter()
            result = trainer.fit(progress=False)
            shutil.rmtree(cfg.out)  # a timing run's checkpoint is not kept
            training += result["curves"][-1]["elapsed_s"]  # the epochs, validation included
            final += time.perf_counter() - start - result["curves"][-1]["elapsed_s"]  # the test pass, once a run
        per_epoch = training / epochs
        rows.append(
            {
                "chapter": chapter,
                "runs": len(runs),
                "epochs_timed": epochs,
                "s_per_epoch": per_epoch,
                "final_evaluation_s": final,
                "estimate_min": (per_epoch * total_epochs + final) / 60,
            }
        )
        print(
            f"  {chapter}: {per_epoch:.2f} s per epoch, ~{rows[-1]['estimate_min']:.1f} min for {total_epochs} epochs",
            file=sys.stderr,
            flush=True,
        )
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--quick", action="store_true", help="a few iterations and one epoch each (checks the script)")
    p.add_argument("--out", default="benchmarks/results/gpu_check.json")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU visible; use --device cpu --quick to check the script itself")
    out = Path(args.out)
    if out.exists() and not out.is_file():
        sys.exit(f"gpu_check: --out {out} is not a file")
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # fp32, TF32 off, as the runs
    start = time.time()
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "device": torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"cpu ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "quick": args.quick,
    }
    report["cuda_tests"] = cuda_tests()
    print("CUDA tests:", report["cuda_tests"]["counts"], file=sys.stderr, flush=True)
    report["step_times"] = step_times(args.device, 3 if args.quick else 20)
    for r in report["step_times"]:
        print(
            f"  {r['method']:8s} graph={r['cuda_graph']!s:5s} {1e3 * r['median_s']:8.1f} ms/iteration, "
            f"peak {r.get('cuda_max_allocated_mib', r['peak_rss_mib']):.0f} MiB",
            file=sys.stderr,
            flush=True,
        )
    report["chapter_epochs"] = chapter_epochs(args.device, 1 if args.quick else EPOCHS)
    report["wall_s"] = time.time() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out} ({report['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
