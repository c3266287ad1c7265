"""Scoring a target network: predictions in eval mode, accuracy, and a finished run's result."""

import copy
from dataclasses import asdict

import torch
import torch.nn.functional as F

from . import data as D
from .batches import loader
from .runfolder import device_name, git_commit, versions


@torch.no_grad()
def predict(model, part, device, workers=0, state=None, batch_size=500):
    """(predictions, mean cross-entropy) of ``model`` in eval mode, without augmentation, on a data part.

    ``state`` evaluates other weights (e.g. the best-validation ones) instead of the model's own.
    """
    if state is not None:
        model = copy.deepcopy(model)
        model.load_state_dict(state)
    was_training = model.training
    model.eval()
    preds, loss = [], 0.0
    for x, y in loader(part, batch_size, False, device=device, workers=workers):
        x, y = x.to(device), y.to(device)
        logits, _ = model(x)
        preds.append(logits.argmax(1).cpu())
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
    model.train(was_training)
    preds = torch.cat(preds)
    return preds, loss / len(preds)


def percent(preds, labels):
    """Accuracy in percent, rounded to 4 decimals."""
    return round(100.0 * int((preds == labels.cpu()).sum()) / len(labels), 4)


def run_result(trainer, wall_time):
    """A finished run's result.json: best-val epoch and its test accuracy, train fit, collapse check, provenance.

    ``trainer`` is the ``Trainer``; the test set is scored once, with the best-validation weights (Section 4.1).
    """
    test_y = D.labels_of(trainer.data["test"])
    preds, _ = trainer.predict(trainer.data["test"], state=trainer.best["state"])
    counts = torch.bincount(preds, minlength=int(test_y.max()) + 1)
    train_part = trainer.data.get("train_eval", trainer.data["train"])
    train_preds, train_loss = trainer.predict(train_part)
    top_share = float(counts.max()) / len(preds)
    return {
        "config": asdict(trainer.cfg),
        "pairs": [list(p) for p in trainer.pairs],
        "best_val_epoch": trainer.best["epoch"],
        "best_val_acc": trainer.best["val_acc"],
        "test_acc": percent(preds, test_y),
        "final_train_loss": train_loss,
        "final_train_acc": percent(train_preds, D.labels_of(train_part)),
        "test_distinct_classes": int((counts > 0).sum()),
        "test_top_class_share": top_share,
        "collapsed": top_share >= 0.5,
        "iterations": trainer.iteration,
        "epochs_run": trainer.epoch,
        "n_train": len(train_preds),
        "wall_time_s": wall_time,
        "device": device_name(trainer.device),
        "versions": versions(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # the CPU kernels' instruction set
        "data_fingerprint": trainer.data.get("fingerprint"),  # which copy of the dataset (l2t.data.fingerprint)
        "git_commit": (trainer.provenance or {}).get("git_commit", git_commit()),
        "git_dirty": (trainer.provenance or {}).get("git_dirty"),
        "started": (trainer.provenance or {}).get("started"),
    }
