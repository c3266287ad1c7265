"""l2t.teach.partial: a Figure 5 results folder read while it is still being filled."""

import json
from pathlib import Path

from conftest import fig5

from l2t.reproduce import summarize_figure5
from l2t.teach.partial import figure5_status


def write(folder, method, n, seed, lr, acc, max_iters=None):
    r = {
        "config": fig5({"method": method, "samples_per_class": n, "seed": seed, "lr": lr, "max_iters": max_iters}),
        "test_acc": acc,
        "best_val_acc": acc,
        "collapsed": False,
    }
    (folder / f"{method}-n{n}-s{seed}-lr{lr:g}.json").write_text(json.dumps(r))


def test_status_counts_every_method_at_one_lr_and_separates_the_rest(tmp_path):
    for lr, acc in ((0.1, 17.0), (0.03, 30.0), (0.01, 29.0)):
        write(tmp_path, "scratch", 10, 0, lr, acc)
    write(tmp_path, "scratch", 10, 1, 0.01, 28.0)
    write(tmp_path, "lwf", 10, 0, 0.1, 20.0)  # another lr: not counted
    write(tmp_path, "at", 10, 0, 0.01, 20.0, max_iters=3)  # a recipe check: ignored
    r = {
        "config": fig5({"method": "scratch", "samples_per_class": 25, "seed": 0, "lr": 0.01, "meta_every": 4}),
        "test_acc": 35.0,
        "best_val_acc": 35.0,
        "collapsed": False,
    }
    (tmp_path / "scratch-n25-s0-lr0.01-every4.json").write_text(json.dumps(r))  # an option, not the planned run
    (tmp_path / "lr_choice.json").write_text(json.dumps({"scratch": {"chosen_lr": 0.03}}))
    status = figure5_status(tmp_path)
    assert sorted((r["config"]["seed"], r["config"]["lr"]) for r in status["counted"]) == [(0, 0.01), (1, 0.01)]
    assert [r["config"]["samples_per_class"] for r in status["extra"]] == [25]  # the option: extra, not counted
    assert sorted(r["config"]["lr"] for r in status["other_lr"]) == [0.03, 0.1, 0.1]
    assert ("scratch", 10, 2) in status["missing"] and ("scratch", 10, 0) not in status["missing"]
    assert ("scratch", 25, 0) in status["missing"]
    assert len(status["planned"]) == 5 * (3 + 3 + 2 + 2)

    before = sorted(p.name for p in tmp_path.iterdir())
    summary = summarize_figure5(tmp_path, verbose=False, out=tmp_path / "elsewhere")  # reads here, writes there
    assert summary["scratch"][10]["test_acc"] == [29.0, 28.0] and summary["scratch-every4"][25]["test_acc"] == [35.0]
    assert "lwf" not in summary and "at" not in summary  # another lr; a recipe check
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before + ["elsewhere"])  # nothing written here
    assert (tmp_path / "elsewhere" / "summary.md").exists() and (tmp_path / "elsewhere" / "figure5.png").exists()


def test_status_of_a_missing_folder(tmp_path):
    status = figure5_status(tmp_path / "nothing")
    assert status["counted"] == [] and status["other_lr"] == [] and len(status["missing"]) == 50


def test_results_folder_is_found_from_the_notebooks_folder_or_the_root(tmp_path, monkeypatch):
    from l2t.teach.partial import results_folder

    (tmp_path / "results" / "figure5-quick").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert results_folder() == Path("../results/figure5-quick")
    monkeypatch.chdir(tmp_path)
    assert results_folder() == Path("results/figure5-quick")
    assert results_folder("table1-stl10-paper") == Path("../results/table1-stl10-paper")  # missing: the notebooks' view
