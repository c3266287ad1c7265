"""The stacked forms (one convolution per target map, one matrix product per source map, foreach SGD steps)
compute the same numbers as the per-pair forms they replace, in float64, on the paper's networks."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from l2t.lookahead import lookahead_batch_norm, meta_gradient, optimizer_state
from l2t.matching import Regressors, pooled, wfm_coefficients, wfm_loss
from l2t.meta import What, Where
from l2t.models import build_model
from l2t.pairs import CONFIGS

PAIRS = CONFIGS[("resnet32", "vgg9")]["all-to-all"]  # 15 pairs: 3 source maps x 5 target maps


def relative(a, b):
    return float((a - b).norm() / b.norm())


def per_pair_what(what, sf):
    """f_phi as the paper writes it: one Linear per pair on its own pooled source map."""
    return [torch.softmax(net(pooled(sf[m])), dim=1) for net, (m, _) in zip(what.nets, what.pairs)]


def per_pair_where(where, sf):
    return [F.relu6(net(pooled(sf[m]))).squeeze(1) for net, (m, _) in zip(where.nets, where.pairs)]


def per_parameter_sgd_step(params, grads, bufs, lr, momentum, wd):
    """The previous ``sgd_step`` (authors' rule): a loop of torch.add per parameter."""
    new_params, new_bufs = dict(params), dict(bufs)
    for k, p in params.items():
        g = grads.get(k)
        d = p * wd if g is None else torch.add(g, p, alpha=wd)
        d = d if bufs.get(k) is None else torch.add(d, bufs[k], alpha=momentum)
        new_bufs[k], new_params[k] = d, torch.add(p, d, alpha=-lr)
    return new_params, new_bufs


def previous_meta_gradient(model, regressors, sf, x, y, what_w, where_l, optimizer, beta, T):
    """The lookahead as it was before the stacked forms: per-pair errors, ``wfm_loss``, per-parameter SGD."""
    named_model = dict(model.named_parameters())
    named_reg = {"r." + k: v for k, v in regressors.named_parameters()}
    lr, momentum, wd, bufs = optimizer_state(optimizer, {**named_model, **named_reg})
    theta = {k: v.detach().requires_grad_() for k, v in {**named_model, **named_reg}.items()}
    buffers = dict(model.named_buffers())

    def forward(params):
        state = {k: params[k] for k in named_model}
        state.update({k: b.clone() for k, b in buffers.items()})
        return functional_call(model, state, (x,))

    with lookahead_batch_norm(model):
        for _ in range(T):
            _, tf = forward(theta)
            errors = functional_call(regressors, {k[2:]: v for k, v in theta.items() if k.startswith("r.")}, (sf, tf))
            keys = list(theta)
            grads = torch.autograd.grad(
                wfm_loss(errors, what_w, where_l, beta), [theta[k] for k in keys], create_graph=True, allow_unused=True
            )
            theta, bufs = per_parameter_sgd_step(theta, dict(zip(keys, grads)), bufs, lr, momentum, wd)
        logits, _ = forward(theta)
        grads = torch.autograd.grad(F.cross_entropy(logits, y), [theta[k] for k in named_model], create_graph=True)
        theta, _ = per_parameter_sgd_step(theta, dict(zip(named_model, grads)), bufs, lr, momentum, wd)
        logits, _ = forward(theta)
    return F.cross_entropy(logits, y)


@pytest.fixture(scope="module")
def paper_problem():
    """VGG9 target, ResNet32 source (random weights), 15 pairs, float64, after one ordinary SGD step."""
    torch.manual_seed(0)
    dtype = torch.float64
    source = build_model("resnet32", 200).to(dtype).eval().requires_grad_(False)
    target = build_model("vgg9", 10).to(dtype)
    x, y = torch.randn(4, 3, 32, 32, dtype=dtype), torch.tensor([0, 1, 2, 3])
    _, sf = source(x)
    regressors = Regressors(PAIRS, source.feature_channels, target.feature_channels).to(dtype)
    what, where = What(PAIRS, source.feature_channels).to(dtype), Where(PAIRS, source.feature_channels).to(dtype)
    with torch.no_grad():  # away from the flat start, so that every channel weight and amount differs
        for p in what.parameters():
            p.add_(0.3 * torch.randn_like(p))
        for net, (m, _) in zip(where.nets, PAIRS):  # small enough that every lambda stays inside (0, 6)
            net.weight.add_(0.2 * torch.randn_like(net.weight) / pooled(sf[m]).norm(dim=1).max())
    params = list(target.parameters()) + list(regressors.parameters())
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4)
    logits, tf = target(x)
    (F.cross_entropy(logits, y) + wfm_loss(regressors(sf, tf), beta=0.5)).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return target, regressors, what, where, optimizer, x, y, sf


def test_stacked_errors_are_the_per_pair_errors(paper_problem):
    target, regressors, what, where, _, x, _, sf = paper_problem
    _, tf = target(x)
    per_pair = regressors(sf, tf)
    stacked = regressors.stacked(regressors.stacked_sources(sf, [f.shape[-2:] for f in tf]), tf)
    assert stacked.shape == (4, sum(e.shape[1] for e in per_pair))
    by_order = torch.cat([per_pair[k] for k in regressors.order], 1)
    assert relative(stacked, by_order) < 1e-13
    assert sorted(regressors.order) == list(range(len(PAIRS)))  # every pair once


@pytest.mark.parametrize("weights", ["what and where", "what only", "where only", "neither"])
def test_coefficients_times_errors_is_wfm_loss(paper_problem, weights):
    target, regressors, what, where, _, x, _, sf = paper_problem
    _, tf = target(x)
    w = per_pair_what(what, sf) if weights in ("what and where", "what only") else None
    lam = per_pair_where(where, sf) if weights in ("what and where", "where only") else None
    stacked = regressors.stacked(regressors.stacked_sources(sf, [f.shape[-2:] for f in tf]), tf)
    loss = (wfm_coefficients(regressors, w, lam, beta=0.5, batch=len(x)) * stacked).sum()
    expected = wfm_loss(regressors(sf, tf), w, lam, beta=0.5)
    assert abs(float(loss - expected)) < 1e-12 * abs(float(expected))


def test_meta_networks_by_source_map_are_one_linear_per_pair(paper_problem):
    _, _, what, where, _, _, _, sf = paper_problem
    for a, b in zip(what(sf), per_pair_what(what, sf)):
        assert a.shape == b.shape and relative(a, b) < 1e-14
    for a, b in zip(where(sf), per_pair_where(where, sf)):
        assert a.shape == b.shape and relative(a, b) < 1e-14
        assert ((b > 0) & (b < 6)).all() and b.std() > 0  # inside ReLU6's linear part, varying by image


@pytest.mark.parametrize("T", [1, 2])
def test_meta_gradient_equals_the_previous_implementation(paper_problem, T):
    """Issue 26's bar: the stacked lookahead's grad_phi equals the per-pair one's to 1e-10, relative."""
    target, regressors, what, where, optimizer, x, y, sf = paper_problem
    phi = list(what.parameters()) + list(where.parameters())
    new = meta_gradient(target, regressors, sf, x, y, what(sf), where(sf), optimizer, 0.5, T)[0]
    new_grads = torch.autograd.grad(new, phi)
    old = previous_meta_gradient(
        target, regressors, sf, x, y, per_pair_what(what, sf), per_pair_where(where, sf), optimizer, 0.5, T
    )
    old_grads = torch.autograd.grad(old, phi)
    assert abs(float(new - old)) < 1e-12 * float(old)
    flat = lambda gs: torch.cat([g.flatten() for g in gs])
    assert flat(old_grads).norm() > 0
    assert relative(flat(new_grads), flat(old_grads)) < 1e-10
    for a, b in zip(new_grads, old_grads):  # and every tensor of phi on its own
        assert (a - b).norm() <= 1e-10 * flat(old_grads).norm()
