"""l2t.teach.toy: the toy meta-gradient problem is exact against finite differences and torch.optim.SGD."""

import torch

from l2t.teach.toy import (
    exact_meta_gradient,
    finite_difference,
    outer_loss_by_sgd,
    random_direction,
    toy_problem,
)


def test_toy_problem_is_reproducible():
    a, b = toy_problem(seed=4), toy_problem(seed=4)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    for p, q in zip(a.phi() + list(a.target.parameters()), b.phi() + list(b.target.parameters())):
        assert torch.equal(p, q)
    assert a.x.dtype == torch.float64


# (the toy meta-gradient against SGD and finite differences, T = 1 and 2, both rules: tests/test_meta_gradient.py)


def test_toy_meta_gradient_vanishes_without_lookahead():
    """T = 0: line 6 steps on L_org from theta_0, which phi never touched (SGD agrees); T = 1 does not vanish."""
    problem = toy_problem(seed=0)
    outer, grads = exact_meta_gradient(problem, T=0)
    assert abs(float(outer) - outer_loss_by_sgd(problem, 0)) < 1e-12
    assert all(float(g.abs().max()) == 0.0 for g in grads)
    gen = torch.Generator().manual_seed(1)
    v = random_direction(problem, gen)
    assert abs(finite_difference(problem, v, T=0)) < 1e-12  # the ground truth: no dependence on phi
    _, grads_1 = exact_meta_gradient(problem, T=1)  # one matching step: phi now matters
    assert min(float(g.abs().max()) for g in grads_1) > 1e-8  # every meta-parameter tensor, what and where


def test_finite_difference_restores_phi():
    problem = toy_problem(seed=2)
    before = [p.clone() for p in problem.phi()]
    finite_difference(problem, [torch.ones_like(p) for p in problem.phi()], T=1)
    for p, q in zip(problem.phi(), before):
        assert torch.allclose(p, q, rtol=0, atol=1e-15)
