"""The paper's split files (``splits/<dataset>-<split>.json`` under the data root): read, checked, fetched.

The authors publish train/val/test indices for CIFAR-100, STL-10, CUB-200 and Stanford Dogs as torch-saved
tuples; l2t keeps them as JSON and fetches a missing one from the authors' repository, checked by its sha256.
"""

import hashlib
import io
import json
from pathlib import Path

import torch

from .files import data_root

SPLITS_URL = "https://github.com/alinlab/L2T-ww/raw/master/split/{dataset}-{split}"

PAPER_SPLITS = ("cifar100", "stl10", "cub200", "dog")  # datasets with the paper's split files


def paper_split(dataset, split, root=None):
    """Indices of the paper's train/val/test split (``splits/<dataset>-<split>.json`` under the data root)."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    path = Path(root or data_root()) / "splits" / f"{dataset}-{split}.json"
    if not path.exists() and dataset not in PAPER_SPLITS:
        raise ValueError(
            f"split paper: there is no {path}, and the paper published splits only for "
            f"{', '.join(PAPER_SPLITS)}; use split auto or none for {dataset}"
        )
    if not path.exists():
        _download_split(dataset, split, path)
    try:
        indices = json.loads(path.read_text())["indices"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"split file {path} is not JSON with an 'indices' list ({type(e).__name__}: {e})") from None
    if not isinstance(indices, list):
        raise ValueError(f"split file {path}: 'indices' must be a list of image indices")
    return indices


# sha256 of the authors' split files as published (alinlab/L2T-ww, split/<dataset>-<split>)
SPLIT_SHA256 = {
    "cifar100-train": "47da3ecc83af79646e3b1c2d22ee85a514806240780bf0118326103602a6dc08",
    "cifar100-val": "b6b476cf23a17adc01d52a844629fa1aaa77c2faa7081cae8818045399be6df6",
    "cifar100-test": "e732eaf2f2e9f8d5162a1d6d4c0448119fa4d4f53a506a1e6d7f774d036623a4",
    "stl10-train": "5cafbeaa0944448a4ddd7d3cf616f45a805c44d0932c8a168090e30544c93a6b",
    "stl10-val": "3fcd3ce45607b49a6305857b537a418d27705b8e5b4d99c47d0f92d18c43bd93",
    "stl10-test": "78f119c5f82886db41f6d22ded8ac044d9603ea18f3cc004be48c0cc0e835d08",
    "cub200-train": "43f84aa4c9bcc4e2e4b8570d3b83f3e760ca03f7e4d48da899c043bb4e9aebd3",
    "cub200-val": "47e2be8e929b40a9026195ede03ac56722027bd613153886ae5873e35543d4a9",
    "cub200-test": "33bec6724cc7cecb9cecf5349410a8b82c4ece36bd45cedd9197a0aab1b990a8",
    "dog-train": "d7669a70ef90fdc625358b397087c9dacdff9c2659f5799efb26984c5ae3eea4",
    "dog-val": "0e1708afa025d5bdd40ae22b108c0af02f66b93e17287889a38856c72e2cacb4",
    "dog-test": "1343c2081da68747e9e1c91a430a20a40559d86f961133bf3d4f698d3ac33a2b",
}


def read_authors_split(path, name=None):
    """``(classes, indices)`` of one of the authors' split files (a torch-saved tuple of two lists), checked.

    Loaded with ``weights_only=True`` (no arbitrary unpickling); with ``name`` (e.g. ``stl10-train``) the
    file's sha256 must be the published file's.
    """
    data = Path(path).read_bytes()
    if name is not None and hashlib.sha256(data).hexdigest() != SPLIT_SHA256[name]:
        raise ValueError(f"split file {path} is not the authors' {name} (sha256 differs); delete it and fetch it again")
    try:
        obj = torch.load(io.BytesIO(data), weights_only=True)
        classes, indices = obj
        return [int(c) for c in classes], [int(i) for i in indices]
    except Exception as e:
        raise ValueError(
            f"split file {path} is not one of the authors' (classes, indices) split files ({type(e).__name__}: {e})"
        ) from None


def _download_split(dataset, split, path):
    url = SPLITS_URL.format(dataset=dataset, split=split)
    tmp = Path(str(path) + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(tmp), progress=False)
    except Exception as e:
        raise FileNotFoundError(
            f"split file {path} is missing and {url} could not be fetched "
            f"({type(e).__name__}: {e}); set L2T_DATA to a folder with splits/"
        ) from None
    try:
        classes, indices = read_authors_split(tmp, f"{dataset}-{split}")
    finally:
        tmp.unlink(missing_ok=True)
    path.write_text(json.dumps({"dataset": dataset, "split": split, "classes": classes, "indices": indices}))


def check_split(dataset, parts):
    """The paper's split files hold integer indices in range, and train and val do not overlap."""
    for name, (idx, data) in parts.items():
        if not idx or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(data) for i in idx):
            raise ValueError(
                f"splits/{dataset}-{name}.json: its indices must be integers in [0, {len(data)}), "
                f"and there must be some"
            )
    if set(parts["train"][0]) & set(parts["val"][0]):
        raise ValueError(f"splits/{dataset}-train.json and -val.json share images; they must be disjoint")
