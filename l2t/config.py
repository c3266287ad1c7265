"""The settings of a run (``Config``), each checked by its type and range before any work, with its help text.

``Config``'s defaults are the paper's 32x32 settings (Section 4.1, its code); the command line, a YAML file
(``--config``) and a stored run's ``config.json`` all become a ``Config`` here. Each field's type, range and
help text are declared once, beside it, and checked by pydantic in strict mode (no ``"no"`` read as false, no
1.5 epochs rounded, no string read as a number).
"""

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Literal, Optional, Union, get_args, get_origin

import yaml
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from .lookahead import UNREACHED
from .methods import METHODS
from .pairs import NAMES

HOW_TO_RUN = ("device", "cuda_graph", "workers", "out", "ckpt_every", "max_iters", "eval_test")  # not what a run is
BN_UPDATES = ("once", "authors")  # how often an L2T iteration moves the target's BatchNorm running statistics
RUN_KEYS = {"method", "dataset", "target", "epochs", "lr", "seed"}  # a config.json without them is not l2t's
SPLITS = ("auto", "paper", "none")
META_ORDERS = ("exact", "first")
CONFIGS = Path(__file__).parent / "configs"  # the packaged configs, by name: --config figure5-quick


def doc(help, **limits):
    """A field's help text and its range (pydantic's ``Field``)."""
    return Field(description=help, **limits)


Count = dict(ge=1)  # at least one
Real = dict(ge=0, allow_inf_nan=False)  # a finite number >= 0 (NaN and inf refused)


@dataclass
class Config:
    """Everything a run depends on; defaults are the paper's 32x32 settings (Section 4.1, its code)."""

    method: Annotated[str, doc("method by its paper name: " + ", ".join(METHODS))] = "l2t-ww"
    dataset: Annotated[
        str, doc("target dataset: cifar10, cifar100, stl10, cub200, dog, mit67, stanford40, tinyimagenet")
    ] = "cifar10"
    target: Annotated[str, doc("target network: vgg9 (32x32), resnet18 (224x224), or a CIFAR resnet20/32/44/56")] = (
        "vgg9"
    )
    sources: Annotated[list[str], doc("source networks as arch:paper, arch:imagenet or arch:PATH[#sha256]")] = field(
        default_factory=lambda: ["resnet32:paper"]
    )
    pairs: Annotated[
        Optional[str],
        doc("layer pairs m-n,m-n (source map m -> target map n) or a ready-made set: " + ", ".join(NAMES)),
    ] = None  # None: the method's own pairs
    samples_per_class: Annotated[
        Optional[int], doc("training images per class (Fig. 5's N; default: all)", **Count)
    ] = None
    split: Annotated[
        Literal[SPLITS], doc("auto (the paper's split where it has one), paper, or none (hold out --val-per-class)")
    ] = "auto"
    val_per_class: Annotated[
        int, doc("validation images per class held out of the training set when there is no paper split", **Count)
    ] = 100
    epochs: Annotated[int, doc("training epochs", **Count)] = 200
    batch_size: Annotated[int, doc("images per SGD step", **Count)] = 128
    lr: Annotated[float, doc("SGD learning rate (cosine schedule)", gt=0, allow_inf_nan=False)] = 0.1
    momentum: Annotated[float, doc("SGD momentum", ge=0, lt=1)] = 0.9
    weight_decay: Annotated[float, doc("SGD weight decay", **Real)] = 1e-4
    beta: Annotated[float, doc("weight beta of the matching loss (Eq. 3)", **Real)] = 0.5
    T: Annotated[int, doc("lookahead steps on the matching loss before the meta-gradient (Alg. 1 line 5)", ge=0)] = 2
    meta_lr: Annotated[float, doc("Adam learning rate of the what/where networks", **Real)] = 1e-4
    meta_weight_decay: Annotated[float, doc("Adam weight decay of phi", **Real)] = 1e-4
    meta_every: Annotated[int, doc("update phi every k-th iteration (1 = Algorithm 1 exactly)", **Count)] = 1
    meta_order: Annotated[
        Literal[META_ORDERS], doc("exact, or first (a cheaper meta-gradient without Hessian terms)")
    ] = "exact"
    lookahead_unreached: Annotated[
        Literal[UNREACHED],
        doc("lookahead rule for a parameter a step's loss misses: zero-grad (the authors') or kept (PyTorch 2's SGD)"),
    ] = "zero-grad"  # zero-grad: g = 0 (momentum and weight decay still move it); kept: it stays
    bn_updates: Annotated[
        Literal[BN_UPDATES],
        doc(
            "BatchNorm running-statistics updates per L2T iteration: once (line 4), or authors (also a train-mode "
            "forward at theta_0 after the meta-step, as the authors' code)"
        ),
    ] = "once"
    bf16: Annotated[bool, doc("bf16 autocast for the source pass and the line-4 step (GPU); lookahead in fp32")] = False
    cuda_graph: Annotated[bool, doc("replay each iteration as CUDA graphs (GPU only; l2t.cudagraph)")] = False
    at_beta: Annotated[float, doc("weight of the attention-transfer loss", **Real)] = 1e3
    lwf_weight: Annotated[float, doc("weight of the LwF distillation loss", **Real)] = 1.0
    seed: Annotated[int, doc("seed of the training subset and initialisation", ge=0, lt=2**63)] = 0  # torch: 64 bits
    device: Annotated[str, doc("auto, cpu, cuda or cuda:N")] = "auto"
    eval_every: Annotated[int, doc("validate every k epochs", **Count)] = 1
    ckpt_every: Annotated[int, doc("checkpoint every k epochs (and 10 minutes after the last save)", **Count)] = 1
    eval_test: Annotated[bool, doc("also score the test set at every validation (cheap on a GPU)")] = False
    max_iters: Annotated[Optional[int], doc("stop after this many iterations (checks)", **Count)] = None
    workers: Annotated[int, doc("DataLoader workers (224x224 datasets)", ge=0)] = 2
    out: Annotated[str, doc("folder for metrics.jsonl, checkpoint.pt, result.json")] = "runs/default"

    def __post_init__(self):
        """Every field by its declared type and range, checked before any data is read or any step is taken."""
        for f in fields(self):  # an integer given for a real field becomes that real (lr 1 -> 1.0)
            setattr(self, f.name, check(f.name, getattr(self, f.name)))
        if not self.sources:
            raise ValueError("sources is empty; give at least one source network as arch:paper or arch:PATH")
        if not self.out.strip():
            raise ValueError("--out is empty; give the folder for the run's files")
        if self.pairs is not None and not self.pairs.strip(" ,"):
            raise ValueError(
                f"--pairs is empty ({self.pairs!r}); give pairs as 'm-n,m-n' or a name "
                f"({', '.join(NAMES)}), or leave it out for the method's own"
            )


_SCHEMA = {f.name: TypeAdapter(f.type, config=ConfigDict(strict=True)) for f in fields(Config)}
HELP = {f.name: get_args(f.type)[1].description for f in fields(Config)}  # one line per field, for --help
_TYPES = {f.name: get_args(f.type)[0] for f in fields(Config)}  # each field's type without its Annotated help


def flag(name):
    """The command-line flag of Config field ``name`` (``samples_per_class`` -> ``--samples-per-class``)."""
    return "--" + {"sources": "source"}.get(name, name).replace("_", "-")


def check(name, value, where=None):
    """``value`` as Config field ``name`` takes it, or one line naming the field (and ``where`` it was read)."""
    try:
        return _SCHEMA[name].validate_python(value)
    except ValidationError as e:
        what = re.sub(r"^(Input|List) should (be|have) ", "", e.errors()[0]["msg"]).replace(" after validation", "")
        for words, sign in (("greater than or equal to", ">="), ("less than or equal to", "<="), ("greater than", ">")):
            what = what.replace(words, sign)
        what = what.replace("less than", "<")
        key = f"{name} in {where}" if where else flag(name)
        raise ValueError(f"{key} must be {what}, got {value!r}") from None


def value_type(name):
    """The plain type (int, float, str, bool, list) of Config field ``name``, for the command line."""
    typ = _TYPES[name]
    if get_origin(typ) is Union:  # Optional[int] -> int
        typ = get_args(typ)[0]
    if get_origin(typ) is Literal:  # a choice of strings
        return str
    return get_origin(typ) or typ


CHOICES = {name: list(get_args(t)) for name, t in _TYPES.items() if get_origin(t) is Literal}  # for argparse


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


class _UniqueKeys(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice (plain YAML would keep the last one silently).

    It also reads ``1e-3`` as the number it is (YAML 1.1 asks for a dot, ``1.0e-3``, and PyYAML would give
    the string ``'1e-3'``).
    """

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        twice = next((k for i, k in enumerate(keys) if k in keys[:i]), None)
        if twice is not None:
            raise yaml.constructor.ConstructorError(None, None, f"key {twice!r} is given twice", node.start_mark)
        return super().construct_mapping(node, deep)


_UniqueKeys.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(config):
    """The Config fields of a YAML file, or of a packaged config by name (``figure5-quick``), each typed."""
    path = Path(config)
    if not path.exists():
        packaged = CONFIGS / (config + ".yaml")
        if "/" in config or path.suffix in (".yaml", ".yml"):
            raise FileNotFoundError(f"config file {path} does not exist")
        if not packaged.exists():
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
    for name, value in values.items():
        check(name, value, where=path)
    return values
