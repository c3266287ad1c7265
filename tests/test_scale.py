"""The notebooks' scale switch: quick by default in every notebook, a clear error for a GPU scale without a GPU."""

import json
import re
from pathlib import Path

import pytest
import torch

from l2t.teach.scale import (
    CHAPTER_RUNS,
    COLAB_FACTOR,
    SCALES,
    chapter_minutes,
    colab_minutes,
    device_for,
    gpu_seconds_per_iteration,
    iterations,
    settle_table,
)

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


def _code_and_switch(path):
    """A notebook's code cells, and the one that sets SCALE."""
    cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    [switch] = [c for c in cells if "SCALE = " in c and "device_for(SCALE)" in c]
    return cells, switch


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_notebook_starts_at_quick_and_says_what_each_scale_costs(path):
    cells, switch = _code_and_switch(path)
    assert '\nSCALE = "quick"' in switch and "torch.cuda.is_available" not in switch  # the reader chooses
    assert all(f'"{s}"' in switch for s in SCALES) and "min" in switch  # each scale and its time
    assert not any("torch.cuda.is_available()" in c and "SCALE" in c for c in cells)


def _result(folder, method, n, seed, acc, device, seconds_per_iteration=0.1):
    """A made-up result file of the Figure 5 protocol."""
    from conftest import fig5

    k = iterations(n)
    config = {"method": method, "samples_per_class": n, "seed": seed, "lr": 0.01, "lookahead_unreached": "zero-grad"}
    r = {
        "config": fig5(config),
        "test_acc": acc,
        "collapsed": False,
        "device": device,
        "iterations": k,
        "wall_time_s": seconds_per_iteration * k,
    }
    (folder / f"{method}-n{n}-s{seed}-lr0.01.json").write_text(json.dumps(r))


def test_iterations_are_the_protocols_and_the_committed_runs():
    assert [iterations(n) for n in (10, 25, 50, 100)] == [200, 400, 800, 1600]  # protocol.py's docstring
    for path in sorted((ROOT / "results" / "figure5-quick").glob("*-n*-s*-lr*.json")):
        r = json.loads(path.read_text())
        if r.get("iterations") and r.get("epochs_run") == 200:
            assert r["iterations"] == iterations(r["config"]["samples_per_class"]), path.name


def test_gpu_times_are_the_slowest_measured_and_colab_is_the_stated_factor(tmp_path):
    _result(tmp_path, "l2t-ww", 10, 0, 30.0, "NVIDIA H100", 0.2)
    _result(tmp_path, "l2t-ww", 10, 1, 30.0, "NVIDIA H100", 0.5)
    _result(tmp_path, "l2t-ww", 10, 2, 30.0, "cpu (x86_64, 2 threads)", 9.0)  # a CPU run: not a GPU time
    _result(tmp_path, "fm-all-to-all", 10, 0, 30.0, "NVIDIA H100", 0.05)
    assert gpu_seconds_per_iteration("l2t-ww", tmp_path) == pytest.approx(0.5)
    assert gpu_seconds_per_iteration("l2t-w-one-to-one", tmp_path) == pytest.approx(0.5)  # a meta-step: L2T-ww's
    assert gpu_seconds_per_iteration("scratch", tmp_path) == pytest.approx(0.05)  # none: a baseline's
    minutes = colab_minutes([("l2t-ww", 200), ("scratch", 400)], tmp_path)
    assert minutes == pytest.approx(COLAB_FACTOR * (0.5 * 200 + 0.05 * 400) / 60)
    with pytest.raises(ValueError, match="no committed GPU run"):
        gpu_seconds_per_iteration("scratch", tmp_path / "empty")


def test_the_settle_table_gives_the_t_interval_half_width_and_the_hours(tmp_path):
    from scipy import stats

    for seed, (a, b) in enumerate([(31.0, 30.0), (33.0, 31.0), (30.0, 30.0)]):
        _result(tmp_path, "l2t-ww", 10, seed, a, "NVIDIA H100", 0.5)
        _result(tmp_path, "fm-all-to-all", 10, seed, b, "NVIDIA H100", 0.1)
    row = settle_table(tmp_path, ks=(5,)).splitlines()[2]
    sd = 1.0  # differences 1, 2, 0
    hours = (0.5 + 0.1) * iterations(10) * 5 / 3600
    assert row == (
        f"| 10 | 3 | {sd:.2f} | ±{stats.t.ppf(0.975, 4) * sd / 5**0.5:.2f} | {hours:.1f} h | "
        f"{COLAB_FACTOR * hours:.1f} h |"
    )
    assert "No N has two paired seeds" in settle_table(tmp_path, a="at")


def _scale_lines(path):
    """scale -> its line of the notebook's SCALE comment."""
    _, switch = _code_and_switch(path)
    return {s: line for line in switch.splitlines() for s in SCALES if line.startswith(f'#   "{s}"')}


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_no_chapter_promises_a_gpu_time_below_the_books_own_measurements(path):
    """A stated GPU time is at least ``chapter_minutes``: the committed runs' GPU times times the Colab factor."""
    chapter = path.stem[:2]
    for scale, line in _scale_lines(path).items():
        minutes = re.search(r"about (\d+) minutes", line)
        if (chapter, scale) in CHAPTER_RUNS:
            estimate = chapter_minutes(chapter, scale)
            assert minutes or "hours" in line, f"{path.name}, {scale}: no time stated ({line})"
            assert not minutes or int(minutes.group(1)) >= round(estimate), (
                f"{path.name}, {scale}: says {minutes.group(1)} minutes, the measured times give {estimate:.0f}"
            )
        elif scale != "quick":  # a GPU scale that trains nothing long: no minutes to check, so none promised
            assert not minutes or int(minutes.group(1)) <= 2, f"{path.name}, {scale}: add it to CHAPTER_RUNS"
