"""Loading a frozen source network S from a checkpoint in the paper's format."""

import hashlib
import os
from pathlib import Path

import torch

from ..files import data_root

PAPER_SOURCE_URL = "https://github.com/alinlab/L2T-ww/raw/master/logs/tinyimagenet-200-resnet32/0/model_best.pth.tar"
PAPER_SOURCE_FILE = "tinyimagenet-200-resnet32.pth.tar"
PAPER_SOURCE_SHA256 = "049f81f8bea8504e90818d6c614f15c485ac2d891348330b433110e161f66d68"


def sha256(path):
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def paper_source_path(root=None):
    """Where the paper's ResNet32-TinyImageNet checkpoint lives under the data root; downloads it if online."""
    path = Path(root or data_root()) / "sources" / PAPER_SOURCE_FILE
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(
                PAPER_SOURCE_URL, str(path) + ".part", hash_prefix=PAPER_SOURCE_SHA256, progress=True
            )  # a wrong or cut-off download is refused, not kept
            os.replace(str(path) + ".part", path)
        except Exception as e:  # offline, or the host refused
            raise FileNotFoundError(
                f"The paper's source checkpoint is not at {path} and could not be downloaded "
                f"({type(e).__name__}: {e}). Download {PAPER_SOURCE_URL} and save it as {path}, "
                f"or set L2T_DATA to a folder holding sources/{PAPER_SOURCE_FILE}."
            ) from None
    return path


def load_source(path=None, arch="resnet32", expected_sha256=None, device="cpu"):
    """Load a frozen source network from a ``{'state_dict', 'num_classes'}`` checkpoint (strict keys).

    ``path=None`` means the paper's ResNet32-TinyImageNet source, found under the data root (or downloaded),
    and its sha256 is verified. The model is returned in eval mode with ``requires_grad=False``.
    """
    from . import build_model

    if path is None:
        path, expected_sha256 = paper_source_path(), expected_sha256 or PAPER_SOURCE_SHA256
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"source checkpoint {path} does not exist")
    if expected_sha256 is not None:
        digest = sha256(path)
        if digest != expected_sha256:
            raise ValueError(
                f"sha256 of {path} is {digest}, expected {expected_sha256}: the file is "
                f"corrupt or a different checkpoint; delete it and download {PAPER_SOURCE_URL}"
            )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, random bytes, or a pickle that is not plain tensors
        raise ValueError(
            f"source {path} is not a readable checkpoint ({type(e).__name__}); it may be "
            f"truncated or not a checkpoint at all: download or copy it again"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError(f"{path} is not a checkpoint in the paper's format (a dict with 'state_dict')")
    state = ckpt["state_dict"]
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise ValueError(f"source {path} has no classifier weights (fc.weight): not a CIFAR/ImageNet ResNet checkpoint")
    num_classes = ckpt.get("num_classes") or state["fc.weight"].shape[0]
    model = build_model(arch, num_classes)
    ours, theirs = set(model.state_dict()), set(state)
    if ours != theirs:
        raise ValueError(
            f"checkpoint {path} does not fit {arch}: missing keys {sorted(ours - theirs)[:5]}, "
            f"unexpected keys {sorted(theirs - ours)[:5]}; pass the architecture it was saved from"
        )
    model.load_state_dict(state, strict=True)
    model.eval().requires_grad_(False)
    return model.to(device)
