"""Reliability: no run is lost or silently mixed, every bad file or setting gets one clear line."""

import json

import pytest
import torch
from conftest import fig5
from test_trainer import run, tiny_data, tiny_sources

from l2t import reproduce as R
from l2t import sources
from l2t.cli import main
from l2t.train import Config, Trainer


def trained(tmp_path, **kw):
    trainer = run(tmp_path, method="scratch", max_iters=2, **kw)
    trainer.fit(progress=False)
    return tmp_path / "run"


def test_a_second_launch_never_destroys_a_run(tmp_path):
    out = trained(tmp_path)
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(ValueError, match="add --resume to continue it, or --overwrite"):
        run(tmp_path, method="scratch", max_iters=2).fit(progress=False)  # same run, no --resume
    with pytest.raises(ValueError, match=r"holds another run \(lr=0\.1 there, 0\.05 here\)"):
        run(tmp_path, method="scratch", max_iters=2, lr=0.05).fit(progress=False)  # other settings
    with pytest.raises(ValueError, match="holds another run"):
        run(tmp_path, method="scratch", max_iters=2, lr=0.05).fit(resume=True, progress=False)
    assert (out / "checkpoint.pt").read_bytes() == before  # nothing touched
    run(tmp_path, method="scratch", max_iters=2, lr=0.05).fit(progress=False, overwrite=True)
    aside = [p for p in out.iterdir() if p.name.startswith("replaced-")]
    assert len(aside) == 1 and (aside[0] / "checkpoint.pt").read_bytes() == before  # moved aside, not deleted
    assert json.loads((out / "config.json").read_text())["lr"] == 0.05


def test_a_second_process_on_the_same_out_is_refused_at_once(tmp_path):
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "w") as lock:  # another process holds the run's lock
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(ValueError, match="another l2t process is training into"):
            run(tmp_path, method="scratch", max_iters=1).fit(progress=False)
    assert not (out / "metrics.jsonl").exists()


def test_out_that_is_a_file_and_a_truncated_checkpoint_are_one_clear_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        run(tmp_path, name="file", method="scratch", max_iters=1).fit(progress=False)
    out = trained(tmp_path)
    data = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="is not a readable l2t checkpoint .* truncated"):
        run(tmp_path, method="scratch", max_iters=2).fit(resume=True, progress=False)
    assert main(["evaluate", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint.pt is not a readable l2t checkpoint" in err[0]


def test_a_truncated_or_foreign_source_file_is_one_clear_error(tmp_path):
    from l2t.models import load_source

    (tmp_path / "random.pth").write_bytes(bytes(range(256)) * 10)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_source(tmp_path / "random.pth", "resnet20")
    torch.save({"epoch": 1}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a checkpoint in the paper's format"):
        load_source(tmp_path / "other.pth", "resnet20")
    torch.save({"state_dict": tiny_sources()[0].state_dict()}, tmp_path / "ok.pth")
    with pytest.raises(ValueError, match="sha256 of .* expected 00"):
        Trainer(
            Config(
                method="at",
                sources=[f"resnet20:{tmp_path / 'ok.pth'}#" + "0" * 64],
                device="cpu",
                out=str(tmp_path / "r"),
            ),
            data=tiny_data(),
        )


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--beta", "-5"], "--beta must be >= 0, got -5.0"),
        (["--lr", "nan"], "--lr must be a finite number, got nan"),
        (["--seed", "-1"], "--seed must be >= 0, got -1"),
        (["--seed", "99999999999999999999"], "--seed must be < 9223372036854775808, got 99999999999999999999"),
        (["--val-per-class", "0"], "--val-per-class must be >= 1"),
        (["--samples-per-class", "0"], "--samples-per-class must be >= 1"),
        (["--pairs", ""], "--pairs is empty"),
        (["--pairs", "4-0,4-0"], "pairs 4-0 are given more than once"),
    ],
)
def test_nonsense_settings_are_refused_naming_their_flag(tmp_path, capsys, flags, message):
    assert main(["train", "--method", "l2t-ww", "--out", str(tmp_path / "r"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_yaml_numbers_in_any_notation_and_bad_yaml_name_the_file(tmp_path, capsys):
    import argparse

    from l2t.cli import _add_config_flags, config_from_args

    p = argparse.ArgumentParser()
    _add_config_flags(p)
    (tmp_path / "a.yaml").write_text("lr: 1e-3\nepochs: 5\nbeta: 1\nweight_decay: 5.0E-4\nmeta_lr: -2e+1\n")
    with pytest.raises(ValueError, match="meta_lr in .*a.yaml must be >= 0, got -20.0"):
        config_from_args(p.parse_args(["--config", str(tmp_path / "a.yaml")]))
    (tmp_path / "a.yaml").write_text("lr: 1e-3\nepochs: 5\nbeta: 1\nweight_decay: 5.0E-4\n")
    cfg = config_from_args(p.parse_args(["--config", str(tmp_path / "a.yaml"), "--T", "3"]))
    assert (cfg.lr, cfg.epochs, cfg.beta, cfg.weight_decay, cfg.T) == (0.001, 5, 1.0, 5e-4, 3)
    assert type(cfg.lr) is type(cfg.beta) is float and type(cfg.epochs) is int  # an integer beta becomes a real
    (tmp_path / "b.yaml").write_text("epochs: ten\n")
    (tmp_path / "c.yaml").write_text("lr: [1\n")
    for name, message in (
        ("b.yaml", "epochs in .*b.yaml must be a valid integer, got 'ten'"),
        ("c.yaml", "c.yaml is not valid YAML"),
    ):
        assert main(["train", "--config", str(tmp_path / name), "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert __import__("re").search(message, err[0]), err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_one_clear_line(tmp_path, capsys):
    assert main(["train", "--method", "scratch", "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
    assert "sees no CUDA GPU; use --device cpu" in capsys.readouterr().err


def test_the_summary_counts_only_results_of_its_own_protocol_with_a_real_percentage(tmp_path, capsys):
    folder = tmp_path / "figure5-quick"
    folder.mkdir()

    def write(seed, acc, **changed):
        r = {
            "config": {**fig5({"method": "scratch", "samples_per_class": 10, "seed": seed, "lr": 0.01}), **changed},
            "test_acc": acc,
            "collapsed": False,
            "device": "cpu",
        }
        (folder / f"scratch-n10-s{seed}-lr0.01.json").write_text(json.dumps(r))

    write(0, 30.0)
    write(1, 77.7, epochs=2, beta=3.0, val_per_class=5)  # same name, other settings
    write(2, 250.0)
    write(3, float("nan"))
    write(4, 31.0, wall_time_s=float("nan"))  # (the other keys of write's dict are the run's config)
    r = json.loads((folder / "scratch-n10-s4-lr0.01.json").read_text())
    r["wall_time_s"] = r["config"].pop("wall_time_s")
    (folder / "scratch-n10-s4-lr0.01.json").write_text(json.dumps(r))
    summary = R.summarize_figure5(folder, verbose=False)
    assert summary["scratch"][10]["test_acc"] == [30.0]
    text = (folder / "summary.md").read_text()
    assert "`scratch-n10-s1-lr0.01.json`: made with other settings (beta=3.0 there, 0.5 here, epochs=2 there, " in text
    assert "`scratch-n10-s2-lr0.01.json`: its test_acc 250.0 is not a percentage in [0, 100]" in text
    assert "`scratch-n10-s3-lr0.01.json`: its test_acc nan is not a percentage" in text
    assert "`scratch-n10-s4-lr0.01.json`: its wall_time_s nan is not a time in seconds" in text
    R.figure5("quick", methods=["scratch"], samples=[10], seeds=[0, 1, 2, 3], out=folder, dry_run=True)
    states = {line.split()[-1]: line for line in capsys.readouterr().out.splitlines() if line.startswith("run")}
    assert "done" in states["scratch-n10-s0-lr0.01"] and "bad result file" in states["scratch-n10-s2-lr0.01"]
    assert all("bad result file" in states[f"scratch-n10-s{s}-lr0.01"] for s in (1, 2, 3))


def test_the_summary_names_and_never_averages_stray_copies_garbage_or_empty_files(tmp_path, capsys):
    folder = tmp_path / "figure5-quick"
    folder.mkdir()
    for seed, acc in ((0, 30.0), (1, 32.0)):
        r = {
            "config": fig5({"method": "scratch", "samples_per_class": 10, "seed": seed, "lr": 0.01}),
            "test_acc": acc,
            "collapsed": False,
            "device": "cpu",
        }
        (folder / f"scratch-n10-s{seed}-lr0.01.json").write_text(json.dumps(r))
    (folder / "scratch-n10-s0-lr0.01 (copy).json").write_text((folder / "scratch-n10-s0-lr0.01.json").read_text())
    (folder / "scratch-n10-s2-lr0.01.json").write_text("{}")
    (folder / "at-n10-s0-lr0.01.json").write_text("\x00garbage")
    summary = R.summarize_figure5(folder, verbose=False)
    assert summary["scratch"][10]["test_acc"] == [30.0, 32.0] and list(summary) == ["scratch"]
    text = (folder / "summary.md").read_text()
    assert "`scratch-n10-s0-lr0.01 (copy).json`: its config's run is scratch-n10-s0-lr0.01.json" in text
    assert (
        "`scratch-n10-s2-lr0.01.json`: not a run result" in text
        and "`at-n10-s0-lr0.01.json`: not readable JSON" in text
    )
    plan = R.figure5("quick", methods=["scratch"], samples=[10], out=folder, dry_run=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(plan) == 3 and "bad result file: not a run result" in next(l for l in lines if "s2" in l)
    with pytest.raises(ValueError, match="--samples must be >= 1"):
        R.figure5("quick", samples=[0], out=folder, dry_run=True)


def test_a_result_made_with_other_settings_is_never_reused(tmp_path):
    cfg = R.figure5_base("quick")
    cfg = R.replace(cfg, method="scratch", samples_per_class=10, seed=0)
    r = {"config": {**R.asdict(R.replace(cfg, beta=0.7)), "lookahead_unreached": "zero-grad"}, "test_acc": 30.0}
    (tmp_path / f"{R.run_id(cfg)}.json").write_text(json.dumps(r))
    with pytest.raises(
        ValueError, match=r"not this run's result: made with other settings \(beta=0\.7 there, 0\.5 here\)"
    ):
        R.run_once(cfg, tmp_path, tmp_path / "runs", "cpu")


def test_provenance_is_recorded_when_a_run_starts_and_kept_through_a_resume(tmp_path, monkeypatch):
    import l2t.evaluate as E
    import l2t.runfolder as F

    monkeypatch.setattr(F, "git_commit", lambda: "first")
    monkeypatch.setattr(E, "git_commit", lambda: "first")
    trainer = run(tmp_path, method="scratch", max_iters=1, epochs=2)
    trainer.fit(progress=False)
    monkeypatch.setattr(F, "git_commit", lambda: "second")
    monkeypatch.setattr(E, "git_commit", lambda: "second")
    result = run(tmp_path, method="scratch", max_iters=2, epochs=2).fit(resume=True, progress=False)
    assert result["git_commit"] == "first" and result["started"] and "git_dirty" in result


def test_help_lists_every_method_by_its_paper_name(capsys):
    from l2t.methods import METHODS

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert all(m in text for m in METHODS) and "--lookahead-unreached" in text and "(default: 0.1)" in text


def test_dry_run_over_a_truncated_checkpoint_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / "runs" / "figure5-quick" / "scratch-n10-s0-lr0.01"
    ckpt.mkdir(parents=True)
    (ckpt / "checkpoint.pt").write_bytes(b"PK\x03\x04 cut off")
    R.figure5(
        "quick", methods=["scratch"], samples=[10], seeds=[0], out=tmp_path / "results" / "figure5-quick", dry_run=True
    )
    assert "unreadable checkpoint (truncated?)" in capsys.readouterr().out


def test_a_runs_artefacts_phi_and_the_float16_target_load_back(tmp_path):
    from l2t.meta import What, Where
    from l2t.models import build_model

    trainer = run(tmp_path, method="l2t-ww", max_iters=2, eval_every=1)
    trainer.fit(progress=False)
    trainer.save_phi(tmp_path / "phi.pt")
    trainer.save_model(tmp_path / "model.pt")
    phi = torch.load(tmp_path / "phi.pt", weights_only=True)
    pairs = [tuple(p) for p in phi["pairs"]]
    assert pairs == trainer.pairs and phi["config"]["method"] == "l2t-ww"
    channels = trainer.sources[0].feature_channels
    what, where = What(pairs, channels), Where(pairs, channels)
    what.load_state_dict(phi["what"])
    where.load_state_dict(phi["where"])
    feats = trainer.sources[0](torch.randn(3, 3, 32, 32))[1]
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(what(feats), trainer.what(feats)))
        assert all(torch.equal(a, b) for a, b in zip(where(feats), trainer.where(feats)))
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert (
        saved["best_val_epoch"] == trainer.best["epoch"] >= 0
        and trainer.best["state"] is not None
        and saved["target"] == "vgg9"
    )
    model = build_model("vgg9", saved["num_classes"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in saved["model"].items()})
    best = trainer.best["state"]
    assert all(v.dtype == torch.float16 for k, v in saved["model"].items() if best[k].is_floating_point())
    loaded = model.state_dict()
    assert all(
        torch.allclose(loaded[k], best[k], rtol=1e-3, atol=1e-4)
        if best[k].is_floating_point()
        else torch.equal(loaded[k], best[k])
        for k in best
    )
    with pytest.raises(ValueError, match="no meta-networks"):
        run(tmp_path, name="s", method="scratch", max_iters=1).save_phi(tmp_path / "x.pt")


def test_load_trained_restores_phi_and_the_target_from_a_runs_artefacts(tmp_path):
    from l2t.inspect import load_trained, transfer_weights

    trainer = run(tmp_path, method="l2t-ww", max_iters=2, eval_every=1)
    trainer.fit(progress=False)
    stem = tmp_path / "results" / "l2t-ww-run"
    stem.parent.mkdir()
    with pytest.raises(FileNotFoundError, match="--keep-model"):
        load_trained(stem, data=trainer.data, sources=trainer.sources)
    trainer.save_phi(stem.with_name("l2t-ww-run-phi.pt"))
    trainer.save_model(stem.with_name("l2t-ww-run-model.pt"))
    loaded = load_trained(stem, data=trainer.data, sources=trainer.sources)
    assert loaded.pairs == trainer.pairs and not loaded.model.training
    x = trainer.data["test"][0][:4]
    a, b = transfer_weights(loaded, x, torch.zeros(4)), transfer_weights(trainer, x, torch.zeros(4))
    assert a["lambda"] == b["lambda"] and a["what"] == b["what"]  # phi restored exactly
    best = trainer.best["state"]
    assert all(
        torch.allclose(loaded.model.state_dict()[k].float(), v.float(), rtol=1e-3, atol=1e-4) for k, v in best.items()
    )  # the float16 target, back in float32
    assert all(v.dtype == torch.float32 for v in loaded.model.state_dict().values() if v.is_floating_point())
    other = run(tmp_path, name="other", method="l2t-ww", max_iters=2, eval_every=1, seed=1)  # another run's phi
    other.save_phi(stem.with_name("l2t-ww-run-phi.pt"))
    with pytest.raises(ValueError, match=r"come from different runs \(seed=1 there, 0 here"):
        load_trained(stem, data=trainer.data, sources=trainer.sources)
    stem.with_name("l2t-ww-run-phi.pt").write_bytes(b"cut off")
    with pytest.raises(ValueError, match="not a readable l2t artefact"):
        load_trained(stem, data=trainer.data, sources=trainer.sources)


@pytest.mark.parametrize(
    "foreign",
    [{"result.json": '{"test_acc": 91.0}'}, {"config.json": '{"lr": 0.1}', "metrics.jsonl": '{"epoch": 0}\n'}],
)
@pytest.mark.parametrize("resume", [True, False])
def test_files_l2t_did_not_write_are_never_overwritten_and_named(tmp_path, foreign, resume):
    out = tmp_path / "run"
    out.mkdir()
    for name, text in foreign.items():
        (out / name).write_text(text)
    trainer = run(tmp_path, method="scratch", max_iters=1)
    order = ["metrics.jsonl", "result.json", "config.json"]
    with pytest.raises(
        ValueError, match=f"holds {', '.join(sorted(foreign, key=order.index))} that no l2t run of this kind wrote"
    ):
        trainer.fit(resume=resume, progress=False)
    assert {p.name: p.read_text() for p in out.iterdir() if p.name != ".lock"} == foreign


def test_a_finished_run_without_its_checkpoint_is_not_silently_redone(tmp_path):
    run(tmp_path, method="scratch", max_iters=1).fit(progress=False)
    (tmp_path / "run" / "checkpoint.pt").unlink()
    before = (tmp_path / "run" / "result.json").read_text()
    with pytest.raises(ValueError, match="finished result.json but no checkpoint"):
        run(tmp_path, method="scratch", max_iters=1).fit(resume=True, progress=False)
    assert (tmp_path / "run" / "result.json").read_text() == before


def test_bad_out_paths_are_one_line_before_any_work(tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ValueError, match="--out is empty"):
        Config(out="")
    with pytest.raises(ValueError, match="cannot hold the run's files"):
        run(tmp_path, "file/run", method="scratch").fit(progress=False)
    assert (tmp_path / "file").read_text() == "mine"


def test_train_source_never_writes_over_a_checkpoint_and_checks_its_path_first(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sources, "Trainer", lambda cfg: pytest.fail("trained before checking --out"))
    paper = tmp_path / "sources" / "tinyimagenet-200-resnet32.pth.tar"
    paper.parent.mkdir()
    paper.write_bytes(b"the paper's checkpoint")
    for out, message in ((paper, "exists and l2t never writes over a checkpoint"), (paper.parent, "is a folder")):
        assert main(["train-source", "--out", str(out), "--max-iters", "1"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert paper.read_bytes() == b"the paper's checkpoint"


def test_a_full_disk_is_one_clear_error_and_leaves_no_temporary_file(tmp_path):
    """A real write beyond a file-size limit (RLIMIT_FSIZE, as a full disk): the old file stays, no .tmp is left."""
    import subprocess
    import sys

    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"old checkpoint")
    code = (
        f"import resource, signal, torch; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        f"resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)); from l2t.files import atomic_save, WriteError\n"
        f"try:\n    atomic_save({{'w': torch.zeros(100_000)}}, {str(target)!r})\n"
        f"except WriteError as e:\n    print('WriteError', e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith(f"WriteError could not write {target}") and "disk full" in out.stdout, out
    assert target.read_bytes() == b"old checkpoint" and [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


@pytest.mark.parametrize(
    "changed, message",
    [
        ({"epochs": 1.5}, "--epochs must be a valid integer, got 1.5"),
        ({"epochs": True}, "--epochs must be a valid integer, got True"),
        ({"bf16": "no"}, "--bf16 must be a valid boolean, got 'no'"),
        ({"device": 0}, "--device must be a valid string, got 0"),
        ({"samples_per_class": 2.7}, "--samples-per-class must be a valid integer, got 2.7"),
        ({"momentum": 5.0}, "--momentum must be < 1, got 5.0"),
        ({"momentum": -0.5}, "--momentum must be >= 0, got -0.5"),
        ({"workers": -1}, "--workers must be >= 0, got -1"),
        ({"sources": "resnet32:paper"}, "--source must be a valid list, got 'resnet32:paper'"),
        ({"sources": []}, "sources is empty"),
        ({"lr": "0.1"}, "--lr must be a valid number, got '0.1'"),
        ({"lr": float("nan")}, "--lr must be a finite number, got nan"),
        ({"beta": float("inf")}, "--beta must be a finite number, got inf"),
        ({"lr": 0}, "--lr must be > 0, got 0"),
        ({"seed": 2**64}, "--seed must be < 9223372036854775808"),
        ({"split": "papr"}, "--split must be 'auto', 'paper' or 'none', got 'papr'"),
    ],
)
def test_every_setting_is_checked_by_its_type_and_range(changed, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        Config(**changed)


def test_config_files_give_one_line_naming_the_file(tmp_path, capsys):
    (tmp_path / "twice.yaml").write_text("epochs: 3\nepochs: 5\n")
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)))
    (tmp_path / "folder").mkdir()
    (tmp_path / "half.yaml").write_text("epochs: 1.5\n")
    (tmp_path / "no.yaml").write_text('bf16: "no"\n')
    for config, message in (
        (tmp_path / "twice.yaml", "key 'epochs' is given twice"),
        (tmp_path / "binary.yaml", "binary.yaml is not a text file"),
        (tmp_path / "folder", "is a folder"),
        (tmp_path / "half.yaml", f"epochs in {tmp_path / 'half.yaml'} must be a valid integer, got 1.5"),
        (tmp_path / "no.yaml", f"bf16 in {tmp_path / 'no.yaml'} must be a valid boolean, got 'no'"),
        ("/nonexistent.yaml", "config file /nonexistent.yaml does not exist"),
        ("figure6-quick", "neither a file nor one of the packaged configs ['figure5-quick'"),
    ):
        assert main(["train", "--config", str(config), "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_a_source_for_a_method_without_one_is_refused(tmp_path, capsys):
    assert main(["train", "--method", "scratch", "--source", "resnet20:x.pth", "--out", str(tmp_path / "r")]) == 2
    assert "--source applies to methods that use a source network; scratch uses none" in capsys.readouterr().err
    for flags, message in (
        (["--method", "fm-one-to-one", "--T", "3"], "--T applies to methods that use meta-networks (Algorithm 1); "),
        (["--method", "at", "--beta", "2"], "--beta applies to methods that use feature matching (Eq. 3); at uses"),
        (["--method", "l2t-ww", "--at-beta", "5"], "--at-beta applies to methods that use attention transfer"),
        (["--method", "scratch", "--bn-updates", "authors"], "--bn-updates applies to methods that use meta-net"),
    ):
        assert main(["train", *flags, "--out", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "r").exists()


def test_an_empty_checkpoint_is_named_empty_not_a_crash(tmp_path):
    from l2t.runfolder import read_checkpoint

    (tmp_path / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"checkpoint.pt is empty \(0 bytes\)"):
        read_checkpoint(tmp_path / "checkpoint.pt")


def test_a_garbled_metrics_row_is_named_on_resume(tmp_path, capsys):
    run(tmp_path, method="scratch", epochs=3).fit(progress=False)
    rows = tmp_path / "run" / "metrics.jsonl"
    lines = rows.read_text().splitlines()
    rows.write_text("\n".join([lines[0].replace('"epoch": 0', '"epoch": "0"'), *lines[1:]]) + "\n")
    run(tmp_path, method="scratch", epochs=3).fit(resume=True, progress=False)
    assert "metrics.jsonl row(s) 1 unreadable, dropped" in capsys.readouterr().err


def test_ctrl_c_is_one_line_saying_where_the_last_checkpoint_is(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    run(tmp_path, method="scratch", epochs=1).fit(progress=False)  # leaves run/checkpoint.pt at epoch 1

    def interrupted(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "__init__", lambda self, cfg: None)
    monkeypatch.setattr(Trainer, "fit", interrupted)
    assert main(["train", "--method", "scratch", "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"l2t train: interrupted; the last checkpoint is {out}/checkpoint.pt (epoch 1); "
        "add --resume to continue from it"
    ]


@pytest.mark.parametrize("experiment", ["figure5", "table1"])
def test_reproduce_into_a_file_is_refused_before_any_run(tmp_path, capsys, experiment):
    (tmp_path / "results.txt").write_text("mine")
    assert main(["reproduce", experiment, "--dry-run", "--out", str(tmp_path / "results.txt")]) == 2
    assert "is a file; give the folder for the results" in capsys.readouterr().err
    assert (tmp_path / "results.txt").read_text() == "mine"


def test_an_unreadable_checkpoint_is_named_with_the_way_out_not_resume(tmp_path):
    run(tmp_path, method="scratch", max_iters=1).fit(progress=False)
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"checkpoint.pt is empty \(0 bytes\): a save was cut off; start the run"):
        run(tmp_path, method="scratch", max_iters=1).fit(progress=False)
    run(tmp_path, method="scratch", max_iters=1).fit(progress=False, overwrite=True)  # the way out works


def test_a_failed_write_of_config_or_metrics_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    from pathlib import Path

    from l2t.files import WriteError

    real = Path.write_text

    def full(self, *a, **k):
        if self.name.startswith("config.json"):
            raise OSError(28, "No space left on device")
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(WriteError, match=r"could not write .*config.json \(OSError: \[Errno 28\] No space left"):
        run(tmp_path, method="scratch", max_iters=1).fit(progress=False)
    assert not [p.name for p in (tmp_path / "run").iterdir() if ".tmp" in p.name]
    monkeypatch.setattr(Path, "write_text", real)
    monkeypatch.setattr("builtins.open", lambda *a, **k: (_ for _ in ()).throw(OSError(30, "Read-only file system")))
    with pytest.raises(WriteError, match=r"could not write .*metrics.jsonl \(OSError: \[Errno 30\] Read-only"):
        run(tmp_path, method="scratch", max_iters=1).fit(progress=False, overwrite=True)


def test_the_time_left_of_a_listing_skips_metrics_rows_it_cannot_read(tmp_path):
    rows = [{"epoch": e, "elapsed_s": 10.0 * e} for e in range(1, 6)]
    text = [json.dumps(r) for r in rows] + ['{"epoch": "6", "elapsed_s": 60}', '{"epoch": null}', '{"epo', "[1, 2]"]
    (tmp_path / "metrics.jsonl").write_text("\n".join(text) + "\n")
    assert R.time_left(tmp_path / "metrics.jsonl", 6, 66) == "10 min"  # 60 epochs left at 10 s each


def test_a_broken_lr_choice_file_is_named(tmp_path):
    from l2t.results import read_lr_choice

    (tmp_path / "lr_choice.json").write_text('{"scratch": {"lr": 0.01')
    with pytest.raises(ValueError, match=f"{tmp_path / 'lr_choice.json'} is not readable JSON"):
        read_lr_choice(tmp_path)
    (tmp_path / "lr_choice.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must map each method to its lr choice, got list"):
        read_lr_choice(tmp_path)


def test_pairs_that_start_with_a_dash_reach_l2ts_own_check():
    from l2t.cli import _joined_pairs, _parser, config_from_args

    argv = _joined_pairs(["train", "--pairs", "-1-0", "--T", "3", "--pairs", "4-0"])
    assert argv == ["train", "--pairs=-1-0", "--T", "3", "--pairs", "4-0"]
    assert config_from_args(_parser().parse_args(argv[:4])).pairs == "-1-0"  # then refused as pairs (flags7 above)


def test_reproduce_names_the_run_folder_and_its_own_way_out(tmp_path, monkeypatch):
    from l2t.runfolder import RunFolderError

    class Refused:
        def __init__(self, cfg):
            self.cfg = cfg

        def fit(self, resume):
            raise RunFolderError(f"--out {self.cfg.out} holds another run (epochs=2 there, 200 here)", "--overwrite")

    monkeypatch.setattr(R, "Trainer", Refused)
    cfg = Config(method="scratch", samples_per_class=10)
    with pytest.raises(ValueError) as e:
        R.run_once(cfg, tmp_path / "results", tmp_path / "runs", "cpu")
    folder = tmp_path / "runs" / R.run_id(cfg)
    assert str(e.value) == (
        f"the run folder {folder} holds another run (epochs=2 there, 200 here); move {folder} away to start "
        f"this run over"
    )


def test_evaluating_a_run_whose_config_json_was_edited_says_so(tmp_path):
    from l2t.inspect import load_run

    run(tmp_path, method="scratch", max_iters=1).fit(progress=False)
    config = tmp_path / "run" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "lr": 0.05}))
    with pytest.raises(ValueError, match=r"config.json does not describe the run in its checkpoint.pt \(lr=0.1"):
        load_run(tmp_path / "run", data=tiny_data())


def test_evaluate_scores_the_best_weights_apart_only_when_they_differ_from_the_last(tmp_path, capsys, monkeypatch):
    import l2t.inspect

    run(tmp_path, method="scratch", max_iters=1).fit(progress=False)
    trainer = l2t.inspect.load_run(tmp_path / "run", data=tiny_data())
    monkeypatch.setattr(l2t.inspect, "load_run", lambda *a, **k: trainer)
    scored = []
    monkeypatch.setattr(
        trainer,
        "predict",
        lambda part, labels=None, state=None: (
            scored.append(state)
            or ((torch.zeros(len(part[1]), dtype=torch.long) if state is None else part[1].clone()), 0.0)
        ),
    )
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    same = json.loads(capsys.readouterr().out)
    assert len(scored) == 1 and same["best_val_test_acc"] == same["final_test_acc"]  # the last weights are the best
    trainer.best["state"] = {k: v + 1 if v.is_floating_point() else v for k, v in trainer.best["state"].items()}
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    other = json.loads(capsys.readouterr().out)
    assert len(scored) == 3 and scored[2] is trainer.best["state"] and other["best_val_test_acc"] == 100.0
