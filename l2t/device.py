"""Where a run computes: the device it asks for, and cuDNN without TF32 for the meta-gradient."""

import torch


def resolve_device(name):
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device must be cpu, cuda or auto, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this PyTorch sees no CUDA GPU; use --device cpu (or auto)")
    return torch.device(name)


def no_tf32():
    """cuDNN with its TF32 convolutions off (no effect on the CPU), other cuDNN settings as they are."""
    cudnn = torch.backends.cudnn
    return cudnn.flags(
        enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic, allow_tf32=False
    )
