"""Extra source networks for Table 2: trained from scratch on a dataset, saved as the paper's checkpoints are.

``l2t train-source`` and ``l2t reproduce table2`` call these; ``l2t.models.load_source`` reads the result.
"""

import os
import time
from pathlib import Path

from .config import Config
from .files import atomic_save
from .train import Trainer


def ensure_source(spec, scale, device):
    """Train a missing extra source network (``l2t train-source``) in the paper's checkpoint format."""
    arch, path = spec.split(":", 1)
    if Path(path).exists():
        return
    dataset = "cifar10" if "cifar10" in Path(path).name else "tinyimagenet"
    seed = 1 if "seed1" in Path(path).name else 0
    train_source(arch, dataset, path, seed=seed, device=device, epochs=200 if scale == "paper" else 2)


def train_source(
    arch, dataset, path, seed=0, device="auto", epochs=200, max_iters=None, val_per_class=50, overwrite=False
):
    """Train a source network (scratch on the full dataset) and save it as the paper's checkpoints are saved.

    An existing file at ``path`` (the paper's own checkpoint, say) is never written over: it is refused before
    training, or with ``overwrite`` moved aside to ``<path>.replaced-<time>`` once the new one is ready.
    """
    path = Path(path)
    if path.is_dir() or not path.name:
        raise ValueError(f"--out {path} is a folder; give the checkpoint file to write, e.g. {path}/source.pth.tar")
    if path.exists() and not overwrite:
        raise ValueError(
            f"--out {path} exists and l2t never writes over a checkpoint; choose another --out, or "
            f"--overwrite to move the old file aside"
        )
    parent = next(q for q in [path.parent, *path.parent.parents] if q.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ValueError(f"--out {path}: {parent} is {'not a folder' if not parent.is_dir() else 'not writable'}")
    cfg = Config(
        method="scratch",
        dataset=dataset,
        target=arch,
        seed=seed,
        device=device,
        epochs=epochs,
        out=str(Path("runs") / "sources" / Path(path).stem),
        max_iters=max_iters,
        val_per_class=val_per_class,
    )
    trainer = Trainer(cfg)
    result = trainer.fit(resume=True)
    state = trainer.best["state"] or trainer.model.state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():  # --overwrite: the old file is kept beside the new one
        os.replace(path, path.with_name(f"{path.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"))
    atomic_save(
        {
            "epoch": result["best_val_epoch"],
            "best": result["best_val_acc"],
            "test_prec": result["test_acc"],
            "state_dict": state,
            "num_classes": trainer.model.fc.out_features,
        },
        path,
    )
    return result
