"""A second, faithful copy of CIFAR-10 in torchvision's own on-disk format, made offline from the JPEG copy.

A reader who clones the book has no ``../shared``: ``l2t.data.load_dataset`` finds no ImageFolder and loads
torchvision's ``cifar-10-batches-py``. This writes such a copy from the data root's JPEG images, each pixel
moved by +-1 (fixed seed) and the images in another fixed order, so that every stored notebook output can be
checked against a copy whose pixels and indices both differ, the way a reader's do::

    python tests/torchvision_copy.py SRC_ROOT DST_ROOT

``DST_ROOT`` gets ``cifar10/cifar-10-batches-py/`` plus links to ``SRC_ROOT``'s ``sources/`` and ``splits/``,
and ``torchvision-md5.json``: torchvision checks its batch files against the md5 sums of the official
download, which a rewritten copy cannot match, so ``tests/torchvision_site/sitecustomize.py`` swaps in
these sums (``L2T_TORCHVISION_MD5``); every other line of torchvision's loading runs as on a reader's machine.
"""

import hashlib
import json
import pickle
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from l2t.data import decode, load_dataset  # noqa: E402

BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def perturbed(images, labels, rng):
    """Every pixel +-1 (towards the inside at 0 and 255), images in a new random order."""
    step = rng.choice(np.array([-1, 1], np.int16), size=images.shape)
    step[images == 0], step[images == 255] = 1, -1
    order = rng.permutation(len(images))
    return (images.astype(np.int16) + step).astype(np.uint8)[order], labels[order]


def write_batch(path, images, labels, name):
    """One torchvision/CIFAR batch file: rows of 3,072 bytes (R, G, B planes), labels, file names."""
    entry = {
        "batch_label": name,
        "labels": [int(v) for v in labels],
        "data": images.reshape(len(images), -1),
        "filenames": [f"{i:05d}.png" for i in range(len(images))],
    }  # str keys, as torchvision reads them
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)
    return hashlib.md5(path.read_bytes()).hexdigest()


def main(src, dst, seed=0):
    src, dst = Path(src).resolve(), Path(dst).resolve()
    out = dst / "cifar10" / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    md5 = {}
    for train in (True, False):
        dataset = load_dataset("cifar10", train=train, root=src, download=False)
        images, labels = (t.numpy() for t in decode(dataset, range(len(dataset))))  # [N, 3, 32, 32] uint8
        images, labels = perturbed(images, labels, rng)
        if train:
            for name, part in zip(BATCHES, np.array_split(np.arange(len(images)), len(BATCHES))):
                md5[name] = write_batch(out / name, images[part], labels[part], name)
        else:
            md5["test_batch"] = write_batch(out / "test_batch", images, labels, "testing batch 1 of 1")
            classes = list(dataset.classes)
    with open(out / "batches.meta", "wb") as f:
        pickle.dump({"label_names": classes, "num_cases_per_batch": 10000, "num_vis": 3072}, f, protocol=2)
    md5["batches.meta"] = hashlib.md5((out / "batches.meta").read_bytes()).hexdigest()
    for name in ("sources", "splits"):
        link = dst / name
        if not link.exists():
            link.symlink_to(src / name)
    (dst / "torchvision-md5.json").write_text(json.dumps(md5, indent=1))
    print(f"wrote {out} ({len(md5)} files)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tests/torchvision_copy.py SRC_ROOT DST_ROOT")
    main(*sys.argv[1:])
