"""Training a target network T_theta with transfer from frozen sources: Algorithm 1 and its baselines.

One ``Trainer`` runs every method of ``l2t.methods``: per batch it takes one SGD step on
L_total = L_org + beta * L_wfm (+ AT / LwF terms) (Alg. 1 line 4), then, for L2T methods, updates the
meta-networks with the exact meta-gradient of ``l2t.lookahead`` (lines 5-8). Runs write a per-epoch
metrics file (JSON lines), atomic checkpoints (``--resume`` continues a killed run exactly) and a
final ``result.json``.
"""
import copy
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import data as D
from .baselines import at_loss, lwf_loss
from .files import atomic_save, atomic_write_text, lock
from .lookahead import UNREACHED, meta_gradient
from .matching import Regressors, pooled, wfm_coefficients
from .meta import What, Where
from .methods import method
from .models import build_model, image_size, load_source
from .pairs import NAMES, parse_pairs

VAL_SEED = 2019  # the validation subset is the same for every run, method and seed
HOW_TO_RUN = ("device", "cuda_graph", "workers", "out", "ckpt_every", "max_iters", "eval_test")   # not what a run is
BN_UPDATES = ("once", "authors")   # how often an L2T iteration moves the target's BatchNorm running statistics
RUN_KEYS = {"method", "dataset", "target", "epochs", "lr", "seed"}   # a config.json without them is not l2t's
CKPT_SECONDS = 600  # also checkpoint at the first epoch end 10 minutes after the last save: a kill loses little


@dataclass
class Config:
    """Everything a run depends on; defaults are the paper's 32x32 settings (Section 4.1, its code)."""
    method: str = "l2t-ww"
    dataset: str = "cifar10"
    target: str = "vgg9"
    sources: list = field(default_factory=lambda: ["resnet32:paper"])  # "arch:paper" or "arch:path"
    pairs: str = None            # overrides the method's ready-made pairs, e.g. "4-0,9-1"
    samples_per_class: int = None
    split: str = "auto"          # "paper": the paper's split files; "auto": paper split if the dataset has one;
                                 # "none": hold out val_per_class training images per class instead
    val_per_class: int = 100     # validation images per class taken from the training set (no paper split)
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    beta: float = 0.5
    T: int = 2
    meta_lr: float = 1e-4
    meta_weight_decay: float = 1e-4
    meta_every: int = 1          # update phi every k-th iteration (1 = Algorithm 1 exactly)
    meta_order: str = "exact"    # "first": cheaper meta-gradient without Hessian terms (an approximation)
    lookahead_unreached: str = "zero-grad"   # lookahead: a parameter a step's loss misses gets g = 0 (the authors'
                                 # rule: momentum and weight decay still move it); "kept": it stays (PyTorch 2's SGD)
    bn_updates: str = "once"     # BatchNorm running statistics per iteration: "once" (line 4 only), or "authors":
                                 # also a train-mode forward at theta_0 after the meta-step, as the authors' code
    bf16: bool = False           # bf16 autocast for the first-order parts (source pass, line-4 step);
                                 # lookahead stays fp32
    cuda_graph: bool = False     # replay each iteration as CUDA graphs (l2t.cudagraph); CUDA only
    at_beta: float = 1e3
    lwf_weight: float = 1.0
    seed: int = 0
    device: str = "auto"
    eval_every: int = 1
    ckpt_every: int = 1
    eval_test: bool = False      # also evaluate the test set at every evaluation (cheap on a GPU)
    max_iters: int = None        # stop early after this many iterations (smoke tests)
    workers: int = 2             # DataLoader workers (224x224 datasets only)
    out: str = "runs/default"

    def __post_init__(self):
        """Every field by its type and range, checked before any data is read or any step is taken."""
        for f in fields(self):
            value = getattr(self, f.name)
            if not (value is None and f.default is None) and not _is_a(value, f.type):
                raise ValueError(f"{f.name.replace('_', '-')} must be {_TYPE_NAMES[f.type]}, got {value!r}")
        if not self.sources:
            raise ValueError("sources is empty; give at least one source network as arch:paper or arch:PATH")
        if not self.momentum < 1 or self.workers < 0:
            raise ValueError(f"momentum must be in [0, 1) and workers >= 0, got momentum {self.momentum}, "
                             f"workers {self.workers}")
        counts = {"epochs": self.epochs, "batch_size": self.batch_size, "eval_every": self.eval_every,
                  "ckpt_every": self.ckpt_every, "meta_every": self.meta_every}
        if self.max_iters is not None:   # 0 would write an untrained model's result under a real run's name
            counts["max_iters"] = self.max_iters
        for name, value in counts.items():
            if value < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {value}")
        if self.T < 0:
            raise ValueError(f"T (lookahead steps on the matching loss) must be >= 0, got {self.T}")
        reals = {"lr": (self.lr, False), "beta": (self.beta, True), "weight_decay": (self.weight_decay, True),
                 "meta_lr": (self.meta_lr, True), "meta_weight_decay": (self.meta_weight_decay, True),
                 "momentum": (self.momentum, True), "at_beta": (self.at_beta, True),
                 "lwf_weight": (self.lwf_weight, True)}
        for name, (value, zero_ok) in reals.items():   # NaN fails every comparison, so it is caught here too
            if not (value >= 0 if zero_ok else value > 0) or not math.isfinite(value):
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number {'>= 0' if zero_ok else '> 0'}, "
                                 f"got {value}")
        for name in ("seed",):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} must be >= 0, got {getattr(self, name)}")
        for name in ("samples_per_class", "val_per_class"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1 images per class, got {value}")
        if not str(self.out).strip():
            raise ValueError("--out is empty; give the folder for the run's files")
        if self.pairs is not None and not str(self.pairs).strip(" ,"):
            raise ValueError(f"--pairs is empty ({self.pairs!r}); give pairs as 'm-n,m-n' or a name "
                             f"({', '.join(NAMES)}), or leave it out for the method's own")
        if self.bn_updates not in BN_UPDATES:
            raise ValueError(f"bn-updates must be one of {', '.join(BN_UPDATES)}, got {self.bn_updates!r}")
        if self.lookahead_unreached not in UNREACHED:
            raise ValueError(f"lookahead-unreached must be one of {', '.join(UNREACHED)}, "
                             f"got {self.lookahead_unreached!r}")


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
               list: "a list of strings"}


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


def _epoch_of(line):
    """The epoch of a metrics.jsonl row; infinity for a row a kill cut off mid-write (it is dropped)."""
    try:
        epoch = json.loads(line)["epoch"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return float("inf")
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else float("inf")


class NonFiniteLoss(RuntimeError):
    """Raised when a training loss becomes NaN or infinite."""


def resolve_device(name):
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device must be cpu, cuda or auto, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this PyTorch sees no CUDA GPU; use --device cpu (or auto)")
    return torch.device(name)


PAPER_SPLITS = ("cifar100", "stl10", "cub200", "dog")  # datasets with the paper's split files
SPLITS = ("auto", "paper", "none")


def prepare_data(cfg, root=None):
    """Train / val / test data of a config.

    32x32 targets: uint8 tensors ``{'train': (x, y), 'val': ..., 'test': ...}`` (decoded once, augmented on
    tensors). 224x224 targets: torchvision datasets with the paper's transforms (``train`` augmented,
    ``train_eval``/``val``/``test`` with Resize(256) + CenterCrop(224)).
    """
    if cfg.split not in SPLITS:   # checked before any image is read
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {cfg.split!r}")
    if cfg.samples_per_class is not None and cfg.samples_per_class < 1:   # 0 would not mean "all images"
        raise ValueError(f"samples per class must be >= 1, got {cfg.samples_per_class}")
    size = image_size(cfg.target)
    train_set = D.load_dataset(cfg.dataset, train=True, root=root)
    test_set = D.load_dataset(cfg.dataset, train=False, root=root)
    use_split = cfg.split == "paper" or (cfg.split == "auto" and cfg.dataset in PAPER_SPLITS)
    if getattr(train_set, "classes", None) != getattr(test_set, "classes", None):   # ImageFolder would re-index
        raise ValueError(f"{cfg.dataset}: the training and test sets have different classes "
                         f"({len(getattr(train_set, 'classes', []))} and {len(getattr(test_set, 'classes', []))}); "
                         f"a class folder is missing or extra")
    if use_split:
        train_idx, val_idx = D.paper_split(cfg.dataset, "train", root), D.paper_split(cfg.dataset, "val", root)
        test_idx = D.paper_split(cfg.dataset, "test", root)
        _check_split(cfg.dataset, {"train": (train_idx, train_set), "val": (val_idx, train_set),
                                   "test": (test_idx, test_set)})
    else:
        val_idx = D.per_class_subset(train_set.targets, cfg.val_per_class, VAL_SEED)
        test_idx = range(len(test_set))
        held_out = set(val_idx)
        train_idx = [i for i in range(len(train_set)) if i not in held_out]
    if cfg.samples_per_class is not None:
        targets = [train_set.targets[i] for i in train_idx]
        train_idx = [train_idx[i] for i in D.per_class_subset(targets, cfg.samples_per_class, cfg.seed)]
    copy = {"train": D.fingerprint(train_set), "test": D.fingerprint(test_set)}   # which copy of the data
    if size == 32:
        return {"train": D.decode(train_set, train_idx), "val": D.decode(train_set, val_idx),
                "test": D.decode_cached(test_set, test_idx, f"{cfg.dataset}-test-{len(test_idx)}"),
                "fingerprint": copy}
    augmented = D.load_dataset(cfg.dataset, train=True, root=root)
    augmented.transform, train_set.transform = D.train_transform(size), D.eval_transform(size)
    test_set.transform = D.eval_transform(size)
    subset = torch.utils.data.Subset
    return {"train": subset(augmented, list(train_idx)), "train_eval": subset(train_set, list(train_idx)),
            "val": subset(train_set, list(val_idx)), "test": subset(test_set, list(test_idx)), "fingerprint": copy}


def _check_split(dataset, parts):
    """The paper's split files hold integer indices in range, and train and val do not overlap."""
    for name, (idx, data) in parts.items():
        if not idx or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(data) for i in idx):
            raise ValueError(f"splits/{dataset}-{name}.json: its indices must be integers in [0, {len(data)}), "
                             f"and there must be some")
    if set(parts["train"][0]) & set(parts["val"][0]):
        raise ValueError(f"splits/{dataset}-train.json and -val.json share images; they must be disjoint")


def labels_of(part):
    """The labels of a data part: a ``(images, labels)`` pair or a (Subset of a) torchvision dataset."""
    if isinstance(part, (tuple, list)):
        return part[1].cpu()
    if isinstance(part, torch.utils.data.Subset):
        targets = part.dataset.targets
        return torch.tensor([targets[i] for i in part.indices])
    return torch.tensor(part.targets)


def build_source(arch, path, sha256=None):
    """A frozen source: ``path`` a checkpoint in the paper's format (checked against ``sha256`` when given),
    ``None`` the paper's own, or ``imagenet``."""
    if path == "imagenet":   # torchvision's ImageNet weights (downloaded when online)
        return build_model(arch, 1000, pretrained=True).eval().requires_grad_(False)
    return load_source(path, arch, expected_sha256=sha256)


def _source_specs(specs):
    """``arch:paper``, ``arch:imagenet`` or ``arch:PATH[#SHA256]`` -> (arch, path or None, sha256 or None)."""
    out = []
    for spec in specs:
        arch, _, path = spec.partition(":")
        path, _, digest = path.partition("#")
        out.append((arch, None if path in ("", "paper") else path, digest.lower() or None))
    return out


class Trainer:
    """Trains ``cfg.target`` on ``data`` with ``cfg.method``; ``sources`` may be given as built models."""

    def __init__(self, cfg, data=None, sources=None):
        self.cfg = cfg
        self.m = method(cfg.method)
        if cfg.pairs and not self.m["pairs"]:
            raise ValueError(f"--pairs applies to methods that match layer pairs; {cfg.method} matches none")
        self.device = resolve_device(cfg.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True   # fixed input sizes: let cuDNN pick its fastest kernels
        self.data = data if data is not None else prepare_data(cfg)
        self.num_classes = (int(labels_of(self.data["train"]).max()) + 1 if data is not None
                            else D.num_classes(cfg.dataset))
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.target, self.num_classes).to(self.device)
        self.sources, self.source_archs = [], []
        if self.m["source"]:
            specs = _source_specs(cfg.sources)
            self.source_archs = [a for a, _, _ in specs]
            self.sources = sources or [build_source(a, p, h) for a, p, h in specs]
            self.sources = [s.to(self.device).eval().requires_grad_(False) for s in self.sources]
        self.pairs = self._pairs() if self.m["pairs"] or cfg.pairs else []
        src_ch = [c for s in self.sources for c in s.feature_channels]
        tgt_ch = self.model.feature_channels
        params = list(self.model.parameters())
        self.regressors = self.lwf_head = self.what = self.where = self.meta_optimizer = None
        if self.m["fm"]:
            self.regressors = Regressors(self.pairs, src_ch, tgt_ch).to(self.device)
            params += list(self.regressors.parameters())
        if self.m["lwf"]:
            self.lwf_head = nn.Linear(tgt_ch[-1], self.sources[0].fc.out_features).to(self.device)
            params += list(self.lwf_head.parameters())
        self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                         fused=True)   # one call per update over all tensors, not one per tensor
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.epochs)
        if self.m["what"]:
            self.what = What(self.pairs, src_ch).to(self.device)
            meta = list(self.what.parameters())
            if self.m["where"]:
                self.where = Where(self.pairs, src_ch).to(self.device)
                meta += list(self.where.parameters())
            self.meta_optimizer = torch.optim.Adam(meta, lr=cfg.meta_lr, weight_decay=cfg.meta_weight_decay,
                                                   fused=True)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.train_loader = D.loader(self.data["train"], cfg.batch_size, True, self.generator, self.device,
                                     cfg.workers)
        self.epoch, self.iteration = 0, 0
        self.elapsed = 0.0   # seconds of training so far, across resumes
        self.graphed = None
        if cfg.cuda_graph:
            if self.device.type != "cuda":
                raise ValueError(f"--cuda-graph needs a CUDA device; this run's device is {self.device}")
            from .cudagraph import GraphedStep
            self.graphed = GraphedStep(self)
        self.best = {"epoch": -1, "val_acc": -1.0, "state": None}
        self.provenance = None   # git commit, dirty flag and start time of the run (set by fit, kept by checkpoints)

    def _pairs(self):
        """This run's pairs; with several sources, source indices count their maps one after another."""
        cfg, spec = self.cfg, self.cfg.pairs or self.m["pairs"]
        num_target = len(self.model.feature_channels)
        named = spec in NAMES   # a ready-made name: per source, like the default
        if (cfg.pairs and not named) or len(self.sources) == 1:
            num_source = sum(len(s.feature_channels) for s in self.sources)
            return parse_pairs(spec, self.source_archs[0], cfg.target, num_source, num_target)
        pairs, offset = [], 0  # multi-source (Table 2): the ready-made pairs of every source, offset
        for arch, src in zip(self.source_archs, self.sources):
            pairs += [(m + offset, n) for m, n in parse_pairs(spec, arch, cfg.target)]
            offset += len(src.feature_channels)
        return pairs

    # ---- one iteration (Algorithm 1) ----
    def step(self, x, y):
        """Alg. 1 for one batch: an SGD step on L_total (line 4), then the meta-update of phi (lines 5-8)."""
        if self.graphed is not None:
            return self.graphed(x, y)   # the same computation, replayed as CUDA graphs (--cuda-graph)
        return self.eager_step(x, y)

    def eager_step(self, x, y):
        """``step`` run op by op."""
        loss, right, lam, *phi_inputs = self.line4(x, y)
        self.optimizer.step()
        if self.meta_now():
            self.meta(x, y, *phi_inputs)
            self.meta_optimizer.step()
            if self.cfg.bn_updates == "authors":
                self.authors_bn_update(x)
        self.iteration += 1
        return loss, right, lam

    def meta_now(self):
        """Whether this iteration updates phi (every iteration, or every ``meta_every``-th)."""
        return self.meta_optimizer is not None and self.iteration % self.cfg.meta_every == 0

    def line4(self, x, y):
        """Alg. 1 line 4 up to the gradients of L_total (the caller steps the optimizer).

        Returns ``(loss, correct, lambda, source_features, what_w, where_l, sources)``; the last four feed
        ``meta`` (``sources``: the source maps resized for the regressors, once per batch).
        """
        cfg, m = self.cfg, self.m
        s_logits, s_feats = None, []
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16,
                             cache_enabled=not cfg.cuda_graph)
        if self.sources:
            with torch.no_grad(), amp:  # the source runs once per batch; every step below reuses its features
                for src in self.sources:
                    logits, feats = src(x)
                    if cfg.bf16:   # everything downstream (what/where, the lookahead) reads float32
                        logits, feats = logits.float(), [f.float() for f in feats]
                    s_logits = logits if s_logits is None else s_logits
                    s_feats += feats
        what_w = self.what(s_feats) if self.what is not None else None
        where_l = self.where(s_feats) if self.where is not None else None
        sources = None
        with amp:
            logits, t_feats = self.model(x)
            loss = F.cross_entropy(logits.float() if cfg.bf16 else logits, y)
            if m["fm"]:
                sources = self.regressors.stacked_sources(s_feats, [f.shape[-2:] for f in t_feats])
                detached = lambda ws: None if ws is None else [w.detach() for w in ws]
                coefficients = wfm_coefficients(self.regressors, detached(what_w), detached(where_l), cfg.beta,
                                                len(x))
                loss = loss + (coefficients * self.regressors.stacked(sources, t_feats)).sum()   # Eq. 3
            if m["at"]:
                loss = loss + at_loss(s_feats, t_feats, self.pairs, cfg.at_beta)
            if m["lwf"]:
                loss = loss + cfg.lwf_weight * lwf_loss(self.lwf_head(pooled(t_feats[-1])), s_logits)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lam = torch.stack([l.detach().mean() for l in where_l]) if where_l is not None else None
        return loss.detach(), (logits.argmax(1) == y).sum(), lam, s_feats, what_w, where_l, sources

    def meta(self, x, y, s_feats, what_w, where_l, sources=None, lr=None):
        """Alg. 1 lines 5-8 up to grad_phi, which it puts on phi's ``.grad`` (the caller steps Adam)."""
        phi = [p for g in self.meta_optimizer.param_groups for p in g["params"]]
        with no_tf32():   # TF32 convolutions (cuDNN's default) swamp the meta-gradient with rounding noise
            outer, _ = meta_gradient(self.model, self.regressors, s_feats, x, y, what_w, where_l,
                                     self.optimizer, self.cfg.beta, self.cfg.T, self.cfg.meta_order, lr=lr,
                                     unreached=self.cfg.lookahead_unreached, sources=sources)
            grads = torch.autograd.grad(outer, phi, allow_unused=True)
        for p, g in zip(phi, grads):
            p.grad = g

    def authors_bn_update(self, x):
        """The authors' code's second BatchNorm update of an iteration: a train-mode forward at theta_0.

        Their ``meta_backward`` restores theta_0 and re-runs the matching objective in train mode, and keeps
        the running statistics that forward moves; the parameters are unchanged (``--bn-updates authors``).
        """
        with torch.no_grad():
            self.model(x)

    # ---- the loop ----
    def fit(self, resume=False, progress=True, overwrite=False):
        """Train for ``cfg.epochs`` (or ``max_iters``), evaluating, checkpointing; returns the result dict.

        Never destroys a run by accident: ``out`` is locked against a second process, and a folder holding
        another run's files (or this run's, without ``resume``) is refused unless ``overwrite``, which moves
        the old files aside into ``out/replaced-<time>/``.
        """
        out = Path(self.cfg.out)
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is a file, not a folder; choose a folder for the run's files")
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / ".write-check").touch()
            (out / ".write-check").unlink()
        except OSError as e:   # a parent that is a file, a read-only folder: before any work, in one line
            raise ValueError(f"--out {out} cannot hold the run's files ({e.strerror or e}); "
                             "choose another --out") from None
        busy = f"another l2t process is training into {out} right now; wait for it or use another --out"
        with lock(out / ".lock", busy=busy):
            return self._fit(out, resume, progress, overwrite)

    def _prepare_out(self, out, resume, overwrite):
        """Resume, refuse or move aside what ``out`` holds; see ``fit``."""
        ckpt, metrics_path = out / "checkpoint.pt", out / "metrics.jsonl"
        old = [p for p in (ckpt, metrics_path, out / "result.json", out / "config.json") if p.exists()]
        if not old:
            return
        saved = _read_config(out)
        differences = _differences(saved, asdict(self.cfg))
        if overwrite:
            aside = out / time.strftime("replaced-%Y%m%d-%H%M%S")
            aside.mkdir()
            for p in old:
                os.replace(p, aside / p.name)
            print(f"l2t: moved the old run's files in {out} aside to {aside}", file=sys.stderr)
            return
        if not RUN_KEYS <= saved.keys():   # no l2t run config in config.json or checkpoint.pt: not l2t's files
            raise ValueError(f"--out {out} holds {', '.join(p.name for p in old)} that no l2t run of this kind wrote "
                             f"(no run config there); choose another --out, or --overwrite to move them aside")
        if differences:
            raise ValueError(f"--out {out} holds another run ({differences}); choose another --out, or pass "
                             f"--overwrite to move its files aside")
        if resume and ckpt.exists():
            self.load(ckpt)
        elif resume and (out / "result.json").exists():   # finished, its checkpoint gone: never redo it silently
            raise ValueError(f"--out {out} holds this run's finished result.json but no checkpoint to resume from; "
                             f"use it as it is, or --overwrite to train again (the old files are moved aside)")
        elif resume:   # this run's files, but no checkpoint to continue from: start again, and say so
            print(f"l2t: {out} has no checkpoint yet; starting this run from the beginning", file=sys.stderr)
        else:
            state = "a checkpoint" if ckpt.exists() else "files"
            raise ValueError(f"--out {out} already holds {state} of this run; add --resume to continue it, or "
                             f"--overwrite to start over (the old files are moved aside)")

    def _fit(self, out, resume, progress, overwrite):
        cfg = self.cfg
        ckpt, metrics_path = out / "checkpoint.pt", out / "metrics.jsonl"
        self._prepare_out(out, resume, overwrite)
        if self.provenance is None:   # recorded when the run starts, kept through resumes
            self.provenance = {"git_commit": git_commit(), "git_dirty": git_dirty(),
                               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        lines = metrics_path.read_text().splitlines() if (resume and metrics_path.exists()) else []
        garbled = [i + 1 for i, l in enumerate(lines) if _epoch_of(l) == float("inf") and i < self.epoch]
        if garbled:   # a cut-off last row is normal after a kill; a bad row before it is not: say which
            print(f"l2t: {metrics_path} row(s) {', '.join(map(str, garbled))} unreadable, dropped; the epochs "
                  f"they held keep no metrics row", file=sys.stderr)
        lines = [l for l in lines if _epoch_of(l) < self.epoch]   # rows past the checkpoint are redone
        metrics_path.write_text("".join(l + "\n" for l in lines))
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
        start = time.time() - self.elapsed   # a resumed run keeps counting from its checkpoint
        saved = time.time()
        per_epoch = len(self.train_loader)
        total = cfg.epochs * per_epoch if cfg.max_iters is None else min(cfg.max_iters, cfg.epochs * per_epoch)
        bar = tqdm(total=total, initial=min(self.iteration, total), disable=not progress,
                   desc=f"{cfg.method} seed {cfg.seed}", unit="it")
        while self.epoch < cfg.epochs and self.iteration < total:
            row = self._train_epoch(bar, total)
            self.scheduler.step()
            self.epoch += 1
            last = self.epoch == cfg.epochs or self.iteration >= total
            if self.epoch % cfg.eval_every == 0 or last:
                row["val_acc"] = self.accuracy(self.data["val"])
                if cfg.eval_test:
                    row["test_acc"] = self.accuracy(self.data["test"])
                if row["val_acc"] > self.best["val_acc"]:
                    self.best = {"epoch": row["epoch"], "val_acc": row["val_acc"],
                                 "state": copy.deepcopy(self.model.state_dict())}
            self.elapsed = time.time() - start
            row["elapsed_s"] = round(self.elapsed, 2)   # wall time of this run's training so far
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", acc=f"{row['train_acc']:.1f}",
                            val=f"{self.best['val_acc']:.1f}")
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            if self.epoch % cfg.ckpt_every == 0 or last or time.time() - saved > CKPT_SECONDS:
                self.save(ckpt)
                saved = time.time()
        bar.close()
        result = self.result(time.time() - start)
        result["curves"] = [json.loads(l) for l in metrics_path.read_text().splitlines()]   # one row per epoch
        atomic_write_text(out / "result.json", json.dumps(result, indent=1))
        return result

    def _train_epoch(self, bar, total):
        self.model.train()
        if isinstance(self.train_loader, torch.utils.data.DataLoader):   # 224x224: image files, torch's RNG
            seed = self.cfg.seed * 100_003 + self.epoch   # each epoch's order and crops from (seed, epoch) alone,
            self.generator.manual_seed(seed)               # so a resumed run draws what an uninterrupted one does
            torch.manual_seed(seed)                        # (the transforms' RNG when there are no workers)
        losses, correct, seen, lams = [], 0, 0, []
        for x, y in self.train_loader:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            loss, right, lam = self.step(x, y)
            losses.append(loss)
            correct, seen = correct + right, seen + len(y)
            if lam is not None:
                lams.append(lam)
            bar.update(1)
            if self.iteration >= total:
                break
        losses = torch.stack(losses)  # one host sync per epoch, not per step
        finite = torch.isfinite(losses)
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0])
            raise NonFiniteLoss(f"{self.cfg.method}: the training loss became {float(losses[bad])} at epoch "
                                f"{self.epoch}, step {bad}; {self._kept()}. "
                                f"Try a smaller learning rate (--lr) or beta.")
        state = [v for v in self.model.state_dict().values() if v.is_floating_point()]
        if not bool(torch.stack([torch.isfinite(v).all() for v in state]).all()):
            raise NonFiniteLoss(f"{self.cfg.method}: the weights or BatchNorm statistics became non-finite "
                                f"at epoch {self.epoch}, step "
                                f"{len(losses) - 1} (the loss was still finite); {self._kept()}. "
                                f"Try a smaller learning rate (--lr) or beta.")
        row = {"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"],
               "train_loss": float(losses.mean()), "train_acc": round(100.0 * int(correct) / seen, 4)}
        if lams:
            row["lambda"] = [round(v, 6) for v in torch.stack(lams).mean(0).tolist()]
        return row

    def _kept(self):
        """What a stopped run leaves behind, truthfully: its last checkpoint, or none."""
        ckpt = Path(self.cfg.out) / "checkpoint.pt"
        if ckpt.exists():
            return f"the last good checkpoint (epoch {checkpoint_epoch(ckpt)}) is kept in {ckpt}"
        return "no checkpoint was saved before it (nothing to resume)"

    # ---- evaluation ----
    @torch.no_grad()
    def predict(self, part, labels=None, state=None, batch_size=500):
        """(predictions, mean cross-entropy) of the target in eval mode, without augmentation.

        ``part`` is a data part (``(images, labels)`` or a dataset) or uint8 images with ``labels``.
        ``state`` evaluates other weights (e.g. the best-validation ones) instead of the current ones.
        """
        if labels is not None:
            part = (part, labels)
        model = self.model
        if state is not None:
            model = copy.deepcopy(self.model)
            model.load_state_dict(state)
        was_training = model.training
        model.eval()
        preds, loss = [], 0.0
        for x, y in D.loader(part, batch_size, False, device=self.device, workers=self.cfg.workers):
            x, y = x.to(self.device), y.to(self.device)
            logits, _ = model(x)
            preds.append(logits.argmax(1).cpu())
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
        model.train(was_training)
        preds = torch.cat(preds)
        return preds, loss / len(preds)

    def accuracy(self, part, labels=None, state=None):
        """Top-1 accuracy in percent on a data part (or on ``images, labels``)."""
        preds, _ = self.predict(part, labels, state)
        return percent(preds, labels_of(part if labels is None else (part, labels)))

    def result(self, wall_time):
        """The final result: best-val epoch and its test accuracy, train fit, collapse check, provenance."""
        test_y = labels_of(self.data["test"])
        preds, _ = self.predict(self.data["test"], state=self.best["state"])
        counts = torch.bincount(preds, minlength=int(test_y.max()) + 1)
        train_part = self.data.get("train_eval", self.data["train"])
        train_preds, train_loss = self.predict(train_part)
        top_share = float(counts.max()) / len(preds)
        return {
            "config": asdict(self.cfg), "pairs": [list(p) for p in self.pairs],
            "best_val_epoch": self.best["epoch"], "best_val_acc": self.best["val_acc"],
            "test_acc": percent(preds, test_y),
            "final_train_loss": train_loss,
            "final_train_acc": percent(train_preds, labels_of(train_part)),
            "test_distinct_classes": int((counts > 0).sum()), "test_top_class_share": top_share,
            "collapsed": top_share >= 0.5,
            "iterations": self.iteration, "epochs_run": self.epoch, "n_train": len(train_preds),
            "wall_time_s": wall_time, "device": device_name(self.device), "versions": versions(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),   # the CPU kernels' instruction set
            "data_fingerprint": self.data.get("fingerprint"),   # which copy of the dataset (l2t.data.fingerprint)
            "git_commit": (self.provenance or {}).get("git_commit", git_commit()),
            "git_dirty": (self.provenance or {}).get("git_dirty"), "started": (self.provenance or {}).get("started"),
        }

    # ---- checkpoints ----
    def save(self, path):
        """Write a checkpoint atomically (to a temporary file, then rename)."""
        state = {"epoch": self.epoch, "iteration": self.iteration, "best": self.best, "elapsed_s": self.elapsed,
                 "generator": self.generator.get_state(), "config": asdict(self.cfg),
                 "provenance": json.dumps(self.provenance)}
        for name in ("model", "regressors", "lwf_head", "what", "where", "optimizer", "meta_optimizer",
                     "scheduler"):
            obj = getattr(self, name)
            state[name] = None if obj is None else obj.state_dict()
        atomic_save(state, path)

    def save_phi(self, path):
        """Write the meta-networks phi (what/where, Sec. 3.1) with their pairs: a trained run's ~0.1 MB artefact."""
        if self.what is None:
            raise ValueError(f"{self.cfg.method} has no meta-networks to save")
        state = {"pairs": [list(p) for p in self.pairs], "what": self.what.state_dict(),
                 "where": None if self.where is None else self.where.state_dict(), "config": asdict(self.cfg)}
        atomic_save(state, path)

    def save_model(self, path):
        """Write the best-validation target network (the one the test accuracy scores) in float16."""
        state = self.best["state"] if self.best["state"] is not None else self.model.state_dict()
        atomic_save({"model": {k: v.half() if v.is_floating_point() else v for k, v in state.items()},
                      "target": self.cfg.target, "num_classes": self.num_classes,
                      "best_val_epoch": self.best["epoch"], "config": asdict(self.cfg)}, path)

    def load(self, path):
        """Restore everything ``save`` wrote; training then continues exactly where it stopped."""
        state = read_checkpoint(path, self.device)
        saved, now = state.get("config") or {}, asdict(self.cfg)
        changed = _differences(saved, now)
        if changed:   # e.g. another --epochs would keep the old cosine schedule
            raise ValueError(f"{path} is a checkpoint of another run: {changed}. Resume with the same "
                             f"settings, or start over with another --out")
        for name in ("model", "regressors", "lwf_head", "what", "where", "optimizer", "meta_optimizer",
                     "scheduler"):
            obj = getattr(self, name)
            if obj is not None and name.endswith("optimizer"):   # checkpoints from before fused optimizers
                for group in state[name]["param_groups"]:
                    group.update(fused=True, foreach=None)
            if obj is not None:
                obj.load_state_dict(state[name])
        self.generator.set_state(state["generator"].cpu())
        self.epoch, self.iteration, self.best = state["epoch"], state["iteration"], state["best"]
        self.elapsed = state.get("elapsed_s", 0.0)   # checkpoints before this field: time starts again
        self.provenance = json.loads(state["provenance"]) if state.get("provenance") else None


def checkpoint_epoch(path):
    """The epoch a checkpoint was saved at, reading only its small header (mmap); None if it is unreadable."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"]
    except Exception:
        return None


def read_checkpoint(path, device="cpu"):
    """A run's ``checkpoint.pt`` as a dict, or one clear ValueError naming the file (truncated, foreign, not one)."""
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): a save was cut off. Start the run again with --overwrite "
                         f"(the file is moved aside)")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a readable l2t checkpoint "
                         f"({type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]}); "
                         f"it may be truncated by a kill during a save. Start the run again with --overwrite "
                         f"(the file is moved aside)") from None
    if not isinstance(state, dict) or not {"epoch", "model", "config"} <= set(state):
        raise ValueError(f"{path} is not an l2t run checkpoint (no epoch/model/config); it may be a source "
                         f"network's checkpoint: pass that with --source arch:PATH")
    return state


def _read_config(out):
    """The config a run folder was made with (its config.json, else its checkpoint's), or {} if unreadable."""
    try:
        return json.loads((out / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        pass
    try:
        return read_checkpoint(out / "checkpoint.pt")["config"]
    except (ValueError, OSError, KeyError):
        return {}


def _differences(saved, now):
    """'k=old there, k=new here' for the fields that define a run (how to run it aside); '' when they agree."""
    changed = sorted(k for k in saved.keys() & now.keys() if k not in HOW_TO_RUN and saved[k] != now[k])
    return ", ".join(f"{k}={saved[k]!r} there, {now[k]!r} here" for k in changed)


def no_tf32():
    """cuDNN with its TF32 convolutions off (no effect on the CPU), other cuDNN settings as they are."""
    cudnn = torch.backends.cudnn
    return cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                       allow_tf32=False)


def percent(preds, labels):
    """Accuracy in percent, rounded to 4 decimals."""
    return round(100.0 * int((preds == labels.cpu()).sum()) / len(labels), 4)


def device_name(device):
    """A readable name of the device: the GPU's name or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def versions():
    """Versions of the packages a result depends on."""
    import torchvision

    from . import __version__
    return {"l2t": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


def git_dirty():
    """Whether the checkout has uncommitted changes to tracked files (None outside a checkout)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).parent)
        return bool(out.stdout.strip()) if out.returncode == 0 else None
    except Exception:
        return None


def git_commit():
    """The current git commit of the checkout, or None outside one."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except Exception:
        return None
