"""The settings of a run (``Config``), each checked by its type and range before any work, with its help text.

``Config``'s defaults are the paper's 32x32 settings (Section 4.1, its code); the command line, a YAML file
(``--config``) and a stored run's ``config.json`` all become a ``Config`` here.
"""

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from .lookahead import UNREACHED
from .methods import METHODS
from .pairs import NAMES

HOW_TO_RUN = ("device", "cuda_graph", "workers", "out", "ckpt_every", "max_iters", "eval_test")  # not what a run is
BN_UPDATES = ("once", "authors")  # how often an L2T iteration moves the target's BatchNorm running statistics
RUN_KEYS = {"method", "dataset", "target", "epochs", "lr", "seed"}  # a config.json without them is not l2t's
SPLITS = ("auto", "paper", "none")
META_ORDERS = ("exact", "first")
CONFIGS = Path(__file__).parent / "configs"  # the packaged configs, by name: --config figure5-quick


@dataclass
class Config:
    """Everything a run depends on; defaults are the paper's 32x32 settings (Section 4.1, its code)."""

    method: str = "l2t-ww"
    dataset: str = "cifar10"
    target: str = "vgg9"
    sources: list = field(default_factory=lambda: ["resnet32:paper"])  # "arch:paper" or "arch:path"
    pairs: str = None  # overrides the method's ready-made pairs, e.g. "4-0,9-1"
    samples_per_class: int = None
    split: str = "auto"  # "paper": the paper's split files; "auto": paper split if the dataset has one;
    # "none": hold out val_per_class training images per class instead
    val_per_class: int = 100  # validation images per class taken from the training set (no paper split)
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    beta: float = 0.5
    T: int = 2
    meta_lr: float = 1e-4
    meta_weight_decay: float = 1e-4
    meta_every: int = 1  # update phi every k-th iteration (1 = Algorithm 1 exactly)
    meta_order: str = "exact"  # "first": cheaper meta-gradient without Hessian terms (an approximation)
    lookahead_unreached: str = "zero-grad"  # lookahead: a parameter a step's loss misses gets g = 0 (the authors'
    # rule: momentum and weight decay still move it); "kept": it stays (PyTorch 2's SGD)
    bn_updates: str = "once"  # BatchNorm running statistics per iteration: "once" (line 4 only), or "authors":
    # also a train-mode forward at theta_0 after the meta-step, as the authors' code
    bf16: bool = False  # bf16 autocast for the first-order parts (source pass, line-4 step);
    # lookahead stays fp32
    cuda_graph: bool = False  # replay each iteration as CUDA graphs (l2t.cudagraph); CUDA only
    at_beta: float = 1e3
    lwf_weight: float = 1.0
    seed: int = 0
    device: str = "auto"
    eval_every: int = 1
    ckpt_every: int = 1
    eval_test: bool = False  # also evaluate the test set at every evaluation (cheap on a GPU)
    max_iters: int = None  # stop early after this many iterations (smoke tests)
    workers: int = 2  # DataLoader workers (224x224 datasets only)
    out: str = "runs/default"

    def __post_init__(self):
        """Every field by its type and range, checked before any data is read or any step is taken."""
        self._check_types()
        self._check_ranges()

    def _check_types(self):
        """Each field of its declared type (None only where None is the default); names for every choice."""
        for f in fields(self):
            value = getattr(self, f.name)
            if not (value is None and f.default is None) and not _is_a(value, f.type):
                raise ValueError(f"{f.name.replace('_', '-')} must be {_TYPE_NAMES[f.type]}, got {value!r}")
        for name, choices in (
            ("bn_updates", BN_UPDATES),
            ("lookahead_unreached", UNREACHED),
            ("split", SPLITS),
            ("meta_order", META_ORDERS),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"{name.replace('_', '-')} must be one of {', '.join(choices)}, got {getattr(self, name)!r}"
                )

    def _check_ranges(self):
        """Counts >= 1, reals finite and of the right sign, nothing empty that a run needs."""
        if not self.sources:
            raise ValueError("sources is empty; give at least one source network as arch:paper or arch:PATH")
        if not self.momentum < 1 or self.workers < 0:
            raise ValueError(
                f"momentum must be in [0, 1) and workers >= 0, got momentum {self.momentum}, workers {self.workers}"
            )
        counts = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "eval_every": self.eval_every,
            "ckpt_every": self.ckpt_every,
            "meta_every": self.meta_every,
        }
        if self.max_iters is not None:  # 0 would write an untrained model's result under a real run's name
            counts["max_iters"] = self.max_iters
        for name, value in counts.items():
            if value < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {value}")
        if self.T < 0:
            raise ValueError(f"T (lookahead steps on the matching loss) must be >= 0, got {self.T}")
        reals = {
            "lr": (self.lr, False),
            "beta": (self.beta, True),
            "weight_decay": (self.weight_decay, True),
            "meta_lr": (self.meta_lr, True),
            "meta_weight_decay": (self.meta_weight_decay, True),
            "momentum": (self.momentum, True),
            "at_beta": (self.at_beta, True),
            "lwf_weight": (self.lwf_weight, True),
        }
        for name, (value, zero_ok) in reals.items():  # NaN fails every comparison, so it is caught here too
            if not (value >= 0 if zero_ok else value > 0) or not math.isfinite(value):
                raise ValueError(
                    f"--{name.replace('_', '-')} must be a finite number {'>= 0' if zero_ok else '> 0'}, got {value}"
                )
        if not 0 <= self.seed < 2**63:  # torch.manual_seed takes a 64-bit integer
            raise ValueError(f"--seed must be in [0, 2**63), got {self.seed}")
        for name in ("samples_per_class", "val_per_class"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1 images per class, got {value}")
        if not str(self.out).strip():
            raise ValueError("--out is empty; give the folder for the run's files")
        if self.pairs is not None and not str(self.pairs).strip(" ,"):
            raise ValueError(
                f"--pairs is empty ({self.pairs!r}); give pairs as 'm-n,m-n' or a name "
                f"({', '.join(NAMES)}), or leave it out for the method's own"
            )


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list of strings"}


def _is_a(value, typ):
    """Whether ``value`` is of a Config field's type (a bool is no number; an integer is a float's value)."""
    if typ is bool:
        return isinstance(value, bool)
    if typ in (int, float):
        return isinstance(value, int if typ is int else (int, float)) and not isinstance(value, bool)
    if typ is list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, typ)


def config_from_dict(d):
    """A Config from a stored config dict (fields a later version added keep their defaults).

    A config from before ``lookahead_unreached`` existed ran the ``kept`` rule (the only one then).
    """
    names = {f.name for f in fields(Config)}
    return Config(**{"lookahead_unreached": "kept", **{k: v for k, v in d.items() if k in names}})


def differences(saved, now):
    """'k=old there, k=new here' for the fields that define a run (how to run it aside); '' when they agree."""
    changed = sorted(k for k in saved.keys() & now.keys() if k not in HOW_TO_RUN and saved[k] != now[k])
    return ", ".join(f"{k}={saved[k]!r} there, {now[k]!r} here" for k in changed)


HELP = {  # one line per Config field; the default is appended (methods are listed here, not as argparse choices,
    # so that a wrong one is l2t's one-line error rather than argparse's usage block)
    "method": "method by its paper name: " + ", ".join(METHODS),
    "dataset": "target dataset: cifar10, cifar100, stl10, cub200, dog, mit67, stanford40, tinyimagenet",
    "target": "target network: vgg9 (32x32), resnet18 (224x224), or a CIFAR resnet20/32/44/56",
    "pairs": "layer pairs m-n,m-n (source map m -> target map n) or a ready-made set: " + ", ".join(NAMES),
    "samples_per_class": "training images per class (Figure 5's N; default: all)",
    "split": "auto (the paper's split where it has one), paper, or none (hold out --val-per-class)",
    "val_per_class": "validation images per class held out of the training set when there is no paper split",
    "epochs": "training epochs",
    "batch_size": "images per SGD step",
    "lr": "SGD learning rate (cosine schedule)",
    "momentum": "SGD momentum",
    "weight_decay": "SGD weight decay",
    "beta": "weight beta of the matching loss (Eq. 3)",
    "T": "lookahead steps on the matching loss before the meta-gradient (Alg. 1 line 5)",
    "meta_lr": "Adam learning rate of the what/where networks",
    "meta_weight_decay": "Adam weight decay of phi",
    "meta_every": "update phi every k-th iteration (1 = Algorithm 1 exactly)",
    "meta_order": "exact, or first (a cheaper meta-gradient without Hessian terms)",
    "lookahead_unreached": "lookahead rule for parameters a step's loss does not reach: zero-grad (the authors') or "
    "kept (PyTorch 2's SGD)",
    "bn_updates": "BatchNorm running-statistics updates per L2T iteration: once (line 4), or authors (also a "
    "train-mode forward at theta_0 after the meta-step, as the authors' code)",
    "bf16": "bf16 autocast for the source pass and the line-4 step (GPU)",
    "cuda_graph": "replay each iteration as CUDA graphs (GPU only)",
    "at_beta": "weight of the attention-transfer loss",
    "lwf_weight": "weight of the LwF distillation loss",
    "seed": "seed of the training subset and initialisation",
    "device": "auto, cpu, cuda or cuda:N",
    "eval_every": "validate every k epochs",
    "ckpt_every": "checkpoint every k epochs (and 10 minutes after the last save)",
    "eval_test": "also score the test set at every validation",
    "max_iters": "stop after this many iterations (checks)",
    "workers": "DataLoader workers (224x224 datasets)",
    "out": "folder for metrics.jsonl, checkpoint.pt, result.json",
}
CHOICES = {
    "meta_order": list(META_ORDERS),
    "lookahead_unreached": list(UNREACHED),
    "bn_updates": list(BN_UPDATES),
    "split": list(SPLITS),
}


class _UniqueKeys(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice (plain YAML would keep the last one silently)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        twice = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
        if twice is not None:
            raise yaml.constructor.ConstructorError(None, None, f"key {twice!r} is given twice", node.start_mark)
        return super().construct_mapping(node, deep)


def _typed(name, value, path):
    """A YAML value as its Config field's type: YAML 1.1 reads ``1e-3`` as a string, ``0.001`` as a float."""
    typ = {f.name: f.type for f in fields(Config)}[name]
    if (
        typ in (int, float)
        and isinstance(value, str)
        or typ is float
        and isinstance(value, int)
        and not isinstance(value, bool)
    ):
        try:
            return typ(value)
        except ValueError:
            raise ValueError(
                f"{name} in {path} must be {'an integer' if typ is int else 'a number'}, got {value!r}"
            ) from None
    return value


def read_yaml(config):
    """The Config fields of a YAML file, or of a packaged config by name (``figure5-quick``), each typed."""
    path = Path(config)
    if not path.exists():
        packaged = CONFIGS / (config + ".yaml")
        if "/" in config or not packaged.exists():
            raise FileNotFoundError(
                f"config {config!r} is neither a file nor one of the packaged "
                f"configs {sorted(p.stem for p in CONFIGS.glob('*.yaml'))}"
            )
        path = packaged
    if path.is_dir():
        raise ValueError(f"config {path} is a folder; give a YAML file of Config fields")
    try:
        values = yaml.load(path.read_text(), Loader=_UniqueKeys) or {}
    except UnicodeDecodeError:
        raise ValueError(f"config {path} is not a text file (YAML expected)") from None
    except yaml.YAMLError as e:
        raise ValueError(f"config {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ValueError(f"config {path} must be a mapping of Config fields, got {type(values).__name__}")
    unknown = set(values) - {f.name for f in fields(Config)}
    if unknown:
        raise ValueError(f"unknown keys in {path}: {sorted(unknown)}")
    return {k: _typed(k, v, path) for k, v in values.items()}
