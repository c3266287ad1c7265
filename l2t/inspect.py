"""Looking inside a trained L2T-ww run: lambda per pair (where) and channel weights (what), paper Fig. 3(d)."""

import json
from dataclasses import asdict
from pathlib import Path

import torch

from .batches import loader
from .config import config_from_dict, differences
from .runfolder import RunFolderError, read_checkpoint


@torch.no_grad()
def transfer_weights(trainer, part, labels=None, batch_size=500):
    """Mean lambda^{m,n} per pair and mean what-weights w^{m,n} per pair over a data part (or images, labels)."""
    if trainer.what is None:
        raise ValueError(f"method {trainer.cfg.method!r} has no meta-networks to inspect; use an l2t-* method")
    lam_sum, what_sum, n = None, None, 0
    if labels is not None:
        part = (part, labels)
    for x, _ in loader(part, batch_size, False, device=trainer.device, workers=trainer.cfg.workers):
        x = x.to(trainer.device)
        feats = [f for src in trainer.sources for f in src(x)[1]]
        what = [w.sum(0) for w in trainer.what(feats)]
        lam = (
            torch.stack([l.sum() for l in trainer.where(feats)])
            if trainer.where is not None
            else torch.full((len(trainer.pairs),), float(len(x)))
        )
        lam_sum = lam if lam_sum is None else lam_sum + lam
        what_sum = what if what_sum is None else [a + b for a, b in zip(what_sum, what)]
        n += len(x)
    return {
        "pairs": [list(p) for p in trainer.pairs],
        "lambda": (lam_sum / n).tolist(),
        "what": [(w / n).tolist() for w in what_sum],
    }


def load_run(run_dir, device="cpu", data=None):
    """A Trainer restored from a run folder (its config.json and checkpoint.pt)."""
    from .train import Trainer

    run_dir = Path(run_dir)
    if not (run_dir / "checkpoint.pt").exists():
        raise FileNotFoundError(f"no checkpoint.pt in {run_dir}: is it the --out folder of an `l2t train` run?")
    try:
        cfg = config_from_dict(json.loads((run_dir / "config.json").read_text()))
    except (OSError, json.JSONDecodeError, TypeError):  # no config.json, or a broken one: the checkpoint's
        cfg = config_from_dict(read_checkpoint(run_dir / "checkpoint.pt")["config"])
    cfg.device, cfg.cuda_graph = device, False  # graphs are how a run was trained, not what it is
    trainer = Trainer(cfg, data=data)
    try:
        trainer.load(run_dir / "checkpoint.pt")
    except RunFolderError as e:  # config.json says one run, checkpoint.pt holds another
        if not e.changed:
            raise
        raise ValueError(
            f"{run_dir / 'config.json'} does not describe the run in its checkpoint.pt ({e.changed}); "
            f"was it edited? Restore it to the checkpoint's settings"
        ) from None
    return trainer


def load_trained(stem, device="cpu", data=None, sources=None):
    """A Trainer holding a finished run's artefacts: phi from ``<stem>-phi.pt``, the target from ``<stem>-model.pt``.

    ``stem`` is a result file without ``.json`` (``results/figure5-quick/l2t-ww-n25-s0-lr0.01``). Either
    artefact may be missing, not both; the run's config comes from the file found. The target is the run's
    best-validation network (kept in float16, restored to float32); phi is the one at the end of training.
    ``data`` and ``sources`` are handed to the Trainer (by default: the run's own).
    """
    from .train import Trainer

    stem = Path(stem)
    phi_path, model_path = stem.with_name(f"{stem.name}-phi.pt"), stem.with_name(f"{stem.name}-model.pt")
    phi, model = _read_artefact(phi_path, "what"), _read_artefact(model_path, "model")
    if phi is None and model is None:
        raise FileNotFoundError(
            f"neither {phi_path.name} nor {model_path.name} is in {stem.parent}: "
            f"run `l2t reproduce` (with --keep-model for the target) to make them"
        )
    if phi is not None and model is not None:  # the two files must be one run's, not two runs' side by side
        changed = differences(asdict(config_from_dict(phi["config"])), asdict(config_from_dict(model["config"])))
        if changed:
            raise ValueError(
                f"{phi_path.name} and {model_path.name} come from different runs ({changed}, "
                f"phi there, model here); copy the pair of one run"
            )
    cfg = config_from_dict((model or phi)["config"])
    cfg.device, cfg.cuda_graph = device, False
    trainer = Trainer(cfg, data=data, sources=sources)
    if phi is not None:
        trainer.what.load_state_dict(phi["what"])
        if trainer.where is not None:
            trainer.where.load_state_dict(phi["where"])
    if model is not None:
        trainer.model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in model["model"].items()})
    trainer.model.eval()
    return trainer


def _read_artefact(path, key):
    """The dict saved at ``path`` (None if there is none); one clear error for a file that is not an artefact."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(
            f"{path} is not a readable l2t artefact ({type(e).__name__}); was it cut off mid-copy?"
        ) from None
    if not isinstance(state, dict) or not {key, "config"} <= set(state):
        raise ValueError(f"{path} is not an l2t artefact: it lacks {key!r} or 'config'")
    return state
