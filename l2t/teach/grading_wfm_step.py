"""Grader of exercise 5 (chapter 06): Algorithm 1's line 4, the weighted feature-matching training step.

The student writes ``pair_errors`` (Eq. 2's per-channel errors of every pair), ``total_loss`` (Eq. 3 plus
the cross-entropy) and ``training_step`` (one SGD step on L_total at fixed w and lambda). ``check_wfm_step``
grades them in three stages: the errors against ``Regressors.forward`` on maps of unequal sizes, the loss
against ``F.cross_entropy + wfm_loss`` with non-uniform w and lambda, and the step against the library's
``Trainer`` (its ``line4`` and ``optimizer.step()``) on one fixed batch, parameter by parameter.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..data import normalize
from ..matching import Regressors, wfm_loss
from ..models import build_model
from ..train import Config, Trainer
from .grading import differs, staged

# stage 1: source maps (channels, size) and target maps of unequal sizes, so that the resize matters both ways
SOURCE_MAPS = [(3, 8), (4, 4), (5, 6)]
TARGET_MAPS = [(6, 4), (2, 8), (3, 5)]
PAIRS = [(0, 0), (1, 0), (2, 1), (0, 2), (1, 1)]  # (1, 0): equal sizes; the others down- or upsample S^m


def _errors_check(fn):
    """Stage 1: ``fn(regressors, source_maps, target_maps, pairs)`` = ``Regressors.forward`` (Eq. 2)."""
    gen = torch.Generator().manual_seed(51)
    maps = lambda shapes: [torch.randn(3, c, s, s, generator=gen, dtype=torch.float64) for c, s in shapes]
    source, target = maps(SOURCE_MAPS), maps(TARGET_MAPS)
    torch.manual_seed(52)
    regressors = Regressors(PAIRS, [c for c, _ in SOURCE_MAPS], [c for c, _ in TARGET_MAPS]).double()
    with torch.no_grad():
        want = [e.detach() for e in regressors(source, target)]
        got = fn(regressors, source, target, list(PAIRS))
    if got is None:
        return "the errors: returned None (is the function still the template's `...`?)"
    if not isinstance(got, (list, tuple)):
        return f"returned {type(got).__name__}, expected a list of [B, C_m] tensors, one per pair"
    if len(got) != len(want):
        return f"returned {len(got)} tensors for {len(want)} pairs"
    for k, ((m, n), g, e) in enumerate(zip(PAIRS, got, want)):
        sizes = f"S^{m} {SOURCE_MAPS[m][1]}x{SOURCE_MAPS[m][1]}, T^{n} {TARGET_MAPS[n][1]}x{TARGET_MAPS[n][1]}"
        problem = differs(None if g is None else g.detach(), e, f"pair {k} ({m}, {n}), {sizes}", 1e-9, 1e-12)
        if problem:
            return problem
    return None


def _loss_check(fn):
    """Stage 2: ``fn(logits, y, errors, w, lam, beta)`` = cross-entropy + ``wfm_loss`` (Eq. 3)."""
    gen = torch.Generator().manual_seed(53)
    b, channels, beta = 5, [3, 4, 2], 0.7
    logits = torch.randn(b, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 6, (b,), generator=gen)
    errors = [torch.rand(b, c, generator=gen, dtype=torch.float64) for c in channels]
    w = [torch.softmax(2 * torch.randn(b, c, generator=gen, dtype=torch.float64), 1) for c in channels]
    lam = [2 * torch.rand(b, generator=gen, dtype=torch.float64) for _ in channels]
    logits.requires_grad_()
    want = F.cross_entropy(logits, y) + wfm_loss(errors, w, lam, beta)
    got = fn(logits, y, errors, w, lam, beta)
    if got is not None and not (torch.is_tensor(got) and got.grad_fn is not None):
        return (
            f"total_loss returned a {type(got).__name__} that backward cannot go through: return the loss as a "
            "tensor built from logits and errors (training_step calls backward on it; .item() comes after)"
        )
    return differs(
        None if got is None else torch.as_tensor(got).detach(),
        want,
        f"L_total with {len(channels)} pairs, non-uniform w and lambda, beta {beta}",
        1e-9,
        1e-12,
    )


def _trainer():
    """A small L2T-ww ``Trainer``: VGG9 target, a random ResNet32 source (no file read), 15 pairs, batch 4."""
    gen = torch.Generator().manual_seed(54)
    part = lambda n: (torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8), torch.arange(n) % 5)
    data = {"train": part(8), "val": part(2), "test": part(2)}
    torch.manual_seed(55)
    source = build_model("resnet32", 10)
    for layer in source.modules():  # BatchNorm statistics of one batch, so that the source's maps are O(1)
        if isinstance(layer, nn.BatchNorm2d):
            layer.momentum = None
    with torch.no_grad():
        source(normalize(data["train"][0]))
    cfg = Config(method="l2t-ww", batch_size=4, epochs=1, lr=0.1, device="cpu", out="unused")
    trainer = Trainer(cfg, data=data, sources=[source.eval().requires_grad_(False)])
    for net, scale in ((trainer.what, 0.5), (trainer.where, 0.03)):  # phi away from uniform w and lambda = 1
        for q in net.parameters():
            q.data.add_(scale * torch.randn(q.shape, generator=gen))
    return trainer


def _copies(trainer):
    """Deep copies of the target, regressors, SGD (its momentum buffers) and phi, with theta's gradients as they are.

    ``copy.deepcopy`` leaves a parameter's ``.grad`` behind; the first step's gradients are copied too, so that
    a step that forgets ``zero_grad`` adds them, as it would in the Trainer.
    """
    model, regressors, optimizer, what, where = copy.deepcopy(
        (trainer.model, trainer.regressors, trainer.optimizer, trainer.what, trainer.where)
    )
    for q, r in zip([*model.parameters(), *regressors.parameters()], _theta(trainer)):
        q.grad = None if r.grad is None else r.grad.clone()
    return model, regressors, optimizer, what, where


def _theta(trainer):
    """The parameters line 4 updates: the target's, then the regressors'."""
    return [*trainer.model.parameters(), *trainer.regressors.parameters()]


def _step_check(fn):
    """Stage 3: ``fn`` = the Trainer's ``line4`` + ``optimizer.step()`` on one batch, every parameter after it."""
    trainer = _trainer()
    batches = iter(trainer.train_loader)
    trainer.line4(*next(batches))  # a first step: momentum buffers, and gradients left on theta
    trainer.optimizer.step()
    x, y = next(batches)
    model, regressors, optimizer, what, where = _copies(trainer)
    before = [q.detach().clone() for q in _theta(trainer)]
    with torch.no_grad():
        source_maps = trainer.sources[0](x)[1]
    w, lam = what(source_maps), where(source_maps)  # attached to (copies of) phi, as the meta-networks give
    got = fn(model, regressors, optimizer, trainer.sources[0], x, y, list(trainer.pairs), w, lam, trainer.cfg.beta)
    want, *_ = trainer.line4(x, y)
    trainer.optimizer.step()
    return _step_problem(got, want, trainer, before, (model, regressors, what, where))


def _step_problem(got, want, trainer, before, copies):
    """The first disagreement of a student's step with the Trainer's: loss, phi's gradients, theta, BN statistics."""
    model, regressors, what, where = copies
    problem = differs(
        None if got is None else torch.as_tensor(got).detach().reshape(()),
        want,
        "the returned L_total (on the batch, before the step; the model in train mode)",
        1e-4,
        1e-6,
    )
    if problem:
        return problem
    for name, net in (("what", what), ("where", where)):
        for p_name, q in net.named_parameters():
            if q.grad is not None:
                return (
                    f"the {name} network's {p_name} got a gradient: line 4 trains theta only, at fixed w and "
                    "lambda (detach them)"
                )
    named = [(f"target parameter {n}", q) for n, q in model.named_parameters()]
    named += [(f"regressor parameter {n}", q) for n, q in regressors.named_parameters()]
    steps = [r.detach() - b for r, b in zip(_theta(trainer), before)]  # the Trainer's change of each parameter
    atol = 1e-4 * max(float(s.abs().max()) for s in steps)  # float32 rounding scales with the largest step
    for (label, q), step, b in zip(named, steps, before):
        problem = differs(q.detach() - b, step, f"the step of {label} (after minus before)", 1e-4, atol)
        if problem:
            return problem + _why_step(q.detach() - b, step)
    for (b_name, b), c in zip(model.named_buffers(), trainer.model.buffers()):
        if b.is_floating_point():
            problem = differs(
                b,
                c,
                f"target buffer {b_name} after the step (BatchNorm statistics: run the target once per step)",
                1e-4,
                1e-6,
            )
            if problem:
                return problem
    return None


def _why_step(got, want):
    """A likely cause of a wrong step: none taken, or gradients left from the step before added to this one's."""
    if not got.any():
        return " (no step: optimizer.step() after backward?)"
    return " (gradients left from the previous step added in? optimizer.zero_grad() before backward)"


def check_wfm_step(pair_errors, total_loss, training_step):
    """Exercise 5 (chapter 06): Eq. 2's errors, Eq. 3's L_total and Algorithm 1's line 4, stage by stage."""
    with torch.random.fork_rng():  # the grader leaves the notebook's random numbers as they were
        return staged(
            "the weighted feature-matching step (Alg. 1, line 4)",
            [
                ("Eq. 2, per-pair errors", lambda: _errors_check(pair_errors)),
                ("Eq. 3 + cross-entropy", lambda: _loss_check(total_loss)),
                ("one training step, against Trainer", lambda: _step_check(training_step)),
            ],
        )
