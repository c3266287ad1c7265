"""Small fixed data splits for the book's CPU-scale runs (the limited-data setting of the paper's Figure 5)."""

from .. import data as D


def small_data(dataset="cifar10", per_class=10, val_per_class=10, test_per_class=50, seed=0, root=None, exclude=()):
    """``{'train', 'val', 'test'} -> (uint8 images, labels)``: N train images per class (Fig. 5).

    With a disjoint val split and a fixed test subset.

    ``out['indices']`` holds the chosen indices of each split (e.g. to pass as ``exclude`` for other data).
    Train and validation images come from the training set and never overlap (nor meet ``exclude``); the
    test images are ``test_per_class`` per class of the test set, the same for every ``seed``. The dict is
    what ``Trainer(cfg, data=...)`` takes.
    """
    train_set = D.load_dataset(dataset, train=True, root=root)
    test_set = D.load_dataset(dataset, train=False, root=root)
    train_idx, val_idx = D.split_indices(train_set.targets, per_class, val_per_class, seed, exclude=exclude)
    test_idx = D.per_class_subset(test_set.targets, test_per_class, 0)
    return {
        "train": D.decode(train_set, train_idx),
        "val": D.decode(train_set, val_idx),
        "test": D.decode(test_set, test_idx),
        "indices": {"train": train_idx, "val": val_idx, "test": test_idx},
    }
