"""The command line and the reproduction recipes, on real data (short) and on tiny stand-in data."""

import json
import multiprocessing
import os
import time
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from conftest import fig5, metrics, needs_cifar10, needs_source
from PIL import Image

from l2t import plots
from l2t import reproduce as R
from l2t.cli import main
from l2t.config import HOW_TO_RUN
from l2t.models import build_model


@needs_cifar10
@needs_source
def test_cli_train_inspect_evaluate_on_real_data(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                "figure5-quick",
                "--method",
                "l2t-ww",
                "--samples-per-class",
                "1",
                "--batch-size",
                "10",
                "--max-iters",
                "2",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads((out / "result.json").read_text())
    assert result["iterations"] == 2 and result["config"]["val_per_class"] == 50 and len(result["pairs"]) == 15
    capsys.readouterr()
    assert main(["inspect", str(out), "--device", "cpu", "--plot", str(tmp_path / "g.png")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert len(shown["lambda"]) == 15 and all(0 <= v <= 6 for v in shown["lambda"])
    assert (tmp_path / "g.png").stat().st_size > 1000
    assert main(["evaluate", str(out), "--device", "cpu"]) == 0  # the checkpoint scores as result.json says
    scored = json.loads(capsys.readouterr().out)
    assert scored["best_val_epoch"] == result["best_val_epoch"] and scored["best_val_test_acc"] == result["test_acc"]


def test_cli_bad_input_is_one_clear_line(tmp_path, capsys):
    cases = [
        (["train", "--method", "nope"], "unknown method 'nope'"),
        (["train", "--config", "no-such-config"], "neither a file nor one of"),
        (["train", "--method", "scratch", "--epochs", "0"], "epochs must be >= 1, got 0"),
        (["reproduce", "figure5", "--max-iters", "0", "--dry-run"], "max-iters must be >= 1, got 0"),
    ]
    for argv, message in cases:
        assert main(argv + ["--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def make_standin_root(root, real_source):
    """ImageFolder stand-ins for cifar100 / stl10 / tinyimagenet / cifar10 with split files, and sources."""
    g = torch.Generator().manual_seed(0)
    for name, classes in (("cifar100", 100), ("stl10", 10), ("tinyimagenet", 200), ("cifar10", 10)):
        # figure 5 holds out 100 training images per class for validation
        for part, per_class in (("train", 102 if name == "cifar10" else 2), ("test", 1)):
            for c in range(classes):
                folder = root / name / part / f"c{c:03d}"
                folder.mkdir(parents=True)
                for i in range(per_class):
                    pixels = torch.randint(0, 256, (32, 32, 3), generator=g, dtype=torch.uint8).numpy()
                    Image.fromarray(pixels).save(folder / f"{i}.png")
        n_train, n_test = (102 if name == "cifar10" else 2) * classes, classes
        (root / "splits").mkdir(exist_ok=True)
        for split, idx in (("train", range(0, n_train, 2)), ("val", range(1, n_train, 2)), ("test", range(n_test))):
            (root / "splits" / f"{name}-{split}.json").write_text(json.dumps({"indices": list(idx)}))
    (root / "sources").mkdir()
    os.symlink(real_source, root / "sources" / "tinyimagenet-200-resnet32.pth.tar")
    for spec in R.TABLE2_SOURCES.values():  # the extra sources of Table 2, already trained
        arch, path = spec.format(root=root).split(":", 1)
        torch.save({"state_dict": build_model(arch, 10).state_dict(), "num_classes": 10}, path)


@needs_source
@pytest.mark.parametrize("experiment", ["table1-cifar100", "table1-stl10", "table2", "figure5-paper"])
def test_every_paper_recipe_runs_one_iteration(tmp_path, monkeypatch, experiment):
    from l2t.data import data_root

    real_source = data_root() / "sources" / "tinyimagenet-200-resnet32.pth.tar"
    root = tmp_path / "data"
    make_standin_root(root, real_source)
    monkeypatch.setenv("L2T_DATA", str(root))
    monkeypatch.chdir(tmp_path)
    kind, _, column = experiment.partition("-")
    out = tmp_path / "results"
    if kind == "table1":
        plan = R.table1("paper", column, seeds=[0], methods=["scratch"], out=out, device="cpu", max_iters=1)
    elif kind == "table2":
        plan = R.table2("paper", seeds=[0], out=out, device="cpu", max_iters=1)
    else:
        plan = R.figure5("paper", seeds=[0], methods=["scratch"], samples=[1], out=out, device="cpu", max_iters=1)
        plan = [cfg for _, cfg in plan]
    results = {p.stem: json.loads(p.read_text()) for p in out.glob("*-it1.json")}
    assert sorted(results) == sorted(R.run_id(cfg) for cfg in plan) and plan
    for cfg in plan:  # each run trained exactly its planned config, which is the paper's
        r = results[R.run_id(cfg)]
        planned = {k: v for k, v in json.loads(json.dumps(asdict(cfg))).items() if k not in HOW_TO_RUN}
        assert {k: v for k, v in r["config"].items() if k not in HOW_TO_RUN} == planned
        assert r["iterations"] == 1 and cfg.epochs == 200 and cfg.lr == 0.1 and cfg.T == 2
        assert cfg.batch_size == 128 and cfg.momentum == 0.9 and cfg.weight_decay == 1e-4 and cfg.beta == 0.5
    if kind == "table2":
        assert {len(r["config"]["sources"]) for r in results.values()} == {2} and len(results) == 3


@pytest.mark.parametrize("column", ["cifar100", "stl10"])
def test_table1_paper_recipe_is_every_method_three_seeds_paper_settings(column, capsys):
    plan = R.table1("paper", column, dry_run=True)
    assert sorted({c.method for c in plan}) == sorted(R.TABLE1_METHODS) and len(plan) == 27
    for c in plan:
        assert (c.dataset, c.split, c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay, c.beta, c.T) == (
            column,
            "paper",
            200,
            128,
            0.1,
            0.9,
            1e-4,
            0.5,
            2,
        )
    assert "l2t-ww" in capsys.readouterr().out


def cub200_standin(tmp_path, monkeypatch):
    """A tiny CUB-200 (ImageFolder, the paper's split files) under L2T_DATA; a random ResNet34 as the source."""
    import l2t.train as T

    g = torch.Generator().manual_seed(0)
    for part, per_class in (("train", 3), ("test", 1)):
        for c in range(4):
            folder = tmp_path / "cub200" / part / f"c{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(torch.randint(0, 256, (40, 48, 3), generator=g, dtype=torch.uint8).numpy()).save(
                    folder / f"{i}.png"
                )
    (tmp_path / "splits").mkdir()
    for split, idx in (("train", [0, 1, 3, 4, 6, 7, 9, 10]), ("val", [2, 5, 8, 11]), ("test", list(range(4)))):
        (tmp_path / "splits" / f"cub200-{split}.json").write_text(json.dumps({"indices": idx}))
    monkeypatch.setenv("L2T_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    # the ImageNet source needs a download; a random ResNet34 stands in for it
    monkeypatch.setattr(
        T, "build_source", lambda arch, path, sha256=None: build_model(arch, 1000).eval().requires_grad_(False)
    )


def test_224_setting_trains_from_imagefolder_with_paper_transforms(tmp_path, monkeypatch):
    """ResNet34 -> ResNet18 at 224x224 on a tiny CUB-200 stand-in (ImageFolder, the paper's split files)."""
    cub200_standin(tmp_path, monkeypatch)
    plan = R.table1("paper", "cub200", seeds=[0], methods=["l2t-ww"], out=tmp_path / "res", device="cpu", max_iters=1)
    r = json.loads(next((tmp_path / "res").glob("*.json")).read_text())
    assert plan[0].target == "resnet18" and plan[0].batch_size == 64 and len(r["pairs"]) == 16
    assert r["iterations"] == 1 and r["n_train"] == 8 and 0 <= r["test_acc"] <= 100
    from torchvision import transforms as TV

    from l2t.data import prepare_data

    data = prepare_data(plan[0])  # the paper's transforms: random-resized crops to train, a centre crop to score
    train = [type(t) for t in data["train"].dataset.transform.transforms]
    assert train[:2] == [TV.RandomResizedCrop, TV.RandomHorizontalFlip]
    assert data["train"].dataset.transform.transforms[0].size == (224, 224)
    for part in ("train_eval", "val", "test"):
        resize, crop = data[part].dataset.transform.transforms[:2]
        assert isinstance(resize, TV.Resize) and resize.size == 256 and isinstance(crop, TV.CenterCrop)
        assert crop.size == (224, 224)
    assert data["train"][0][0].shape == data["test"][0][0].shape == (3, 224, 224)


@pytest.mark.parametrize("workers", [0, 1])
def test_224_resume_after_a_kill_reproduces_the_uninterrupted_run(tmp_path, monkeypatch, workers):
    # image files are cropped and flipped by torchvision with torch's RNG (in the workers, or in this process
    # without them), which a checkpoint does not hold: each epoch draws from (seed, epoch) instead
    from l2t.train import Config, Trainer

    cub200_standin(tmp_path, monkeypatch)
    cfg = lambda name: Config(
        method="scratch",
        dataset="cub200",
        split="paper",
        target="resnet18",
        batch_size=4,
        epochs=3,
        lr=0.01,
        device="cpu",
        workers=workers,
        out=str(tmp_path / name),
    )
    full = Trainer(cfg("full")).fit(progress=False)
    original = Trainer._train_epoch

    def dies_in_epoch_two(self, *a, **k):
        if self.epoch == 1:
            raise KeyboardInterrupt("killed")
        return original(self, *a, **k)

    monkeypatch.setattr(Trainer, "_train_epoch", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg("killed")).fit(progress=False)
    monkeypatch.setattr(Trainer, "_train_epoch", original)
    resumed = Trainer(cfg("killed")).fit(resume=True, progress=False)
    assert metrics(tmp_path / "killed") == metrics(tmp_path / "full") and len(metrics(tmp_path / "full")) == 3
    assert resumed["test_acc"] == full["test_acc"]


def test_train_source_writes_a_checkpoint_load_source_accepts(tmp_path, monkeypatch):
    from l2t.models import load_source

    g = torch.Generator().manual_seed(0)
    for part in ("train", "test"):
        for c in range(10):
            folder = tmp_path / "cifar10" / part / f"c{c}"
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(torch.randint(0, 256, (32, 32, 3), generator=g, dtype=torch.uint8).numpy()).save(
                    folder / f"{i}.png"
                )
    monkeypatch.setenv("L2T_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sources" / "cifar10-resnet20.pth.tar"
    assert (
        main(
            [
                "train-source",
                "--arch",
                "resnet20",
                "--dataset",
                "cifar10",
                "--out",
                str(path),
                "--epochs",
                "2",
                "--device",
                "cpu",
                "--max-iters",
                "1",
                "--val-per-class",
                "1",
            ]
        )
        == 0
    )
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == {"epoch", "best", "test_prec", "state_dict", "num_classes"} and ckpt["num_classes"] == 10
    assert load_source(path, "resnet20").fc.out_features == 10


def test_figure5_summary_lists_every_seed_flags_collapse_and_drops_lost_lr(tmp_path):
    folder = tmp_path / "figure5-quick"
    folder.mkdir()

    def result(method, n, seed, lr, acc, collapsed=False, device="cpu (x86_64, 2 threads)"):
        r = {
            "config": fig5({"method": method, "samples_per_class": n, "seed": seed, "lr": lr}),
            "test_acc": acc,
            "collapsed": collapsed,
            "device": device,
            "wall_time_s": 1800.0,
        }
        (folder / f"{method}-n{n}-s{seed}-lr{lr:g}.json").write_text(json.dumps(r))

    result("scratch", 10, 0, 0.1, 12.0, collapsed=True)  # lost the lr grid
    result("scratch", 10, 0, 0.01, 30.0)
    result("scratch", 10, 1, 0.01, 32.0, device="NVIDIA H200")  # same protocol on a GPU: marked
    result("scratch", 10, 2, 0.01, 13.0, collapsed=True)  # collapsed at the chosen lr: kept, flagged
    r = {
        "config": fig5({"method": "l2t-ww", "samples_per_class": 10, "seed": 0, "lr": 0.1}),
        "test_acc": 35.0,
        "collapsed": False,
        "device": "cpu (x86_64, 2 threads)",
        "wall_time_s": 1800.0,
    }
    (folder / "l2t-ww-n10-s0-lr0.1-kept.json").write_text(json.dumps(r))  # an old run; its lr grid has not finished
    (folder / "lr_choice.json").write_text(json.dumps({"scratch": {"chosen_lr": 0.01}}))
    summary = R.summarize_figure5(folder, verbose=False)
    s = summary["scratch"][10]
    assert s["test_acc"] == [30.0, 32.0, 13.0] and s["collapsed"] == [False, False, True]
    assert abs(s["mean"] - 25.0) < 1e-9 and abs(s["std"] - 10.4403) < 1e-4  # the sample std (n - 1), as in the paper
    assert list(summary) == ["scratch"]  # every method at lr 0.01: the lr 0.1 runs are not in it
    own = json.loads((folder / "summary-own-lr.json").read_text())  # the secondary view: each at its chosen lr
    assert (
        own["scratch"]["10"]["test_acc"] == [30.0, 32.0, 13.0] and "l2t-ww-kept [lr 0.1, grid not finished]" in own
    )  # no rule recorded: an old run
    text = (folder / "summary.md").read_text()
    assert "s2: 13.00*" in text and "12.00" not in text
    assert "s1: 32.00†" in text and "s0: 30.00," in text and "† run on NVIDIA H200" in text
    assert "0.50 GPU-hours" in text and "2.00 CPU-hours" in text  # 4 CPU runs and 1 GPU run of 30 min each
    assert (folder / "figure5.png").stat().st_size > 1000
    assert "| 25.00 ± 10.44 |" in text and "| 35.00 (1 seed) |" in text  # one seed: no spread, not "± 0.00"
    assert own["l2t-ww-kept [lr 0.1, grid not finished]"]["10"]["std"] is None


def test_figure5_summary_leaves_out_runs_without_a_sample_count_and_says_so(tmp_path):
    """A whole-dataset run (samples_per_class None) in the folder is not a Figure 5 point: no crash, a note."""
    for n, acc in ((10, 30.0), (None, 60.0)):
        r = {
            "config": fig5({"method": "scratch", "samples_per_class": n, "seed": 0, "lr": 0.01}),
            "test_acc": acc,
            "collapsed": False,
            "device": "cpu",
        }
        (tmp_path / f"scratch-{'n10' if n else 'cifar10'}-s0-lr0.01.json").write_text(json.dumps(r))
    summary = R.summarize_figure5(tmp_path, verbose=False)
    assert summary == {"scratch": {10: summary["scratch"][10]}} and summary["scratch"][10]["test_acc"] == [30.0]
    assert "Left out: 1 run(s) on the whole training set" in (tmp_path / "summary.md").read_text()


def test_figure5_summary_keeps_learning_rates_apart_in_any_folder(tmp_path):
    """Outside results/figure5-quick too, runs at two lrs are never averaged as if they were two seeds."""
    folder = tmp_path / "my-figure5"
    folder.mkdir()
    for seed, lr, acc in ((0, 0.1, 20.0), (0, 0.01, 30.0), (1, 0.01, 32.0)):
        r = {
            "config": fig5({"method": "scratch", "samples_per_class": 10, "seed": seed, "lr": lr}),
            "test_acc": acc,
            "collapsed": False,
            "device": "cpu",
        }
        (folder / f"scratch-n10-s{seed}-lr{lr:g}.json").write_text(json.dumps(r))
    r = {
        "config": fig5({"method": "at", "samples_per_class": 10, "seed": 0, "lr": 0.1}),
        "test_acc": 25.0,
        "collapsed": False,
        "device": "cpu",
    }
    (folder / "at-n10-s0-lr0.1.json").write_text(json.dumps(r))
    summary = R.summarize_figure5(folder, verbose=False)
    assert summary == {"scratch": {10: summary["scratch"][10]}} and summary["scratch"][10]["test_acc"] == [30.0, 32.0]
    own = json.loads((folder / "summary-own-lr.json").read_text())
    assert own["scratch [lr 0.01, grid not finished]"]["10"]["test_acc"] == [30.0, 32.0]
    assert own["scratch [lr 0.1, grid not finished]"]["10"]["test_acc"] == [20.0]
    assert own["at"]["10"]["test_acc"] == [25.0]  # one lr and no grid in this folder: the run as it is


def test_figure5_cheaper_meta_gradient_options_reuse_the_exact_lr_and_keep_their_own_results(tmp_path, monkeypatch):
    folder = tmp_path / "figure5-quick"
    folder.mkdir()
    (folder / "lr_choice.json").write_text(
        json.dumps(
            {"scratch": {"chosen_lr": 0.01}, "l2t-ww": {"chosen_lr": 0.03}, "fm-all-to-all": {"chosen_lr": 0.01}}
        )
    )
    plan = R.figure5(
        "quick",
        seeds=[0],
        methods=["scratch", "l2t-ww"],
        samples=[10],
        out=folder,
        dry_run=True,
        meta_order="first",
        meta_every=4,
        lr_grid=True,
    )
    assert [R.run_id(c) for _, c in plan] == ["scratch-n10-s0-lr0.01", "l2t-ww-n10-s0-lr0.03-first-every4"]
    assert plan[1][1].meta_order == "first" and plan[1][1].meta_every == 4 and plan[0][1].meta_order == "exact"
    plan = R.figure5(
        "quick",
        seeds=[0],
        methods=["l2t-ww"],
        samples=[10],
        out=folder,
        dry_run=True,
        meta_order="first",
        unreached="kept",
    )  # the main protocol: one lr; the other lookahead rule
    assert [R.run_id(c) for _, c in plan] == ["l2t-ww-n10-s0-lr0.01-first-kept"]
    for order, acc in (("exact", 33.0), ("first", 31.0)):
        r = {
            "config": fig5(
                {
                    "method": "l2t-ww",
                    "samples_per_class": 10,
                    "seed": 0,
                    "lr": 0.03,
                    "meta_order": order,
                    "meta_every": 1,
                    "lookahead_unreached": "zero-grad",
                }
            ),
            "test_acc": acc,
            "collapsed": False,
            "device": "cpu",
        }
        (folder / f"l2t-ww-n10-s0-lr0.03{'-first' if order == 'first' else ''}.json").write_text(json.dumps(r))
    r = {
        "config": fig5({"method": "fm-all-to-all", "samples_per_class": 10, "seed": 0, "lr": 0.01}),
        "test_acc": 32.0,
        "collapsed": False,
        "device": "cpu",
    }
    (folder / "fm-all-to-all-n10-s0-lr0.01.json").write_text(json.dumps(r))
    drawn = {}

    def figure5_plot(summary, title=None, dashed=()):
        drawn["lines"] = list(summary)
        return plots.plt.figure()

    monkeypatch.setattr(plots, "figure5_plot", figure5_plot)
    summary = R.summarize_figure5(folder, verbose=False, lr=0.03)
    assert summary["l2t-ww"][10]["test_acc"] == [33.0] and summary["l2t-ww-first"][10]["test_acc"] == [31.0]
    assert list(summary) == ["l2t-ww", "l2t-ww-first"]  # the method, its option (fm-all-to-all ran at 0.01)
    own = json.loads((folder / "summary-own-lr.json").read_text())
    assert list(own) == ["fm-all-to-all", "l2t-ww", "l2t-ww-first"]  # the ablation, the method, its option
    assert drawn["lines"] == ["fm-all-to-all", "l2t-ww"]  # the figures draw the figure's lines, not an option ...
    assert (folder / "paired.png").stat().st_size > 1000  # ... which the tables list
    with pytest.raises(ValueError, match="for figure5"):
        R.reproduce("table1", column="stl10", dry_run=True, meta_order="first")


def test_lead_split_pairs_seeds_and_is_drawn_only_when_all_three_methods_ran(tmp_path):
    folder = tmp_path / "figure5-quick"
    folder.mkdir()
    (folder / "lr_choice.json").write_text(
        json.dumps({m: {"chosen_lr": 0.01} for m in ("fm-one-to-one", "fm-all-to-all", "l2t-ww")})
    )

    def result(method, n, seed, acc):
        r = {
            "config": fig5(
                {"method": method, "samples_per_class": n, "seed": seed, "lr": 0.01, "lookahead_unreached": "zero-grad"}
            ),
            "test_acc": acc,
            "collapsed": False,
            "device": "cpu",
        }
        (folder / f"{method}-n{n}-s{seed}-lr0.01.json").write_text(json.dumps(r))

    for seed, (fm, all15, ww) in enumerate([(30.0, 32.0, 35.0), (28.0, 31.0, 30.0), (29.0, 33.0, 36.0)]):
        result("fm-one-to-one", 25, seed, fm)
        result("fm-all-to-all", 25, seed, all15)
        if seed < 2:  # L2T-ww's seed 2 has not run: seed 2 must not count, not even in 'pairs'
            result("l2t-ww", 25, seed, ww)
    result("fm-one-to-one", 50, 0, 40.0)  # N = 50: no fm-all-to-all run, so no split there
    result("l2t-ww", 50, 0, 45.0)
    summary = R.summarize_figure5(folder, verbose=False)
    assert plots.lead_split(summary) == {25: {"seeds": [0, 1], "pairs": [2.0, 3.0], "weights": [3.0, -1.0]}}
    assert (folder / "lead_split.png").stat().st_size > 1000
    fig = plots.lead_split_plot(summary)  # each part's mean is written above its bar: pairs 2.5, weights +1.0
    assert [t.get_text() for t in fig.axes[0].texts] == ["+2.50", "+1.00"]
    bars = [b for c in fig.axes[0].containers if hasattr(c, "patches") for b in c.patches]
    assert [round(b.get_height(), 6) for b in bars] == [2.5, 1.0]  # side by side, not stacked
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["N = 25\n(2 seeds)"]
    for p in folder.glob("fm-all-to-all-*.json"):
        p.unlink()
    R.summarize_figure5(folder, verbose=False)
    assert not (folder / "lead_split.png").exists()


def test_lr_grid_runs_at_n10_records_under_the_exact_name_and_a_recipe_check_records_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "figure5-quick"
    folder.mkdir()
    ran = []

    def fake_run(cfg, results, runs, device, cuda_graph=False, keep_model=False):  # validation falls with lr: 0.1 wins
        ran.append(cfg)
        return {"best_val_acc": {0.1: 50.0, 0.03: 40.0, 0.01: 30.0}[cfg.lr]}

    monkeypatch.setattr(R, "run_once", fake_run)
    R.figure5("quick", methods=["scratch"], samples=[50], seeds=[0], out=folder, meta_every=4, lr_grid=True)
    grid = [c for c in ran if c.seed == 0 and c.samples_per_class == 10]
    assert sorted(c.lr for c in grid) == sorted(R.LR_GRID)  # the protocol's N = 10, not the N asked for
    assert [(c.samples_per_class, c.lr, c.meta_every) for c in ran[3:]] == [(50, 0.1, 1)]
    choice = R.read_lr_choice(folder)
    assert list(choice) == ["scratch"] and choice["scratch"]["chosen_at"].startswith("N=10 ")  # not "scratch-every4"
    (folder / "lr_choice.json").write_text(json.dumps({"scratch": {"chosen_lr": 0.01}}))
    ran.clear()
    R.figure5("quick", methods=["scratch"], samples=[10], seeds=[1], out=folder, max_iters=2, lr_grid=True)
    assert [c.lr for c in ran][-1] == 0.1  # the check's own grid chose 0.1 ...
    assert R.read_lr_choice(folder) == {"scratch": {"chosen_lr": 0.01}}  # ... and the real choice stands


def test_summary_and_partial_status_count_the_same_runs_of_a_cheaper_option(tmp_path):
    from l2t.teach.partial import figure5_status

    folder = tmp_path / "figure5-quick"
    folder.mkdir()
    (folder / "lr_choice.json").write_text(json.dumps({"l2t-ww": {"chosen_lr": 0.03}}))  # not the main view's
    for lr, acc in ((0.01, 33.0), (0.1, 31.0)):
        r = {
            "config": fig5(
                {
                    "method": "l2t-ww",
                    "samples_per_class": 10,
                    "seed": 0,
                    "lr": lr,
                    "meta_every": 4,
                    "lookahead_unreached": "zero-grad",
                }
            ),
            "test_acc": acc,
            "best_val_acc": acc,
            "collapsed": False,
            "device": "cpu",
        }
        (folder / f"l2t-ww-n10-s0-lr{lr:g}-every4.json").write_text(json.dumps(r))
    r = {
        "config": fig5({"method": "scratch", "samples_per_class": 10, "seed": 1, "lr": 0.01, "max_iters": 2}),
        "test_acc": 10.0,
        "best_val_acc": 10.0,
        "collapsed": False,
        "device": "cpu",
    }
    (folder / "scratch-n10-s1-lr0.01-it2.json").write_text(json.dumps(r))  # a recipe check: in neither
    summary = R.summarize_figure5(folder, verbose=False)
    assert list(summary) == ["l2t-ww-every4"] and summary["l2t-ww-every4"][10]["test_acc"] == [33.0]
    assert [r["config"]["lr"] for r in figure5_status(folder)["extra"]] == [0.01]


def test_table2_quick_trains_its_short_sources_beside_the_paper_scale_ones(capsys):
    quick, paper = R.table2("quick", dry_run=True), R.table2("paper", dry_run=True)
    assert all(c.sources[1].endswith("-quick.pth.tar") for c in quick)
    assert not any("quick" in c.sources[1] for c in paper)


def _write_many(path, k):
    for i in range(200):
        R.record_lr_choice(path, f"m{k}", {0.01: float(i)}, 0.01, 10)


def test_parallel_reproduce_processes_can_share_a_results_folder(tmp_path):
    # Several `reproduce figure5` processes (one per N, on one GPU) record lr choices in the same folder;
    # with a shared temporary name one process's rename used to find the file already moved, and without a
    # lock one process's read-modify-write could drop the choice another had just written.
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(tmp_path, k)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0, 0]
    table = json.loads((tmp_path / "lr_choice.json").read_text())
    assert sorted(table) == ["m0", "m1", "m2"]  # no process's read-modify-write lost another's choice
    assert all(v["best_val_acc_by_lr"] == {"0.01": 199.0} for v in table.values())
    assert not list(tmp_path.glob("*.tmp"))
    R.record_lr_choice(tmp_path, "scratch", {0.01: 35.6}, 0.01, 10)
    before = (tmp_path / "lr_choice.json").stat().st_mtime_ns
    R.record_lr_choice(tmp_path, "scratch", {0.01: 35.6}, 0.01, 10)  # unchanged: not rewritten
    assert (tmp_path / "lr_choice.json").stat().st_mtime_ns == before


def _train_once(tmp_path):
    R.run_once(
        R.Config(method="scratch", samples_per_class=10, out="unused"), tmp_path / "results", tmp_path / "runs", "cpu"
    )


def test_two_processes_planning_the_same_run_train_it_once(tmp_path, monkeypatch):
    def fit(self, resume=False, progress=True):  # a slow training that leaves a trace of every call
        with open(tmp_path / "fits", "a") as f:
            f.write("fit\n")
        time.sleep(1.0)
        return {
            "config": R.asdict(R.Config(method="scratch", samples_per_class=10)),
            "test_acc": 40.0,
            "best_val_acc": 40.0,
        }

    monkeypatch.setattr(R.Trainer, "__init__", lambda self, cfg: setattr(self, "what", None))
    monkeypatch.setattr(R.Trainer, "fit", fit)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_train_once, args=(tmp_path,)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0]
    assert (tmp_path / "fits").read_text() == "fit\n"  # the second process waited, then found the result
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["scratch-n10-s0-lr0.1.json"]
    assert not list((tmp_path / "runs").iterdir())  # no checkpoint folder, no lock file left behind


def test_dry_run_says_which_runs_are_done_which_resume_and_which_remain(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # checkpoints live in runs/<results folder name>/<run>
    folder = tmp_path / "results" / "figure5-quick"
    folder.mkdir(parents=True)
    done = R.replace(R.figure5_base("quick"), method="scratch", samples_per_class=10, seed=0)
    (folder / "scratch-n10-s0-lr0.01.json").write_text(json.dumps({"config": R.asdict(done), "test_acc": 30.0}))
    ckpt = tmp_path / "runs" / "figure5-quick" / "scratch-n10-s1-lr0.01"
    ckpt.mkdir(parents=True)
    torch.save({"epoch": 40, "model": {"w": torch.zeros(3)}}, ckpt / "checkpoint.pt")
    # 40 epochs of 30 s, one slowed to 600 s (a test suite ran beside it); rows past the checkpoint are redone
    elapsed = [30.0 * (e + 1) + (570.0 if e >= 20 else 0.0) for e in range(45)]
    (ckpt / "metrics.jsonl").write_text(
        "".join(json.dumps({"epoch": e, "elapsed_s": t}) + "\n" for e, t in enumerate(elapsed))
    )
    plan = R.figure5("quick", methods=["scratch", "at"], samples=[10], out=folder, dry_run=True)
    lines = capsys.readouterr().out.splitlines()
    assert [R.run_id(c) for _, c in plan] == [f"{m}-n10-s{s}-lr0.01" for m in ("scratch", "at") for s in (0, 1, 2)]
    state = {line.split()[-1]: line for line in lines[:-1]}
    assert "done" in state["scratch-n10-s0-lr0.01"]
    assert "resumes at epoch 40/200, ~1.3 h left" in state["scratch-n10-s1-lr0.01"]  # median epoch x 160 epochs
    assert "to do" in state["scratch-n10-s2-lr0.01"] and "to do" in state["at-n10-s0-lr0.01"]
    assert lines[-1] == f"6 runs in {folder}: 1 done, 1 resume from a checkpoint, 4 to do"
    plan = R.figure5("quick", methods=["at"], samples=[10], out=folder, dry_run=True, lr_grid=True)
    lines = capsys.readouterr().out.splitlines()
    assert [k for k, _ in plan] == ["lr-grid"] * 3 + ["run"] * 3 and "grid's choice" in lines[3]


def test_the_packaged_figure5_quick_config_is_the_protocol_of_l2t_reproduce():
    import yaml

    values = yaml.safe_load((Path(R.__file__).parent / "configs" / "figure5-quick.yaml").read_text())
    base = R.asdict(R.figure5_base("quick"))
    values.pop("samples_per_class")  # chosen per run with --samples-per-class
    assert values == {k: base[k] for k in values} and values["lr"] == R.QUICK_LR
    assert {"dataset", "target", "sources", "val_per_class", "epochs", "batch_size", "lr"} <= set(values)


def test_make_demo_repeats_the_stored_figure5_runs_at_n10_seed0(monkeypatch):
    import shlex

    from l2t import cli

    lines = Path("Makefile").read_text().split("\ndemo:")[1].split("\n\n")[0].splitlines()
    trains = [shlex.split(line.strip())[1:] for line in lines if "l2t train" in line]
    assert len(trains) == 2 and all("--resume" in argv for argv in trains)  # an interrupted demo continues
    seen = []
    monkeypatch.setattr(cli, "cmd_train", lambda args: seen.append(cli.config_from_args(args)))
    for argv in trains:
        main(argv)
    how = {"out", "device", "cuda_graph", "workers"}  # how and where a run trains, not what it is
    for cfg in seen:
        stored = json.loads(Path(f"results/figure5-quick/{cfg.method}-n10-s0-lr0.01.json").read_text())["config"]
        mine = asdict(cfg)  # a field newer than a stored result keeps its default there
        assert {k: v for k, v in mine.items() if k not in how} == {
            k: stored.get(k, mine[k]) for k in mine if k not in how
        }
    assert [c.method for c in seen] == ["scratch", "l2t-ww"]


def test_figure5_plot_names_methods_as_the_tables_do_dashes_the_ablation_and_says_what_has_not_run():
    row = lambda accs: {
        "seeds": list(range(len(accs))),
        "test_acc": accs,
        "collapsed": [False] * len(accs),
        "mean": sum(accs) / len(accs),
        "std": 1.0 if len(accs) > 1 else None,
    }
    summary = {
        "scratch": {10: row([30.0, 31.0]), 25: row([38.0, 39.0])},
        "fm-all-to-all": {10: row([32.0, 33.0]), 25: row([42.0, 43.0])},
        "l2t-ww": {10: row([33.0, 32.0])},
    }
    ax = plots.figure5_plot(summary, dashed=("fm-all-to-all",)).axes[0]
    handles, names = ax.get_legend_handles_labels()
    assert names == ["scratch", "fm-all-to-all (ablation)", "L2T-ww (N = 25: not run yet)"]
    assert [h.lines[0].get_linestyle() for h in handles] == ["-", "--", "-"]
    xs = [h.lines[0].get_xdata()[0] for h in handles]  # nudged apart around N = 10, in order
    assert xs == sorted(xs) and len(set(xs)) == 3 and all(abs(x / 10 - 1) < 0.1 for x in xs)
    assert plots.label("l2t-ww-kept") == "L2T-ww-kept" and plots.label("fm-one-to-one") == "FM (one-to-one)"
    fig = plots.paired_plot(summary)  # N = 25 has no L2T-ww run: its panel says so
    notes = [[t.get_text() for t in a.texts] for a in fig.axes]
    assert notes == [[], ["L2T-ww: not run yet at this N"]]
    plots.plt.close("all")


def test_every_setting_has_its_help_and_its_choices_on_the_command_line(capsys):
    from dataclasses import fields

    from l2t.cli import main
    from l2t.config import CHOICES, HELP, Config

    assert set(HELP) == {f.name for f in fields(Config)} and all(HELP.values())
    assert CHOICES["split"] == ["auto", "paper", "none"] and CHOICES["bn_updates"] == ["once", "authors"]
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--bn-updates {once,authors}" in text and "SGD learning rate (cosine schedule) (default: 0.1)" in text
