"""Models: the paper's source checkpoint loads strictly and sees CIFAR-10; VGG9 and ResNet feature shapes."""

import pytest
import torch
from conftest import needs_cifar10, needs_source

from l2t.models import build_model, image_size, load_source
from l2t.models.source import PAPER_SOURCE_SHA256


@needs_source
def test_paper_checkpoint_loads_strictly_with_documented_features():
    source = load_source()  # verifies the sha256 and loads with strict=True
    assert not source.training and not any(p.requires_grad for p in source.parameters())
    logits, feats = source(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 200) and len(feats) == 15
    expected = [(16, 32)] * 5 + [(32, 16)] * 5 + [(64, 8)] * 5
    assert [(f.shape[1], f.shape[2]) for f in feats] == expected


@needs_source
@needs_cifar10
def test_paper_source_features_separate_cifar10_classes():
    from l2t import data as D

    source = load_source()
    test = D.load_dataset("cifar10", train=False)
    idx = D.per_class_subset(test.targets, 40, seed=0)
    x, y = D.decode(test, idx)
    with torch.no_grad():
        logits, _ = source(D.normalize(x))
        pooled, _ = source.embed(D.normalize(x))
    assert len(logits.argmax(1).unique()) > 10  # not a constant prediction
    # nearest class mean, fitted on half the images, evaluated on the other half
    fit = torch.arange(len(y)) % 2 == 0
    means = torch.stack([pooled[fit & (y == c)].mean(0) for c in range(10)])
    pred = torch.cdist(pooled[~fit], means).argmin(1)
    acc = (pred == y[~fit]).float().mean().item()
    assert acc > 0.3, f"nearest-class-mean accuracy {acc:.2f} should beat chance (0.10) by a wide margin"


def test_checkpoint_with_wrong_sha_or_keys_is_refused(tmp_path):
    model = build_model("resnet20", 10)
    path = tmp_path / "ckpt.pth.tar"
    torch.save({"state_dict": model.state_dict(), "num_classes": 10}, path)
    with pytest.raises(ValueError, match="sha256"):
        load_source(path, "resnet20", expected_sha256=PAPER_SOURCE_SHA256)
    with pytest.raises(ValueError, match="does not fit resnet32"):
        load_source(path, "resnet32")
    assert load_source(path, "resnet20").fc.out_features == 10


def test_vgg9_features():
    logits, feats = build_model("vgg9", 10)(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]


@pytest.mark.parametrize("depth,n", [(20, 9), (32, 15), (44, 21), (56, 27)])
def test_cifar_resnet_feature_count(depth, n):
    model = build_model(f"resnet{depth}", 10)
    assert len(model(torch.randn(1, 3, 32, 32))[1]) == n == len(model.feature_channels)


def test_imagenet_resnet_features():
    model = build_model("resnet18", 5)
    logits, feats = model(torch.randn(1, 3, 224, 224))
    assert logits.shape == (1, 5) and image_size("resnet18") == 224
    assert [tuple(f.shape[1:]) for f in feats] == [
        (64, 56, 56),
        (64, 56, 56),
        (128, 28, 28),
        (256, 14, 14),
        (512, 7, 7),
    ]


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'vgg10'.*vgg9"):
        build_model("vgg10", 10)


def test_a_download_of_the_paper_source_with_another_hash_is_refused_and_not_kept(tmp_path, monkeypatch):
    """torch.hub's own download, fed other bytes than the paper's checkpoint: its sha256 check refuses them."""
    import email.message
    import io

    from l2t.models.source import PAPER_SOURCE_FILE, paper_source_path

    class Response(io.BytesIO):
        def info(self):
            return email.message.Message()  # no Content-Length, as a chunked reply

    monkeypatch.setattr(torch.hub, "urlopen", lambda request: Response(b"not the checkpoint" * 1000))
    with pytest.raises(FileNotFoundError, match="could not be downloaded .*hash"):
        paper_source_path(tmp_path)
    assert list((tmp_path / "sources").iterdir()) == []  # neither the file nor a partial download
    assert not (tmp_path / "sources" / PAPER_SOURCE_FILE).exists()
