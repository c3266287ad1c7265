"""CUDA graphs (``--cuda-graph``): do replayed iterations land where eager ones do, within the GPU's own noise?

Three trainers start from the same weights and train on the same batch: two eager, one with CUDA graphs
(three eager warm-up iterations, then capture and replays). Per iteration it prints how far the loss of
the second eager trainer (the noise floor: cuDNN's kernel choice and atomics) and of the graphed one land
from the first, relative, and at the end the largest relative difference of the target's weights (and of
phi for L2T-ww). Once with the default settings (TF32 convolutions, cudnn.benchmark), once deterministic
(no TF32, cudnn.deterministic, no benchmark), where eager runs agree exactly.

    python benchmarks/graph_agreement.py [--iters 8] [--lr 0.01] [--out graph_agreement.json]
"""

import argparse
import json

import torch

from l2t.models import build_model
from l2t.train import Config, Trainer


def trainers(method, lr, batch=32):
    """Two eager trainers and a graphed one, equal at the start (random data, random ResNet20 source)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (batch, 3, 32, 32), generator=g, dtype=torch.uint8)
    data = {k: (x, torch.arange(batch) % 10) for k in ("train", "val", "test")}
    out = []
    for name, graph in (("eager", False), ("eager2", False), ("graph", True)):
        torch.manual_seed(123)
        source = build_model("resnet20", 10).eval().requires_grad_(False)
        cfg = Config(
            method=method,
            sources=["resnet20:random"],
            batch_size=batch,
            lr=lr,
            device="cuda",
            cuda_graph=graph,
            out=f"/tmp/graph-agreement/{name}",
        )
        out.append(Trainer(cfg, data=data, sources=[source]))
    return out


def rel(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))


def compare(method, deterministic, iters, lr):
    ts = trainers(method, lr)
    cudnn = torch.backends.cudnn
    cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32 = not deterministic, deterministic, not deterministic
    torch.backends.cuda.matmul.allow_tf32 = False
    x, y = next(iter(ts[0].train_loader))
    rows = []
    for i in range(iters):
        losses = [t.step(x, y)[0] for t in ts]
        rows.append(
            {
                "iteration": i,
                "replayed": i >= ts[2].graphed.warmup,
                "eager2_vs_eager": rel(losses[1], losses[0]),
                "graph_vs_eager": rel(losses[2], losses[0]),
            }
        )
    params = lambda t: torch.cat([p.detach().flatten() for p in t.model.parameters()])
    end = {"theta_eager2": rel(params(ts[1]), params(ts[0])), "theta_graph": rel(params(ts[2]), params(ts[0]))}
    if ts[0].what is not None:
        phi = lambda t: torch.cat([p.detach().flatten() for p in [*t.what.parameters(), *t.where.parameters()]])
        end.update(phi_eager2=rel(phi(ts[1]), phi(ts[0])), phi_graph=rel(phi(ts[2]), phi(ts[0])))
    return {"method": method, "deterministic": deterministic, "lr": lr, "iterations": rows, "end": end}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--out", default="graph_agreement.json")
    args = p.parse_args()
    report = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "runs": []}
    for method in ("scratch", "l2t-ww"):
        for deterministic in (False, True):
            r = compare(method, deterministic, args.iters, args.lr)
            report["runs"].append(r)
            print(
                f"{method:8s} {'deterministic' if deterministic else 'default':13s} relative loss difference per "
                f"iteration, eager2 | graph (replays from iteration 3):"
            )
            print(
                "   "
                + "  ".join(f"{row['eager2_vs_eager']:.1e}|{row['graph_vs_eager']:.1e}" for row in r["iterations"])
            )
            print("   at the end: " + ", ".join(f"{k} {v:.1e}" for k, v in r["end"].items()))
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
