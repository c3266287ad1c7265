"""The notebooks' scale switch: quick by default in every notebook, a clear error for a GPU scale without a GPU."""
import json
from pathlib import Path

import pytest
import torch

from l2t.teach.scale import SCALES, device_for

ROOT = Path(__file__).resolve().parents[1]


def test_quick_runs_on_the_cpu_and_a_gpu_scale_without_cuda_says_what_to_do(monkeypatch):
    assert device_for("quick") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for scale in ("gpu", "paper"):
        with pytest.raises(RuntimeError, match="needs a CUDA GPU.*Runtime > Change runtime type > GPU"):
            device_for(scale)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_for("gpu") == device_for("paper") == "cuda"
    with pytest.raises(ValueError, match="'fast' is not one of 'quick', 'gpu', 'paper'"):
        device_for("fast")


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_notebook_starts_at_quick_and_says_what_each_scale_costs(path):
    cells = [("".join(c["source"])) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    [switch] = [c for c in cells if "SCALE = " in c and "device_for(SCALE)" in c]
    assert '\nSCALE = "quick"' in switch and "torch.cuda.is_available" not in switch   # the reader chooses
    assert all(f'"{s}"' in switch for s in SCALES) and "min" in switch               # each scale and its time
    assert not any("torch.cuda.is_available()" in c and "SCALE" in c for c in cells)
