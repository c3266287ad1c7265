"""CUDA correctness: one L2T-ww iteration (Alg. 1 lines 4-8) on the GPU equals the same iteration on the CPU.

Both run in float64 from the same weights, batch and augmentation: the paper's ResNet32 source when
it is under L2T_DATA (else a random ResNet32), VGG9 target, all-to-all pairs, T = 2, batch 128. Prints
the relative errors of the target's weights after the step and of the meta-gradient, and writes JSON.
It then measures how far float32 (with and without cuDNN's TF32), and ``--bf16``, land from float64.

    python benchmarks/cuda_check.py [--out benchmarks/results/cuda_check.json]
    python benchmarks/cuda_check.py --perturbation [--batch 64]   # CPU only: why CUDA and the CPU differ

``--perturbation`` needs no GPU. In float64 on the CPU, it moves every input by one float32 rounding step
(2^-24, relative, random sign) and reports how far the weights and the meta-gradient move, beside the
batch's cross-entropy before and after one plain SGD step at lr 0.1 and 0.01 (is the lookahead stable?).
"""

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from l2t import data as D
from l2t.models import build_model, load_source
from l2t.train import Config, Trainer


def one_step(device, images, labels, source, mode="fp64", lr=0.1, perturb=0.0):
    """Target weights after one L2T-ww iteration and the meta-gradient of phi, both as flat CPU float64.

    Every run starts from the same float32 initialisation; ``mode`` is fp64 (everything converted to
    float64), fp32, fp32-no-tf32 (cuDNN's TF32 convolutions off) or bf16 (``Config.bf16``).
    """
    torch.backends.cudnn.allow_tf32 = mode != "fp32-no-tf32"
    torch.manual_seed(0)
    cfg = Config(
        method="l2t-ww", batch_size=len(labels), device=device, lr=lr, bf16=mode == "bf16", out="/tmp/l2t-cuda-check"
    )
    data = {k: (images, labels) for k in ("train", "val", "test")}
    trainer = Trainer(cfg, data=data, sources=[copy.deepcopy(source)])
    x, y = next(iter(trainer.train_loader))
    if mode == "fp64":
        for module in (trainer.model, trainer.regressors, trainer.what, trainer.where, *trainer.sources):
            module.double()
        x = x.double()
    if perturb:  # one rounding step of the float32 input, up or down at random
        signs = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(2)).to(x) * 2 - 1
        x = x * (1 + perturb * signs)
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    trainer.step(x, y)
    sync()
    seconds = time.perf_counter() - start
    theta = torch.cat([p.detach().flatten().double().cpu() for p in trainer.model.parameters()])
    meta = torch.cat(
        [p.grad.flatten().double().cpu() for g in trainer.meta_optimizer.param_groups for p in g["params"]]
    )
    torch.backends.cudnn.allow_tf32 = True
    return theta, meta, seconds


def batch_of_images(n):
    """``n`` CIFAR-10 (else STL-10) training images under L2T_DATA, about n/10 per class; else random images."""
    for name in ("cifar10", "stl10"):
        try:
            dataset = D.load_dataset(name, download=False)
        except FileNotFoundError:
            continue
        indices = D.per_class_subset(dataset.targets, -(-n // 10), seed=0)[:n]
        images, labels = D.decode(dataset, indices)
        return images, labels, f"{name}: {n} training images, {-(-n // 10)} per class, from {D.data_root()}"
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8), torch.arange(n) % 10, "random"


def rel(a, b):
    """Relative difference |a - b| / |b| of two flat tensors."""
    return float((a - b).norm() / b.norm())


def write_report(report, out):
    """Print the report and write it as JSON to ``out``."""
    print(json.dumps(report, indent=1))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=1))


def ce_step(images, labels, lr):
    """The batch's cross-entropy (train-mode BatchNorm, as in the lookahead) before and after one SGD step on it."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    cfg = Config(method="scratch", batch_size=len(labels), device="cpu", lr=lr, out="/tmp/l2t-cuda-check")
    trainer = Trainer(cfg, data={k: (images, labels) for k in ("train", "val", "test")}, sources=[])
    x, y = next(iter(trainer.train_loader))
    with torch.no_grad():
        before = float(F.cross_entropy(trainer.model(x)[0], y))
    trainer.step(x, y)
    with torch.no_grad():
        return before, float(F.cross_entropy(trainer.model(x)[0], y))


def perturbation(source, source_name, batch, out):
    """CPU, float64: the meta-gradient's sensitivity to a one-rounding-step change of the float32 inputs."""
    images, labels, images_name = batch_of_images(batch)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "device": "cpu",
        "torch": torch.__version__,
        "source": source_name,
        "images": images_name,
        "batch": batch,
        "perturbation": 2.0**-24,
    }
    for lr in (0.1, 0.01):
        ref = one_step("cpu", images, labels, source, "fp64", lr)
        moved = one_step("cpu", images, labels, source, "fp64", lr, perturb=2.0**-24)
        before, after = ce_step(images, labels, lr)
        report[f"lr={lr}"] = {
            "theta_rel_change": rel(moved[0], ref[0]),
            "meta_gradient_rel_change": rel(moved[1], ref[1]),
            "ce_before_step": before,
            "ce_after_step": after,
        }
    write_report(report, out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument(
        "--out",
        help="JSON to write (default: benchmarks/results/cuda_check.json, or "
        "perturbation-cpu.json with --perturbation)",
    )
    p.add_argument("--perturbation", action="store_true", help="CPU only: sensitivity to one input rounding step")
    args = p.parse_args()
    try:
        source = load_source()
        source_name = "paper ResNet32-TinyImageNet"
    except (FileNotFoundError, ValueError):
        torch.manual_seed(1)
        source, source_name = build_model("resnet32", 200).eval().requires_grad_(False), "random ResNet32"
    if args.perturbation:
        return perturbation(source, source_name, args.batch, args.out or "benchmarks/results/perturbation-cpu.json")
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check compares CUDA with the CPU (--perturbation runs on the CPU)")
    args.out = args.out or "benchmarks/results/cuda_check.json"
    images, labels, images_name = batch_of_images(args.batch)
    cpu = one_step("cpu", images, labels, source)
    gpu = one_step("cuda", images, labels, source)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "source": source_name,
        "images": images_name,
        "batch": args.batch,
        "cuda_vs_cpu_fp64": {
            "theta_rel_error": rel(gpu[0], cpu[0]),
            "meta_gradient_rel_error": rel(gpu[1], cpu[1]),
            "meta_gradient_norm": float(cpu[1].norm()),
            "cpu_step_s": cpu[2],
            "cuda_step_s": gpu[2],
        },
        "precision_vs_cuda_fp64": {},
    }
    # how far the lower precisions land from float64, at the paper's lr and at the CPU-scale lr
    for lr in (0.1, 0.01):
        ref = gpu if lr == 0.1 else one_step("cuda", images, labels, source, "fp64", lr)
        row = {}
        for mode in ("fp32", "fp32-no-tf32", "bf16"):
            out = one_step("cuda", images, labels, source, mode, lr)
            row[mode] = {"theta_rel_error": rel(out[0], ref[0]), "meta_gradient_rel_error": rel(out[1], ref[1])}
        report["precision_vs_cuda_fp64"][f"lr={lr}"] = row
    write_report(report, args.out)


if __name__ == "__main__":
    main()
