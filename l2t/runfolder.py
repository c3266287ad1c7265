"""A run's folder: refusing what is not this run's, moving old files aside, checkpoints, metrics, provenance.

A run folder holds ``config.json``, ``metrics.jsonl`` (one JSON row per epoch), ``checkpoint.pt`` (atomic) and,
once finished, ``result.json``. Nothing here trains; ``l2t.train.Trainer`` calls these around its loop.
"""

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from .config import RUN_KEYS, differences
from .files import atomic_save, atomic_write_text

OVERWRITE = "--overwrite to move its files aside"  # the way out that `l2t train` offers


class RunFolderError(ValueError):
    """What a run folder holds that stops a run (``problem``), and the way out (``fix``), as one line."""

    def __init__(self, problem, fix, changed=""):
        super().__init__(f"{problem}; {fix}")
        self.problem, self.changed = problem, changed  # changed: the settings that differ, if that is the problem


def check_writable(out):
    """``out`` can hold a run's files (made if missing); else one ValueError naming it, before any work."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder; choose a folder for the run's files")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".write-check").touch()
        (out / ".write-check").unlink()
    except OSError as e:  # a parent that is a file, a read-only folder: before any work, in one line
        raise ValueError(f"--out {out} cannot hold the run's files ({e.strerror or e}); choose another --out") from None


def prepare_out(out, config, resume, overwrite):
    """Whether to resume from ``out``'s checkpoint; refuses or moves aside what ``out`` holds (``Trainer.fit``).

    ``config`` is this run's config dict. Another run's files, files no l2t run wrote, or this run's files
    without ``resume`` are refused, unless ``overwrite``, which moves them into ``out/replaced-<time>/``.
    """
    ckpt = out / "checkpoint.pt"
    old = [p for p in (ckpt, out / "metrics.jsonl", out / "result.json", out / "config.json") if p.exists()]
    if not old:
        return False
    if overwrite:
        aside = out / time.strftime("replaced-%Y%m%d-%H%M%S")
        aside.mkdir()
        for p in old:
            os.replace(p, aside / p.name)
        print(f"l2t: moved the old run's files in {out} aside to {aside}", file=sys.stderr)
        return False
    saved = read_config(out)  # after the overwrite branch: it may read a whole checkpoint
    if not RUN_KEYS <= saved.keys():  # no l2t run config in config.json or checkpoint.pt: not l2t's files
        raise RunFolderError(
            f"--out {out} holds {', '.join(p.name for p in old)} that no l2t run of this kind wrote "
            f"(no run config there)",
            f"choose another --out, or {OVERWRITE}",
        )
    changed = differences(saved, config)
    if changed:
        raise RunFolderError(f"--out {out} holds another run ({changed})", f"choose another --out, or {OVERWRITE}")
    if ckpt.exists() and checkpoint_epoch(ckpt) is None:  # empty or cut off: say so, not "add --resume"
        read_checkpoint(ckpt)  # its one line names the file and the way out
    if resume and ckpt.exists():
        return True
    if resume and (out / "result.json").exists():  # finished, its checkpoint gone: never redo it silently
        raise RunFolderError(
            f"--out {out} holds this run's finished result.json but no checkpoint to resume from",
            f"use it as it is, or {OVERWRITE} and train again",
        )
    if resume:  # this run's files, but no checkpoint to continue from: start again, and say so
        print(f"l2t: {out} has no checkpoint yet; starting this run from the beginning", file=sys.stderr)
        return False
    state = "a checkpoint" if ckpt.exists() else "files"
    raise ValueError(
        f"--out {out} already holds {state} of this run; add --resume to continue it, or "
        f"--overwrite to start over (the old files are moved aside)"
    )


def keep_metrics(path, epoch, resume):
    """Rewrite ``metrics.jsonl`` with the rows before ``epoch`` (the checkpoint's); rows past it are redone."""
    lines = path.read_text().splitlines() if (resume and path.exists()) else []
    garbled = [i + 1 for i, l in enumerate(lines) if epoch_of(l) == float("inf") and i < epoch]
    if garbled:  # a cut-off last row is normal after a kill; a bad row before it is not: say which
        print(
            f"l2t: {path} row(s) {', '.join(map(str, garbled))} unreadable, dropped; the epochs "
            f"they held keep no metrics row",
            file=sys.stderr,
        )
    atomic_write_text(path, "".join(l + "\n" for l in lines if epoch_of(l) < epoch))


def epoch_of(line):
    """The epoch of a metrics.jsonl row; infinity for a row a kill cut off mid-write (it is dropped)."""
    try:
        epoch = json.loads(line)["epoch"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return float("inf")
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else float("inf")


def checkpoint_epoch(path):
    """The epoch a checkpoint was saved at, reading only its small header (mmap); None if it is unreadable."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"]
    except Exception:
        return None


def read_checkpoint(path, device="cpu"):
    """A run's ``checkpoint.pt`` as a dict, or one clear ValueError naming the file (truncated, foreign, not one)."""
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise RunFolderError(f"{path} is empty (0 bytes): a save was cut off", f"start the run again with {OVERWRITE}")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise RunFolderError(
            f"{path} is not a readable l2t checkpoint "
            f"({type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]}); "
            f"it may be truncated by a kill during a save",
            f"start the run again with {OVERWRITE}",
        ) from None
    if not isinstance(state, dict) or not {"epoch", "model", "config"} <= set(state):
        raise ValueError(
            f"{path} is not an l2t run checkpoint (no epoch/model/config); it may be a source "
            f"network's checkpoint: pass that with --source arch:PATH"
        )
    return state


def read_config(out):
    """The config a run folder was made with (its config.json, else its checkpoint's), or {} if unreadable."""
    try:
        return json.loads((out / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        pass
    try:
        return read_checkpoint(out / "checkpoint.pt")["config"]
    except (ValueError, OSError, KeyError):
        return {}


STATE_PARTS = ("model", "regressors", "lwf_head", "what", "where", "optimizer", "meta_optimizer", "scheduler")


def save_checkpoint(trainer, path):
    """Write ``trainer``'s whole state to ``path`` atomically (to a temporary file, then rename)."""
    state = {
        "epoch": trainer.epoch,
        "iteration": trainer.iteration,
        "best": trainer.best,
        "elapsed_s": trainer.elapsed,
        "generator": trainer.generator.get_state(),
        "config": asdict(trainer.cfg),
        "provenance": json.dumps(trainer.provenance),
    }
    for name in STATE_PARTS:
        obj = getattr(trainer, name)
        state[name] = None if obj is None else obj.state_dict()
    atomic_save(state, path)


def load_checkpoint(trainer, path):
    """Restore into ``trainer`` everything ``save_checkpoint`` wrote, refusing another run's checkpoint."""
    state = read_checkpoint(path, trainer.device)
    saved, now = state.get("config") or {}, asdict(trainer.cfg)
    changed = differences(saved, now)
    if changed:  # e.g. another --epochs would keep the old cosine schedule
        raise RunFolderError(
            f"{path} is a checkpoint of another run: {changed}",
            "resume with the same settings, or start over with another --out",
            changed,
        )
    for name in STATE_PARTS:
        obj = getattr(trainer, name)
        if obj is not None and name.endswith("optimizer"):  # checkpoints from before fused optimizers
            for group in state[name]["param_groups"]:
                group.update(fused=True, foreach=None)
        if obj is not None:
            obj.load_state_dict(state[name])
    trainer.generator.set_state(state["generator"].cpu())
    trainer.epoch, trainer.iteration, trainer.best = state["epoch"], state["iteration"], state["best"]
    trainer.elapsed = state.get("elapsed_s", 0.0)  # checkpoints before this field: time starts again
    trainer.provenance = json.loads(state["provenance"]) if state.get("provenance") else None


def provenance():
    """Where and when a run started: git commit, whether the checkout had changes, and the start time."""
    return {"git_commit": git_commit(), "git_dirty": git_dirty(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def device_name(device):
    """A readable name of the device: the GPU's name or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def versions():
    """Versions of the packages a result depends on."""
    import torchvision

    from . import __version__

    return {
        "l2t": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
    }


def git_dirty():
    """Whether the checkout has uncommitted changes to tracked files (None outside a checkout)."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return bool(out.stdout.strip()) if out.returncode == 0 else None
    except Exception:
        return None


def git_commit():
    """The current git commit of the checkout, or None outside one."""
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
            ).stdout.strip()
            or None
        )
    except Exception:
        return None


def save_phi(trainer, path):
    """Write a trainer's meta-networks phi (what/where, Sec. 3.1) with their pairs: a trained run's ~0.1 MB artefact."""
    if trainer.what is None:
        raise ValueError(f"{trainer.cfg.method} has no meta-networks to save")
    state = {
        "pairs": [list(p) for p in trainer.pairs],
        "what": trainer.what.state_dict(),
        "where": None if trainer.where is None else trainer.where.state_dict(),
        "config": asdict(trainer.cfg),
    }
    atomic_save(state, path)


def save_model(trainer, path):
    """Write a trainer's best-validation target network (the one the test accuracy scores) in float16."""
    state = trainer.best["state"] if trainer.best["state"] is not None else trainer.model.state_dict()
    model = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    atomic_save(
        {
            "model": model,
            "target": trainer.cfg.target,
            "num_classes": trainer.num_classes,
            "best_val_epoch": trainer.best["epoch"],
            "config": asdict(trainer.cfg),
        },
        path,
    )
