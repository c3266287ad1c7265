"""Networks used in the paper; every model's ``forward`` returns ``(logits, features)``."""

from .resnet_cifar import CifarResNet
from .resnet_imagenet import TorchvisionResNet
from .source import PAPER_SOURCE_SHA256, PAPER_SOURCE_URL, load_source
from .vgg import VGG

# name -> (constructor(num_classes, pretrained), input image size)
MODELS = {
    "resnet20": (lambda c, p=False: CifarResNet(20, c), 32),
    "resnet32": (lambda c, p=False: CifarResNet(32, c), 32),
    "resnet44": (lambda c, p=False: CifarResNet(44, c), 32),
    "resnet56": (lambda c, p=False: CifarResNet(56, c), 32),
    "vgg9": (lambda c, p=False: VGG(num_classes=c), 32),
    "resnet18": (lambda c, p=False: TorchvisionResNet("resnet18", c, p), 224),
    "resnet34": (lambda c, p=False: TorchvisionResNet("resnet34", c, p), 224),
}


def build_model(name, num_classes, pretrained=False):
    """A model by name (``resnet20/32/44/56``, ``vgg9``, ``resnet18/34``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name][0](num_classes, pretrained)


def image_size(name):
    """The input resolution a model is built for (32 or 224)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name][1]


def build_source(arch, path, sha256=None):
    """A frozen source: ``path`` a checkpoint in the paper's format (checked against ``sha256`` when given),
    ``None`` the paper's own, or ``imagenet``."""
    if path == "imagenet":  # torchvision's ImageNet weights (downloaded when online)
        return build_model(arch, 1000, pretrained=True).eval().requires_grad_(False)
    return load_source(path, arch, expected_sha256=sha256)


def source_specs(specs):
    """``arch:paper``, ``arch:imagenet`` or ``arch:PATH[#SHA256]`` -> (arch, path or None, sha256 or None)."""
    out = []
    for spec in specs:
        arch, _, path = spec.partition(":")
        path, _, digest = path.partition("#")
        out.append((arch, None if path in ("", "paper") else path, digest.lower() or None))
    return out


__all__ = [
    "CifarResNet",
    "VGG",
    "TorchvisionResNet",
    "MODELS",
    "build_model",
    "image_size",
    "load_source",
    "build_source",
    "source_specs",
    "PAPER_SOURCE_SHA256",
    "PAPER_SOURCE_URL",
]
