"""The meta-gradient of Algorithm 1 (lines 5-8) is exact: finite differences and an independent unroll."""

import copy

import pytest
import torch
import torch.nn.functional as F

from l2t.lookahead import UNREACHED, meta_gradient, sgd_step
from l2t.matching import wfm_loss
from l2t.teach.toy import (
    directional_derivative,
    exact_meta_gradient,
    finite_difference,
    lookahead_by_sgd,
    outer_loss_by_sgd,
    random_direction,
    toy_problem,
)

LR, MOMENTUM, WD, BETA = 0.1, 0.9, 1e-2, 0.5


def setup(T, seed=0):
    """The toy problem after one ordinary step (Alg. 1 line 4), so momentum buffers exist and are non-zero."""
    p = toy_problem(seed, lr=LR, momentum=MOMENTUM, weight_decay=WD, beta=BETA)
    return p.target, p.source, p.regressors, p.what, p.where, p.optimizer, p.x, p.y, p.source_features


def phi_of(what, where):
    return list(what.parameters()) + list(where.parameters())


def ours(target, regressors, what, where, opt, x, y, sf, T):
    outer, _ = meta_gradient(target, regressors, sf, x, y, what(sf), where(sf), opt, BETA, T)
    return outer, torch.autograd.grad(outer, phi_of(what, where))


@pytest.mark.parametrize("unreached", UNREACHED)
@pytest.mark.parametrize("T", [1, 2])
def test_meta_gradient_matches_central_finite_differences(T, unreached):
    """The value is torch.optim.SGD's own (l2t.teach.toy.outer_loss_by_sgd); the gradient matches it along 3 directions.

    Under both rules for parameters a lookahead step does not reach (zeroed gradients or none).
    """
    problem = toy_problem(0, lr=LR, momentum=MOMENTUM, weight_decay=WD, beta=BETA)
    outer, grads = exact_meta_gradient(problem, T, unreached)
    assert float(outer) == pytest.approx(outer_loss_by_sgd(problem, T, unreached), rel=1e-10, abs=1e-12)
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):  # random directions over all of phi
        v = random_direction(problem, gen)
        fd = finite_difference(problem, v, T, unreached=unreached)
        analytic = directional_derivative(grads, v)
        assert abs(analytic) > 1e-8, "the meta-gradient should not vanish here"
        assert abs(analytic - fd) <= 1e-5 * abs(fd), (analytic, fd)


def independent_unroll(target, regressors, what, where, opt, x, y, sf, T, unreached="zero-grad"):
    """Algorithm 1 lines 5-8 written out plainly with explicit tensors, for comparison."""
    from torch.func import functional_call

    names_t = [n for n, _ in target.named_parameters()]
    names_r = [n for n, _ in regressors.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in opt.param_groups[0]["params"]]
    bufs = [opt.state[p]["momentum_buffer"].clone() for p in opt.param_groups[0]["params"]]
    nt = len(names_t)
    buffers = {n: b.clone() for n, b in target.named_buffers()}
    w, lam = what(sf), where(sf)

    def run(ps):
        return functional_call(
            target, ({**dict(zip(names_t, ps[:nt])), **{k: v.clone() for k, v in buffers.items()}}), (x,)
        )

    for _ in range(T):
        _, tf = run(params)
        errs = functional_call(regressors, dict(zip(names_r, params[nt:])), (sf, tf))
        gs = torch.autograd.grad(wfm_loss(errs, w, lam, BETA), params, create_graph=True, allow_unused=True)
        if unreached == "zero-grad":  # the classifier, unreached by L_wfm, steps with g = 0
            gs = [torch.zeros_like(p) if g is None else g for g, p in zip(gs, params)]
        # PyTorch 2's torch.optim.SGD skips a parameter without a gradient
        bufs = [b if g is None else MOMENTUM * b + g + WD * p for b, g, p in zip(bufs, gs, params)]
        params = [p if g is None else p - LR * b for p, b, g in zip(params, bufs, gs)]
    logits, _ = run(params)
    gs = torch.autograd.grad(F.cross_entropy(logits, y), params[:nt], create_graph=True)
    params = [p - LR * (MOMENTUM * b + g + WD * p) for p, b, g in zip(params[:nt], bufs[:nt], gs)]
    logits, _ = run(params)
    outer = F.cross_entropy(logits, y)
    return outer, torch.autograd.grad(outer, phi_of(what, where))


@pytest.mark.parametrize("unreached", UNREACHED)
@pytest.mark.parametrize("T", [1, 2])
def test_meta_gradient_matches_independent_unroll(T, unreached):
    problem = setup(T, seed=3)
    target, source, regressors, what, where, opt, x, y, sf = problem
    a_loss, _ = meta_gradient(target, regressors, sf, x, y, what(sf), where(sf), opt, BETA, T, unreached=unreached)
    a_grads = torch.autograd.grad(a_loss, phi_of(what, where))
    b_loss, b_grads = independent_unroll(target, regressors, what, where, opt, x, y, sf, T, unreached)
    assert torch.allclose(a_loss, b_loss, rtol=1e-12)
    for a, b in zip(a_grads, b_grads):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_lookahead_leaves_model_and_optimizer_untouched():
    target, source, regressors, what, where, opt, x, y, sf = setup(2)
    before = copy.deepcopy(target.state_dict())
    bufs = {id(p): opt.state[p]["momentum_buffer"].clone() for p in opt.param_groups[0]["params"]}
    ours(target, regressors, what, where, opt, x, y, sf, 2)
    for k, v in target.state_dict().items():  # parameters and BatchNorm running statistics
        assert torch.equal(v, before[k]), k
    for p in opt.param_groups[0]["params"]:
        assert torch.equal(opt.state[p]["momentum_buffer"], bufs[id(p)])
        assert p.grad is None


def test_first_order_option_drops_only_hessian_terms():
    """The first-order approximation agrees with the exact gradient as lr -> 0 and differs at lr = 0.1."""

    def cosine(lr):
        target, source, regressors, what, where, opt, x, y, sf = setup(2)
        opt.param_groups[0]["lr"] = lr
        phi = phi_of(what, where)
        grads = {}
        for order in ("exact", "first"):
            outer, _ = meta_gradient(target, regressors, sf, x, y, what(sf), where(sf), opt, BETA, 2, order)
            grads[order] = torch.cat([g.flatten() for g in torch.autograd.grad(outer, phi)])
        a, b = grads["exact"], grads["first"]
        assert b.abs().sum() > 0
        return float(a @ b / (a.norm() * b.norm()))

    assert cosine(1e-4) > 0.9999
    assert cosine(0.1) < 0.9999
    with pytest.raises(ValueError, match="order must be"):
        target, source, regressors, what, where, opt, x, y, sf = setup(1)
        meta_gradient(target, regressors, sf, x, y, what(sf), where(sf), opt, BETA, 1, "second")


def test_a_tensor_learning_rate_gives_the_same_meta_gradient():
    """CUDA graphs replay the lookahead with lr as a 0-dim tensor; value and gradient must not change."""
    target, source, regressors, what, where, opt, x, y, sf = setup(2)
    phi = phi_of(what, where)
    out = {}
    for name, lr in (("float", None), ("tensor", torch.tensor(LR, dtype=torch.float64))):
        outer, _ = meta_gradient(target, regressors, sf, x, y, what(sf), where(sf), opt, BETA, 2, lr=lr)
        out[name] = (outer, torch.autograd.grad(outer, phi))
    assert torch.allclose(out["float"][0], out["tensor"][0], rtol=1e-14)
    for a, b in zip(out["float"][1], out["tensor"][1]):
        assert torch.allclose(a, b, rtol=1e-11, atol=1e-14)
    half, _ = meta_gradient(
        target, regressors, sf, x, y, what(sf), where(sf), opt, BETA, 2, lr=torch.tensor(LR / 2, dtype=torch.float64)
    )
    assert not torch.allclose(half, out["float"][0])  # the tensor is really the lookahead's lr


@pytest.mark.parametrize(
    "case",
    [
        dict(momentum=0.0, weight_decay=0.0),
        dict(momentum=0.0),
        dict(weight_decay=0.0),
        dict(fresh_momentum=True),
        dict(fixed_lambda=True),
    ],
    ids=["plain-sgd", "no-momentum", "no-weight-decay", "first-step-buffers", "fixed-lambda"],
)
def test_meta_gradient_is_exact_in_every_branch_of_the_sgd_step(case):
    """Each branch of sgd_step (momentum or not, weight decay or not, no buffer yet) and lambda = 1 (l2t-w)."""
    problem = toy_problem(seed=5, **case)
    outer, grads = exact_meta_gradient(problem, T=2)
    assert float(outer) == pytest.approx(outer_loss_by_sgd(problem, T=2), rel=1e-10)  # torch.optim.SGD's value
    gen = torch.Generator().manual_seed(2)
    v = random_direction(problem, gen)
    fd = finite_difference(problem, v, T=2)
    analytic = directional_derivative(grads, v)
    assert abs(analytic) > 1e-8 and abs(analytic - fd) <= 1e-5 * abs(fd), (analytic, fd)


@pytest.mark.parametrize("T", [1, 2])
def test_lookahead_equals_torch_sgd_with_zeroed_gradients(T):
    """Default rule, float64: theta_{T+1} is torch.optim.SGD's after zero_grad(set_to_none=False), every parameter.

    The classifier is not reached by L_wfm and the regressors are not reached by L_org, so they move only by
    momentum and weight decay; under the "kept" rule they would not move in those steps, and theta differs.
    """
    problem = toy_problem(4, lr=LR, momentum=MOMENTUM, weight_decay=WD, beta=BETA)
    sf = problem.source_features
    thetas = {}
    for rule in UNREACHED:
        _, theta = meta_gradient(
            problem.target,
            problem.regressors,
            sf,
            problem.x,
            problem.y,
            problem.what(sf),
            problem.where(sf),
            problem.optimizer,
            BETA,
            T,
            unreached=rule,
        )
        thetas[rule] = theta
    target, regressors = lookahead_by_sgd(problem, T, "zero-grad")
    expected = {**dict(target.named_parameters()), **{"r." + k: v for k, v in regressors.named_parameters()}}
    assert set(expected) == set(thetas["zero-grad"])
    for k, v in expected.items():
        assert torch.allclose(thetas["zero-grad"][k], v, rtol=1e-12, atol=1e-14), k
    fc = [k for k in expected if k.startswith("fc.")]
    assert fc and all(not torch.allclose(thetas["kept"][k], thetas["zero-grad"][k]) for k in fc)
    kept_t, kept_r = lookahead_by_sgd(problem, T, "kept")  # ... and "kept" is torch.optim.SGD with gradients freed
    for k, v in {**dict(kept_t.named_parameters()), **{"r." + k: v for k, v in kept_r.named_parameters()}}.items():
        assert torch.allclose(thetas["kept"][k], v, rtol=1e-12, atol=1e-14), k


def test_sgd_step_moves_an_unreached_parameter_by_momentum_and_weight_decay():
    """g = 0: d = wd * p, buf = mu * buf + d, p = p - lr * buf; "kept" leaves p and its buffer alone."""
    p, buf = torch.tensor([2.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)
    new, bufs = sgd_step({"w": p}, {}, {"w": buf}, lr=0.1, momentum=0.9, weight_decay=0.01)
    assert float(bufs["w"]) == pytest.approx(0.9 * 0.5 + 0.01 * 2.0, rel=1e-15)
    assert float(new["w"]) == pytest.approx(2.0 - 0.1 * (0.9 * 0.5 + 0.01 * 2.0), rel=1e-15)
    new, bufs = sgd_step({"w": p}, {"w": None}, {"w": buf}, lr=0.1, momentum=0.9, weight_decay=0.01, unreached="kept")
    assert new["w"] is p and bufs["w"] is buf
    with pytest.raises(ValueError, match="unreached must be one of"):
        sgd_step({"w": p}, {}, {"w": buf}, 0.1, 0.9, 0.01, unreached="frozen")
