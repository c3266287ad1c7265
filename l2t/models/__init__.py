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


__all__ = ["CifarResNet", "VGG", "TorchvisionResNet", "MODELS", "build_model", "image_size",
           "load_source", "PAPER_SOURCE_SHA256", "PAPER_SOURCE_URL"]
