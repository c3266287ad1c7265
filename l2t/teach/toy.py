"""A toy meta-gradient problem: Algorithm 1 (lines 4-8) on tiny float64 networks, checkable by finite differences.

The pieces are the library's own (``Regressors``, ``What``, ``Where``, ``meta_gradient``); only the two
networks are tiny (two conv-BN-ReLU maps each, 8x8 inputs), so that the outer loss L_org(theta_{T+1}) can be
evaluated in float64 often enough for central finite differences, and independently with
``torch.optim.SGD`` itself.
"""

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..lookahead import meta_gradient
from ..matching import Regressors, wfm_loss
from ..meta import What, Where

PAIRS = [(0, 0), (0, 1), (1, 0), (1, 1)]  # every source map to every target map (all-to-all, Fig. 3c)


class ToyNet(nn.Module):
    """conv-BN-ReLU (map 0) -> max-pool -> conv-BN-ReLU (map 1) -> average pool -> linear; returns (logits, maps)."""

    def __init__(self, channels=(4, 6), num_classes=3):
        super().__init__()
        c0, c1 = channels
        self.conv0, self.bn0 = nn.Conv2d(3, c0, 3, padding=1), nn.BatchNorm2d(c0)
        self.conv1, self.bn1 = nn.Conv2d(c0, c1, 3, padding=1), nn.BatchNorm2d(c1)
        self.fc = nn.Linear(c1, num_classes)
        self.feature_channels = [c0, c1]
        for bn in (self.bn0, self.bn1):  # non-trivial affine parameters, so that every term matters
            nn.init.uniform_(bn.weight, 0.5, 1.5)
            nn.init.uniform_(bn.bias, -0.2, 0.2)

    def forward(self, x):
        f0 = torch.relu(self.bn0(self.conv0(x)))
        f1 = torch.relu(self.bn1(self.conv1(F.max_pool2d(f0, 2))))
        return self.fc(f1.mean((2, 3))), [f0, f1]


@dataclass
class ToyProblem:
    """Everything Algorithm 1 touches for one batch: theta (target + regressors), phi (what + where), the data."""

    target: nn.Module
    source: nn.Module
    regressors: Regressors
    what: What
    where: Where  # None: lambda fixed at 1 (the l2t-w methods)
    optimizer: torch.optim.SGD
    x: torch.Tensor
    y: torch.Tensor
    source_features: list
    beta: float

    def phi(self):
        """The meta-parameters phi: the parameters of the what- and where-networks (paper, Sec. 3.1)."""
        return _phi(self.what, self.where)


def _phi(what, where):
    return list(what.parameters()) + ([] if where is None else list(where.parameters()))


def toy_problem(
    seed=0,
    batch=6,
    lr=0.1,
    momentum=0.9,
    weight_decay=1e-2,
    beta=0.5,
    phi_noise=0.3,
    dtype=torch.float64,
    fixed_lambda=False,
    fresh_momentum=False,
):
    """A ToyProblem after one ordinary SGD step on L_total (Alg. 1 line 4), so momentum buffers are non-zero.

    ``fixed_lambda``: no where-network (lambda = 1). ``fresh_momentum``: the buffers are dropped after that
    step, so the lookahead's first step starts them (buf = d), as at a run's very first iteration.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    target = ToyNet((4, 6), num_classes=3).to(dtype)
    source = ToyNet((5, 3), num_classes=7).to(dtype).eval().requires_grad_(False)
    x = torch.randn(batch, 3, 8, 8, generator=gen, dtype=dtype)
    y = torch.randint(0, 3, (batch,), generator=gen)
    regressors = Regressors(PAIRS, source.feature_channels, target.feature_channels).to(dtype)
    what = What(PAIRS, source.feature_channels).to(dtype)
    where = None if fixed_lambda else Where(PAIRS, source.feature_channels).to(dtype)
    with torch.no_grad():  # move phi away from its flat start (uniform w, lambda = 1)
        for p in _phi(what, where):
            p.add_(phi_noise * torch.randn(p.shape, generator=gen, dtype=dtype))
    params = list(target.parameters()) + list(regressors.parameters())
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    _, source_features = source(x)
    logits, target_features = target(x)
    loss = F.cross_entropy(logits, y) + wfm_loss(regressors(source_features, target_features), beta=beta)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if fresh_momentum:
        for p in params:
            optimizer.state[p].pop("momentum_buffer", None)
    return ToyProblem(target, source, regressors, what, where, optimizer, x, y, source_features, beta)


def exact_meta_gradient(problem, T=2, unreached="zero-grad"):
    """(L_org(theta_{T+1}), grad_phi of it) by ``l2t.lookahead.meta_gradient`` (Alg. 1 lines 5-8).

    Zeros where phi is unused.
    """
    sf = problem.source_features
    outer, _ = meta_gradient(
        problem.target,
        problem.regressors,
        sf,
        problem.x,
        problem.y,
        problem.what(sf),
        _lambda(problem, sf),
        problem.optimizer,
        problem.beta,
        T,
        unreached=unreached,
    )
    phi = problem.phi()
    if not outer.requires_grad:  # T = 0: no step depends on phi
        return outer.detach(), [torch.zeros_like(p) for p in phi]
    grads = torch.autograd.grad(outer, phi, allow_unused=True)
    return outer.detach(), [torch.zeros_like(p) if g is None else g for p, g in zip(phi, grads)]


def line4_step(problem):
    """Alg. 1 line 4: one ``problem.optimizer`` step on CE + L_wfm, w and lambda held fixed; the CE before it."""
    w, lam = _weights(problem)  # computed without a graph: phi gets no gradient here
    logits, target_features = problem.target(problem.x)
    ce = F.cross_entropy(logits, problem.y)
    total = ce + wfm_loss(problem.regressors(problem.source_features, target_features), w, lam, problem.beta)
    problem.optimizer.zero_grad(set_to_none=True)
    total.backward()
    problem.optimizer.step()
    return float(ce.detach())


def meta_adam_step(problem, meta_opt, T=2):
    """Alg. 1 lines 5-8: phi's ``.grad`` = ``exact_meta_gradient``, then one step of ``meta_opt`` (Adam)."""
    _, grads = exact_meta_gradient(problem, T)
    for q, g in zip(problem.phi(), grads):
        q.grad = g
    meta_opt.step()


def algorithm1(problem, iterations, meta_lr, T=2):
    """Alg. 1 lines 4-8 on a deep copy, phi by Adam (frozen at meta_lr = 0): (history, the trained copy)."""
    problem = copy.deepcopy(problem)
    meta_opt = torch.optim.Adam(problem.phi(), lr=meta_lr)
    history = {"L_org": [], "lambda": []}  # per iteration: line 4's CE (before its step), lambda's batch means
    for _ in range(iterations):
        _, lam = _weights(problem)
        history["lambda"].append([] if lam is None else [float(a.mean()) for a in lam])
        history["L_org"].append(line4_step(problem))
        if meta_lr > 0:
            meta_adam_step(problem, meta_opt, T)
    return history, problem


def _lambda(problem, sf):
    return None if problem.where is None else problem.where(sf)


@torch.no_grad()
def _weights(problem):
    sf = problem.source_features
    return problem.what(sf), _lambda(problem, sf)


def _clear_grads(opt, unreached):
    """Before a step: zeroed gradients (PyTorch 1.x ``zero_grad()``, the authors' rule) or none (PyTorch 2)."""
    for p in opt.param_groups[0]["params"]:
        p.grad = torch.zeros_like(p) if unreached == "zero-grad" else None


def lookahead_by_sgd(problem, T=2, unreached="zero-grad"):
    """theta_{T+1} by ``torch.optim.SGD`` itself on copies (Alg. 1 lines 5-6): the ground truth.

    Returned as (target, regressors).

    ``unreached="zero-grad"``: every parameter enters each step with a zeroed gradient, so the classifier
    (not reached by L_wfm) and the regressors (not reached by L_org) still move by momentum and weight decay;
    ``"kept"``: gradients are freed, and SGD skips what a step's loss does not reach.
    """
    target, regressors = copy.deepcopy(problem.target), copy.deepcopy(problem.regressors)
    params = list(target.parameters()) + list(regressors.parameters())
    opt = torch.optim.SGD(
        params, **{k: problem.optimizer.param_groups[0][k] for k in ("lr", "momentum", "weight_decay")}
    )
    opt.load_state_dict(copy.deepcopy(problem.optimizer.state_dict()))  # same momentum buffers, copied
    w, lam = _weights(problem)
    x, y, sf = problem.x, problem.y, problem.source_features
    for _ in range(T):  # line 5: T steps on L_wfm with the meta-networks' w and lambda
        _clear_grads(opt, unreached)
        _, tf = target(x)
        wfm_loss(regressors(sf, tf), w, lam, problem.beta).backward()
        opt.step()
    _clear_grads(opt, unreached)  # line 6: one step on L_org
    logits, _ = target(x)
    F.cross_entropy(logits, y).backward()
    opt.step()
    return target, regressors


def outer_loss_by_sgd(problem, T=2, unreached="zero-grad"):
    """L_org(theta_{T+1}) (line 8's objective) after ``lookahead_by_sgd``."""
    target, _ = lookahead_by_sgd(problem, T, unreached)
    with torch.no_grad():
        logits, _ = target(problem.x)
        return float(F.cross_entropy(logits, problem.y))


@torch.no_grad()
def _shift(params, direction, step):
    for p, d in zip(params, direction):
        p.add_(step * d)


def random_direction(problem, generator):
    """A Gaussian direction v over all of phi, the same shapes and dtype, for ``finite_difference``."""
    return [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in problem.phi()]


def directional_derivative(grads, direction):
    """grad . v: the analytic meta-gradient along v, to set beside ``finite_difference``."""
    return float(sum((g * d).sum() for g, d in zip(grads, direction)))


def finite_difference(problem, direction, T=2, eps=1e-5, unreached="zero-grad"):
    """Central difference (L(phi + eps v) - L(phi - eps v)) / (2 eps) of ``outer_loss_by_sgd`` along v."""
    phi = problem.phi()
    _shift(phi, direction, eps)
    plus = outer_loss_by_sgd(problem, T, unreached)
    _shift(phi, direction, -2 * eps)
    minus = outer_loss_by_sgd(problem, T, unreached)
    _shift(phi, direction, eps)
    return (plus - minus) / (2 * eps)
