import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "L2T_DATA" not in os.environ and SHARED.is_dir():
    os.environ["L2T_DATA"] = str(SHARED)

torch.set_num_threads(min(2, torch.get_num_threads()))


def have_data(*parts):
    from l2t.data import data_root

    return (data_root().joinpath(*parts)).exists()


needs_cifar10 = pytest.mark.skipif(not have_data("cifar10", "test"), reason="CIFAR-10 not under L2T_DATA")
needs_source = pytest.mark.skipif(
    not have_data("sources", "tinyimagenet-200-resnet32.pth.tar"),
    reason="the paper's source checkpoint is not under L2T_DATA",
)


def metrics(run_dir):
    """A run's metrics rows without their wall times (the only field that may differ between equal runs)."""
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    elapsed = [r["elapsed_s"] for r in rows]
    assert all(0 < a <= b for a, b in zip(elapsed, elapsed[1:] + [float("inf")]))  # wall time grows, row by row
    return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows]


def book_script(name):
    """A script of book/ (``check_html``, ``student_notebooks``) imported as a module."""
    path = Path(__file__).resolve().parents[1] / "book" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fig5(config):
    """A stored result's config as the CPU-scale Figure 5 recipe plans it.

    With these fields (method, N, seed, lr...).
    """
    from dataclasses import asdict

    from l2t.reproduce import figure5_planned

    return asdict(figure5_planned(config))
