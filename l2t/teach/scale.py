"""The notebooks' three scales, chosen by the reader.

quick (a CPU), gpu (one Colab GPU), paper (the paper's recipes).
"""
SCALES = ("quick", "gpu", "paper")


def device_for(scale):
    """The device a notebook scale runs on: the CPU for ``quick``, a CUDA GPU for ``gpu`` and ``paper``."""
    if scale not in SCALES:
        raise ValueError(f"SCALE = {scale!r} is not one of {', '.join(map(repr, SCALES))}")
    if scale == "quick":
        return "cpu"
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError(f"SCALE = {scale!r} needs a CUDA GPU and none is visible. On Colab choose "
                           "Runtime > Change runtime type > GPU, then run the notebook again; or set SCALE = 'quick'.")
    return "cuda"
