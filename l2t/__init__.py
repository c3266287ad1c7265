"""l2t: Learning What and Where to Transfer (Jang et al., ICML 2019), in PyTorch."""

__version__ = "0.1.0"
