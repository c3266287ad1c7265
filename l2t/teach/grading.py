"""Graders for the book's coding exercises: a student's function against the library's, on random inputs.

Each ``check_*`` runs the student's function on a few random inputs (fixed seeds), compares it with the
library's own computation of the same equation, prints one line (PASS or FAIL, with the first
disagreement) and returns True or False. A longer exercise is graded by ``staged``: one check per step, in
order, one line each. A function that raises, returns ``None`` (the blank template's ``...``) or returns the
wrong shape fails with that reason; nothing a student writes can crash the grader.
"""

import torch

from ..baselines import at_loss
from ..matching import Regressors, wfm_loss
from ..meta import Where
from ..stats import paired_interval
from .toy import directional_derivative, finite_difference, outer_loss_by_sgd, random_direction, toy_problem


def problem_of(check):
    """A check's problem string (None: it agrees), or what the student's code raised."""
    try:
        return check()
    except Exception as e:  # the student's code may raise anything
        return f"raised {type(e).__name__}: {e}"


def report(name, checks):
    """Run ``checks`` (callables returning a problem string or None) until one fails; print and return the verdict."""
    for k, check in enumerate(checks):
        problem = problem_of(check)
        if problem:
            print(f"FAIL  {name}: {problem} (check {k + 1} of {len(checks)})")
            return False
    print(f"PASS  {name}: all {len(checks)} checks agree with the library")
    return True


def staged(name, stages):
    """Grade a longer exercise by its steps (``stages``: [(label, check)]): one line each up to the first failure."""
    for k, (label, check) in enumerate(stages):
        problem = problem_of(check)
        where = f"stage {k + 1} of {len(stages)} ({label})"
        if problem:
            print(f"FAIL  {name}, {where}: {problem}")
            return False
        print(f"PASS  {name}, {where}")
    return True


def differs(got, want, label, rtol=1e-6, atol=1e-8):
    """A problem string naming the first entry where ``got`` is not close to ``want``; None when all are."""
    if got is None:
        return f"{label}: returned None (is the function still the template's `...`?)"
    got = torch.as_tensor(got, dtype=want.dtype)
    if got.shape != want.shape:
        return f"{label}: shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    far = ~torch.isclose(got, want, rtol=rtol, atol=atol)
    if not far.any():
        return None
    if want.dim() == 0:
        return f"{label}: {got.item():.6g} instead of {want.item():.6g}"
    first = tuple(int(i) for i in far.nonzero()[0])
    return (
        f"{label}: at index {first[0] if len(first) == 1 else first} {got[first].item():.6g} instead of "
        f"{want[first].item():.6g} ({int(far.sum())} of {want.numel()} entries differ)"
    )


def _identity_regressor(channels):
    """r_theta = identity (a 1x1 convolution with the identity matrix), so that Regressors returns e_c of S vs T."""
    regressors = Regressors([(0, 0)], [channels], [channels]).double()
    with torch.no_grad():
        regressors.convs[0].weight.copy_(torch.eye(channels, dtype=torch.float64)[:, :, None, None])
        regressors.convs[0].bias.zero_()
    return regressors


def check_matching_loss(fn):
    """Exercise (chapter 03): ``fn(r_t, s, w)`` = Eq. 2's L_wfm^{m,n} for one pair, averaged over the batch."""
    gen = torch.Generator().manual_seed(3)

    def case(b, c, h, w, uniform=False):
        def check():
            r_t, s = (torch.randn(b, c, h, w, generator=gen, dtype=torch.float64) for _ in range(2))
            weights = (
                torch.full((b, c), 1 / c, dtype=torch.float64)
                if uniform
                else torch.softmax(2 * torch.randn(b, c, generator=gen, dtype=torch.float64), 1)
            )
            errors = _identity_regressor(c)({0: s}, {0: r_t})
            want = wfm_loss(errors, what=[weights], beta=1.0).detach()
            return differs(fn(r_t, s, weights), want, f"shapes B, C, H, W = {b}, {c}, {h}, {w}")

        return check

    return report(
        "matching loss (Eq. 2)", [case(4, 5, 3, 3), case(2, 8, 4, 6), case(6, 3, 2, 2, uniform=True), case(1, 16, 8, 8)]
    )


def check_where(fn):
    """Exercise (chapter 04): ``fn(source_map, weight, bias)`` = lambda = ReLU6(g(pool(S^m))), one per image."""
    gen = torch.Generator().manual_seed(4)

    def case(b, c, scale):
        def check():
            s = scale * torch.randn(b, c, 3, 3, generator=gen, dtype=torch.float64)
            where = Where([(0, 0)], [c]).double()
            with torch.no_grad():
                where.nets[0].weight.copy_(torch.randn(1, c, generator=gen, dtype=torch.float64))
                where.nets[0].bias.copy_(torch.randn(1, generator=gen, dtype=torch.float64) + 1)
            want = where({0: s})[0].detach()
            got = fn(s, where.nets[0].weight.detach().clone(), where.nets[0].bias.detach().clone())
            return differs(got, want, f"{b} images, {c} channels, maps of scale {scale}")

        return check

    # scale 10 pushes g's output below 0 and above 6, where ReLU6 clips
    return report("where network (lambda)", [case(5, 4, 1.0), case(8, 16, 10.0), case(3, 7, 30.0)])


def check_sgd_step(fn):
    """Exercise (chapter 05): ``fn(params, grads, bufs, lr, mu, wd)`` = one ``torch.optim.SGD`` step.

    A None grad counts as zero.
    """
    gen = torch.Generator().manual_seed(5)

    def case(lr, mu, wd):
        def check():
            shapes = [(3, 2), (4,)]
            params = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
            grads = [torch.randn(shapes[0], generator=gen, dtype=torch.float64), None]  # the second: not reached
            bufs = [torch.randn(s, generator=gen, dtype=torch.float64) for s in shapes]
            copies = [p.clone().requires_grad_() for p in params]
            opt = torch.optim.SGD(copies, lr=lr, momentum=mu, weight_decay=wd)
            for q, b, g in zip(copies, bufs, grads):
                opt.state[q]["momentum_buffer"] = b.clone()
                q.grad = torch.zeros_like(q) if g is None else g.clone()  # zero_grad(set_to_none=False)
            opt.step()
            inputs = [t.clone() for t in params + bufs]
            out = fn(params, grads, bufs, lr, mu, wd)
            if any(not torch.equal(a, b) for a, b in zip(inputs, params + bufs)):
                return "changed params or bufs in place: build new tensors (q - lr * b, not q.sub_(...))"
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                return f"returned {out!r:.60}, expected (new_params, new_bufs)"
            for k, q in enumerate(copies):
                unreached = " (its grad is None)" if grads[k] is None else ""
                problem = differs(out[0][k], q.detach(), f"parameter {k}{unreached}", 1e-12) or differs(
                    out[1][k], opt.state[q]["momentum_buffer"], f"momentum buffer {k}{unreached}", 1e-12
                )
                if problem:
                    return f"lr {lr:g}, momentum {mu:g}, weight decay {wd:g}: {problem}"
            return None

        return check

    return report("SGD step (torch.optim.SGD)", [case(0.1, 0.9, 1e-2), case(0.5, 0.5, 0.0), case(0.01, 0.99, 0.1)])


def check_lookahead(fn):
    """Exercise (chapter 05): ``fn(problem, T)`` = L_org(theta_{T+1}) of Algorithm 1 lines 5-8, differentiable in phi.

    Checked on toy problems: its value against ``torch.optim.SGD`` on copies, and its gradient along random
    directions against central finite differences (the independent check of chapter 05).
    """
    gen = torch.Generator().manual_seed(6)

    def case(seed, T):
        def check():
            p = toy_problem(seed=seed, beta=0.7)  # not wfm_loss's default 0.5: a missing beta shows
            params = p.optimizer.param_groups[0]["params"]
            before = [q.detach().clone() for q in params]
            buffers = [p.optimizer.state[q]["momentum_buffer"].clone() for q in params]
            outer = fn(p, T)
            if outer is None:
                return "returned None (is the function still the template's `...`?)"
            if not torch.is_tensor(outer) or outer.numel() != 1:
                return f"returned {type(outer).__name__}, expected a scalar tensor"
            if any(not torch.equal(a, q) for a, q in zip(before, params)):
                return "the function changed the target's parameters (a lookahead must work on copies)"
            if any(not torch.equal(b, p.optimizer.state[q]["momentum_buffer"]) for b, q in zip(buffers, params)):
                return "the function changed the optimizer's momentum buffers (update copies, never in place)"
            want = torch.tensor(outer_loss_by_sgd(p, T), dtype=torch.float64)
            problem = differs(outer.detach(), want, f"L_org(theta_{T + 1}) on toy problem {seed}", 1e-9)
            if problem:
                return problem + (
                    " (check beta, the T matching steps of line 5, line 6's cross-entropy step, and that the"
                    " regressors step with theta)"
                )
            grads = torch.autograd.grad(outer, p.phi(), allow_unused=True) if outer.requires_grad else [None]
            if all(g is None or not g.any() for g in grads):
                return (
                    f"T = {T}: the result does not depend on phi (were the steps' gradients taken with "
                    "create_graph=True, and w and lambda left attached?)"
                )
            grads = [torch.zeros_like(q) if g is None else g for q, g in zip(p.phi(), grads)]
            v = random_direction(p, gen)
            analytic = directional_derivative(grads, v)
            fd = finite_difference(p, v, T, eps=1e-5)
            if abs(analytic - fd) > 1e-6 * abs(fd) + 1e-12:
                return f"T = {T}: grad_phi . v = {analytic:+.6e}, finite differences give {fd:+.6e}"
            return None

        return check

    return report("lookahead meta-gradient (Alg. 1, finite differences)", [case(0, 1), case(0, 2), case(1, 2)])


def check_attention_loss(fn):
    """Exercise (chapter 07): ``fn(source_map, target_map, beta)`` = the AT loss of one pair (same H x W)."""
    gen = torch.Generator().manual_seed(7)

    def case(b, cs, ct, h, w, beta):
        def check():
            s = torch.randn(b, cs, h, w, generator=gen, dtype=torch.float64)
            t = torch.randn(b, ct, h, w, generator=gen, dtype=torch.float64)
            want = at_loss({0: s}, {0: t}, [(0, 0)], beta=beta)
            return differs(fn(s, t, beta), want, f"source {cs} channels, target {ct}, {h}x{w}, beta {beta:g}")

        return check

    return report(
        "attention transfer loss", [case(4, 16, 64, 8, 8, 1e3), case(2, 3, 5, 4, 6, 1.0), case(8, 32, 32, 2, 2, 50.0)]
    )


def check_paired(fn):
    """Exercise (chapter 08): ``fn(a, b, level)`` = (mean, low, high) of a - b paired by seed, a t-interval."""
    gen = torch.Generator().manual_seed(8)

    def case(seeds, extra, level):
        def check():
            acc = (30 + 5 * torch.rand(2, len(seeds), generator=gen, dtype=torch.float64)).tolist()
            a = dict(zip(seeds, acc[0]))
            b = dict(reversed(list(zip(seeds, acc[1]))))  # another order: pair by seed, not by position
            a.update(extra)  # a seed only a has cannot be paired
            want = paired_interval([a[s] - b[s] for s in seeds], level)
            got = fn(a, b, level)
            if got is None:
                return "returned None (is the function still the template's `...`?)"
            if not isinstance(got, (tuple, list)) or len(got) != 3:
                return f"returned {got!r}, expected (mean, low, high)"
            return differs(
                torch.tensor(got, dtype=torch.float64),
                torch.tensor([want["mean"], want["low"], want["high"]], dtype=torch.float64),
                f"seeds {seeds}" + (f" (a also has seed {list(extra)})" if extra else "") + f", level {level}",
            )

        return check

    return report(
        "paired differences with a t-interval",
        [case([0, 1, 2], {}, 0.95), case([0, 1], {}, 0.95), case([3, 1, 0, 2], {7: 31.0}, 0.9)],
    )
