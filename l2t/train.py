"""Training a target network T_theta with transfer from frozen sources: Algorithm 1 and its baselines.

One ``Trainer`` runs every method of ``l2t.methods``: per batch it takes one SGD step on
L_total = L_org + beta * L_wfm (+ AT / LwF terms) (Alg. 1 line 4), then, for L2T methods, updates the
meta-networks with the exact meta-gradient of ``l2t.lookahead`` (lines 5-8). Runs write a per-epoch
metrics file (JSON lines), atomic checkpoints (``--resume`` continues a killed run exactly) and a
final ``result.json``.
"""

import copy
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import data as D
from .baselines import at_loss, lwf_loss
from .batches import loader
from .config import Config, config_from_dict
from .device import no_tf32, resolve_device
from .evaluate import percent, predict, run_result
from .files import append_row, atomic_write_text, lock
from .lookahead import meta_gradient
from .matching import Regressors, pooled, wfm_coefficients
from .meta import What, Where
from .methods import method
from .models import build_model, build_source, source_specs
from .pairs import NAMES, parse_pairs
from .runfolder import (
    check_writable,
    checkpoint_epoch,
    keep_metrics,
    load_checkpoint,
    prepare_out,
    provenance,
    read_checkpoint,
    save_checkpoint,
    save_model,
    save_phi,
)

__all__ = ["Config", "config_from_dict", "Trainer", "NonFiniteLoss", "read_checkpoint", "checkpoint_epoch"]
CKPT_SECONDS = 600  # also checkpoint at the first epoch end 10 minutes after the last save: a kill loses little


class NonFiniteLoss(RuntimeError):
    """Raised when a training loss becomes NaN or infinite."""


class Trainer:
    """Trains ``cfg.target`` on ``data`` with ``cfg.method``; ``sources`` may be given as built models."""

    def __init__(self, cfg, data=None, sources=None):
        self.cfg = cfg
        self.m = method(cfg.method)
        if cfg.pairs and not self.m["pairs"]:
            raise ValueError(f"--pairs applies to methods that match layer pairs; {cfg.method} matches none")
        self.device = resolve_device(cfg.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
        self.data = data if data is not None else D.prepare_data(cfg)
        self.num_classes = (
            int(D.labels_of(self.data["train"]).max()) + 1 if data is not None else D.num_classes(cfg.dataset)
        )
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.target, self.num_classes).to(self.device)
        self.sources, self.source_archs = [], []
        if self.m["source"]:
            specs = source_specs(cfg.sources)
            self.source_archs = [a for a, _, _ in specs]
            self.sources = sources or [build_source(a, p, h) for a, p, h in specs]
            self.sources = [s.to(self.device).eval().requires_grad_(False) for s in self.sources]
        self.pairs = self._pairs() if self.m["pairs"] or cfg.pairs else []
        self._optimizers()
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.train_loader = loader(self.data["train"], cfg.batch_size, True, self.generator, self.device, cfg.workers)
        self.epoch, self.iteration = 0, 0
        self.elapsed = 0.0  # seconds of training so far, across resumes
        self.graphed = None
        if cfg.cuda_graph:
            if self.device.type != "cuda":
                raise ValueError(f"--cuda-graph needs a CUDA device; this run's device is {self.device}")
            from .cudagraph import GraphedStep

            self.graphed = GraphedStep(self)
        self.best = {"epoch": -1, "val_acc": -1.0, "state": None}
        self.provenance = None  # git commit, dirty flag and start time of the run (set by fit, kept by checkpoints)

    def _optimizers(self):
        """theta's extra parts (regressors r_theta, LwF head) and SGD over theta; phi (what, where) and its Adam."""
        cfg = self.cfg
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
        self.optimizer = torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=True
        )  # one call per update over all tensors, not one per tensor
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=cfg.epochs)
        if self.m["what"]:
            self.what = What(self.pairs, src_ch).to(self.device)
            meta = list(self.what.parameters())
            if self.m["where"]:
                self.where = Where(self.pairs, src_ch).to(self.device)
                meta += list(self.where.parameters())
            self.meta_optimizer = torch.optim.Adam(meta, lr=cfg.meta_lr, weight_decay=cfg.meta_weight_decay, fused=True)

    def _pairs(self):
        """This run's pairs; with several sources, source indices count their maps one after another."""
        cfg, spec = self.cfg, self.cfg.pairs or self.m["pairs"]
        num_target = len(self.model.feature_channels)
        named = spec in NAMES  # a ready-made name: per source, like the default
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
            return self.graphed(x, y)  # the same computation, replayed as CUDA graphs (--cuda-graph)
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
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.bf16, cache_enabled=not cfg.cuda_graph)
        if self.sources:
            with torch.no_grad(), amp:  # the source runs once per batch; every step below reuses its features
                for src in self.sources:
                    logits, feats = src(x)
                    if cfg.bf16:  # everything downstream (what/where, the lookahead) reads float32
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
                coefficients = wfm_coefficients(self.regressors, detached(what_w), detached(where_l), cfg.beta, len(x))
                loss = loss + (coefficients * self.regressors.stacked(sources, t_feats)).sum()  # Eq. 3
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
        with no_tf32():  # TF32 convolutions (cuDNN's default) swamp the meta-gradient with rounding noise
            outer, _ = meta_gradient(
                self.model,
                self.regressors,
                s_feats,
                x,
                y,
                what_w,
                where_l,
                self.optimizer,
                self.cfg.beta,
                self.cfg.T,
                self.cfg.meta_order,
                lr=lr,
                unreached=self.cfg.lookahead_unreached,
                sources=sources,
            )
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
        the old files aside into ``out/replaced-<time>/`` (``l2t.runfolder.prepare_out``).
        """
        out = Path(self.cfg.out)
        check_writable(out)
        busy = f"another l2t process is training into {out} right now; wait for it or use another --out"
        with lock(out / ".lock", busy=busy):
            if prepare_out(out, asdict(self.cfg), resume, overwrite):
                self.load(out / "checkpoint.pt")
            self.provenance = self.provenance or provenance()  # recorded when the run starts, kept by resumes
            keep_metrics(out / "metrics.jsonl", self.epoch, resume)
            atomic_write_text(out / "config.json", json.dumps(asdict(self.cfg), indent=1))
            return self._fit(out, progress)

    def _fit(self, out, progress):
        cfg = self.cfg
        ckpt, metrics_path = out / "checkpoint.pt", out / "metrics.jsonl"
        start = time.time() - self.elapsed  # a resumed run keeps counting from its checkpoint
        saved = time.time()
        per_epoch = len(self.train_loader)
        total = cfg.epochs * per_epoch if cfg.max_iters is None else min(cfg.max_iters, cfg.epochs * per_epoch)
        bar = tqdm(
            total=total,
            initial=min(self.iteration, total),
            disable=not progress,
            desc=f"{cfg.method} seed {cfg.seed}",
            unit="it",
        )
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
                    self.best = {
                        "epoch": row["epoch"],
                        "val_acc": row["val_acc"],
                        "state": copy.deepcopy(self.model.state_dict()),
                    }
            self.elapsed = time.time() - start
            row["elapsed_s"] = round(self.elapsed, 2)  # wall time of this run's training so far
            bar.set_postfix(
                loss=f"{row['train_loss']:.3f}", acc=f"{row['train_acc']:.1f}", val=f"{self.best['val_acc']:.1f}"
            )
            append_row(metrics_path, row)
            if self.epoch % cfg.ckpt_every == 0 or last or time.time() - saved > CKPT_SECONDS:
                self.save(ckpt)
                saved = time.time()
        bar.close()
        result = run_result(self, time.time() - start)
        result["curves"] = [json.loads(l) for l in metrics_path.read_text().splitlines()]  # one row per epoch
        atomic_write_text(out / "result.json", json.dumps(result, indent=1))
        return result

    def _train_epoch(self, bar, total):
        self.model.train()
        if isinstance(self.train_loader, torch.utils.data.DataLoader):  # 224x224: image files, torch's RNG
            seed = self.cfg.seed * 100_003 + self.epoch  # each epoch's order and crops from (seed, epoch) alone,
            self.generator.manual_seed(seed)  # so a resumed run draws what an uninterrupted one does
            torch.manual_seed(seed)  # (the transforms' RNG when there are no workers)
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
            raise NonFiniteLoss(
                f"{self.cfg.method}: the training loss became {float(losses[bad])} at epoch "
                f"{self.epoch}, step {bad}; {self._kept()}. "
                f"Try a smaller learning rate (--lr) or beta."
            )
        state = [v for v in self.model.state_dict().values() if v.is_floating_point()]
        if not bool(torch.stack([torch.isfinite(v).all() for v in state]).all()):
            raise NonFiniteLoss(
                f"{self.cfg.method}: the weights or BatchNorm statistics became non-finite "
                f"at epoch {self.epoch}, step "
                f"{len(losses) - 1} (the loss was still finite); {self._kept()}. "
                f"Try a smaller learning rate (--lr) or beta."
            )
        row = {
            "epoch": self.epoch,
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": float(losses.mean()),
            "train_acc": round(100.0 * int(correct) / seen, 4),
        }
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
    def predict(self, part, labels=None, state=None, batch_size=500):
        """(predictions, mean cross-entropy) of the target in eval mode (``l2t.evaluate.predict``).

        ``part`` is a data part (``(images, labels)`` or a dataset) or uint8 images with ``labels``;
        ``state`` evaluates other weights (e.g. the best-validation ones) instead of the current ones.
        """
        part = part if labels is None else (part, labels)
        return predict(self.model, part, self.device, self.cfg.workers, state, batch_size)

    def accuracy(self, part, labels=None, state=None):
        """Top-1 accuracy in percent on a data part (or on ``images, labels``)."""
        preds, _ = self.predict(part, labels, state)
        return percent(preds, D.labels_of(part if labels is None else (part, labels)))

    # ---- checkpoints ----
    def save(self, path):
        """Write a checkpoint atomically (``l2t.runfolder.save_checkpoint``)."""
        save_checkpoint(self, path)

    def save_phi(self, path):
        """Write the meta-networks phi (what/where, Sec. 3.1) with their pairs (``l2t.runfolder.save_phi``)."""
        save_phi(self, path)

    def save_model(self, path):
        """Write the best-validation target network in float16 (``l2t.runfolder.save_model``)."""
        save_model(self, path)

    def load(self, path):
        """Restore everything ``save`` wrote; training then continues exactly where it stopped."""
        load_checkpoint(self, path)
