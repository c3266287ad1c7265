"""Grader of chapter 05's Exercise 4: Algorithm 1's meta-step, end to end, on the toy problem, in three stages.

The student's ``line4``, ``meta_step`` and ``algorithm1`` are checked in that order against the library's
``line4_step``, ``meta_adam_step`` and ``algorithm1`` (``l2t.teach.toy``), each run from a copy of the same
float64 toy problem. Stale gradients are left on theta (stage 1) and on phi (stage 2), as an earlier iteration
would leave them, so that a step which does not clear them shows. The tolerance (1e-9 relative) leaves room
only for the student's own lookahead rounding differently from the library's, never for a wrong step.
"""

import torch

from .grading import differs, staged
from .toy import algorithm1 as library_algorithm1
from .toy import line4_step, meta_adam_step, toy_problem

TOL = {"rtol": 1e-9, "atol": 1e-12}
BETA = 0.7  # not wfm_loss's default 0.5, so that a beta left out shows
TEMPLATE = "returned None (is it still the template's `...`, or is its `return` missing?)"


def _theta(problem):
    """theta by name: the target's parameters, then the regressors' (the optimizer's order)."""
    return [(f"target {n}", q) for n, q in problem.target.named_parameters()] + [
        (f"regressors {n}", q) for n, q in problem.regressors.named_parameters()
    ]


def _phi(problem):
    """phi by name: the what-network's parameters, then the where-network's (``problem.phi()``'s order)."""
    return [(f"what {n}", q) for n, q in problem.what.named_parameters()] + [
        (f"where {n}", q) for n, q in problem.where.named_parameters()
    ]


def _buffers(problem):
    return [(f"momentum buffer of {n}", problem.optimizer.state[q]["momentum_buffer"]) for n, q in _theta(problem)]


def _copies(named):
    return [(n, q.detach().clone()) for n, q in named]


def _first_difference(got, want, label):
    """The first tensor of ``got`` (a list of (name, tensor)) not close to ``want``'s, as a problem string."""
    for (name, a), (_, b) in zip(got, want):
        problem = differs(a.detach(), b.detach(), f"{label}, {name}", **TOL)
        if problem:
            return problem
    return None


def _stale_gradients(named, seed):
    gen = torch.Generator().manual_seed(seed)
    for _, q in named:
        q.grad = torch.randn(q.shape, generator=gen, dtype=q.dtype)


def _check_line4(line4):
    """Line 4 from stale gradients on theta: theta after the step, no gradient on phi, the returned CE."""
    mine, ref = toy_problem(seed=11, beta=BETA), toy_problem(seed=11, beta=BETA)
    for p in (mine, ref):
        _stale_gradients(_theta(p), seed=1)
    want = torch.tensor(line4_step(ref), dtype=torch.float64)
    ce = line4(mine)
    if ce is None:
        return f"line4 {TEMPLATE}"
    problem = _first_difference(_theta(mine), _theta(ref), "theta after line 4")
    if problem:
        return problem + " (L_total = CE + wfm_loss, after clearing the gradients an earlier step left)"
    leaked = [n for n, q in _phi(mine) if q.grad is not None and bool(q.grad.any())]
    if leaked:
        return (
            f"line 4 gave phi a gradient ({leaked[0]}): detach w and lambda, which line 4 holds fixed "
            "(only the meta-step trains phi)"
        )
    got = torch.as_tensor(ce, dtype=torch.float64).detach()
    return differs(got, want, "the returned cross-entropy (before the step)", **TOL)


def _check_meta_step(meta_step):
    """Two meta-steps (T = 1, then 2) from stale gradients on phi: phi after each; theta and its buffers untouched."""
    mine, ref = toy_problem(seed=12, beta=BETA), toy_problem(seed=12, beta=BETA)
    for p in (mine, ref):
        _stale_gradients(_phi(p), seed=2)
    theta, buffers = _copies(_theta(mine)), _copies(_buffers(mine))
    mine_opt, ref_opt = (torch.optim.Adam(p.phi(), lr=1e-2) for p in (mine, ref))
    for k, T in enumerate((1, 2)):
        phi_before = _copies(_phi(mine))
        meta_adam_step(ref, ref_opt, T)
        meta_step(mine, mine_opt, T)
        if all(torch.equal(q, b) for (_, q), (_, b) in zip(_phi(mine), phi_before)):
            return f"meta-step {k + 1} (T = {T}) left phi unchanged (is meta_step still the template's `...`?)"
        problem = _first_difference(_phi(mine), _phi(ref), f"phi after meta-step {k + 1} (T = {T})")
        if problem:
            return problem + " (only outer_loss_by_hand(problem, T)'s gradient, after clearing phi's old ones)"
    problem = _first_difference(_theta(mine), theta, "theta after the meta-steps (it must not change)")
    return problem or _first_difference(_buffers(mine), buffers, "after the meta-steps (they must not change)")


def _check_algorithm1(algorithm1):
    """5 iterations, 2 with T = 1, 2 frozen: the caller's problem unchanged, then the history and phi of each."""
    for iterations, meta_lr, T in ((5, 1e-2, 2), (2, 1e-2, 1), (2, 0.0, 2)):
        p = toy_problem(seed=13, beta=BETA)
        before = _copies(_theta(p) + _buffers(p) + _phi(p))
        want, trained_ref = library_algorithm1(toy_problem(seed=13, beta=BETA), iterations, meta_lr, T)
        out = algorithm1(p, iterations, meta_lr, T)
        run = f"algorithm1(problem, {iterations}, meta_lr={meta_lr:g}, T={T})"
        if out is None:
            return f"{run} {TEMPLATE}"
        if not isinstance(out, (tuple, list)) or len(out) != 2 or not isinstance(out[0], dict):
            return f"{run} returned {type(out).__name__}, expected (history, the trained copy)"
        history, trained = out
        problem = _first_difference(_theta(p) + _buffers(p) + _phi(p), before, f"{run} changed the caller's problem")
        if problem:
            return problem + " (work on copy.deepcopy(problem))"
        for key, index in (("L_org", "[iteration]"), ("lambda", "[iteration][pair]")):
            if key not in history:
                return f"{run}: history has no key {key!r}"
            problem = differs(
                torch.tensor(history[key], dtype=torch.float64),
                torch.tensor(want[key], dtype=torch.float64),
                f"{run}: history[{key!r}]{index}",
                **TOL,
            )
            if problem:
                return problem
        problem = _first_difference(_phi(trained), _phi(trained_ref), f"{run}: phi of the trained copy")
        if problem:
            return problem
    return None


def check_meta_step(line4, meta_step, algorithm1):
    """Exercise 4 (chapter 05): Algorithm 1's line 4, the meta-step (lines 5-8 + Adam) and the loop, in stages."""
    return staged(
        "the meta-step, end to end (Alg. 1)",
        [
            ("line 4", lambda: _check_line4(line4)),
            ("one meta-step, lines 5-8", lambda: _check_meta_step(meta_step)),
            ("Algorithm 1 in a loop", lambda: _check_algorithm1(algorithm1)),
        ],
    )
