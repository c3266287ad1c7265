"""l2t.teach.quick: small fixed splits for CPU-scale runs."""

import torch
from conftest import needs_cifar10

from l2t.teach.quick import small_data


@needs_cifar10
def test_small_data_sizes_disjoint_and_fixed():
    a = small_data("cifar10", per_class=2, val_per_class=1, test_per_class=1, seed=0)
    b = small_data("cifar10", per_class=2, val_per_class=1, test_per_class=1, seed=1, exclude=a["indices"]["train"])
    assert a["train"][0].shape == (20, 3, 32, 32) and a["train"][0].dtype == torch.uint8
    assert torch.bincount(a["train"][1]).tolist() == [2] * 10
    assert len(a["val"][1]) == 10 and len(a["test"][1]) == 10
    assert not set(a["indices"]["train"]) & set(a["indices"]["val"])
    assert not set(a["indices"]["train"]) & set(b["indices"]["train"])
    assert a["indices"]["test"] == b["indices"]["test"]  # the test subset does not depend on the seed
    assert torch.equal(a["test"][0], b["test"][0])
