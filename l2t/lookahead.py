"""Algorithm 1, lines 4-8: the meta-gradient of the meta-networks phi through a lookahead of the target.

Given the target's parameters theta_0 (the state right after this batch's ordinary step on L_total) and
the optimizer's momentum buffers at theta_0:

    theta_{t+1} = SGD(theta_t, grad_theta L_wfm(theta_t; phi)),  t = 0..T-1     (Alg. 1, line 5)
    theta_{T+1} = SGD(theta_T, grad_theta L_org(theta_T))                        (line 6)
    phi        <- phi - Adam(grad_phi L_org(theta_{T+1}))                       (line 8)

where SGD is exactly what ``torch.optim.SGD`` does (weight decay added to the gradient, momentum buffer
``buf = mu * buf + d``, no dampening, no Nesterov), at the optimizer's current learning rate.

A step's loss does not reach every parameter: L_wfm does not reach the classifier (line 5), L_org does
not reach the regressors (line 6). ``unreached`` says what such a parameter does in that step:

* ``"zero-grad"`` (default): it gets a zero gradient, so weight decay and momentum still move it --
  ``torch.optim.SGD`` after ``zero_grad(set_to_none=False)``, and what the authors' PyTorch 1.x code did
  (there ``zero_grad()`` zeroed gradients instead of freeing them);
* ``"kept"``: it stays where it is, as PyTorch 2's SGD keeps a parameter whose ``.grad`` is None.

The
gradient is exact: every step is built with ``create_graph=True`` on parameter *tensors* (through
``torch.func.functional_call``), so one backward pass differentiates through all T+1 steps, momentum and
weight decay included. Nothing is copied or replayed.

The lookahead is then discarded: training continues from theta_0 with the momentum buffers as they were
at theta_0, as the authors' code does with ``rollback=True``. The lookahead's forward passes run the
target in train mode (batch statistics) through ``batch_norm_train``, which neither reads nor moves the
running statistics: the real ones are never touched by the lookahead, so by default an iteration moves
them once (line 4). Here the authors' code differs: its ``meta_backward`` restores theta_0, re-runs the
matching objective in train mode and keeps the running statistics that forward moved, so there they move
twice an iteration. ``Trainer.authors_bn_update`` (``--bn-updates authors``) does the same.
"""

from contextlib import contextmanager
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .matching import wfm_coefficients


def batch_norm_train(bn, x):
    """Train-mode batch norm from elementary ops, without touching running statistics.

    Same values as ``nn.BatchNorm2d`` in train mode; its second derivative is cheaper on the CPU than
    the native kernel's, and the lookahead differentiates twice through every BatchNorm.
    """
    var, mean = torch.var_mean(x, (0, 2, 3), correction=0, keepdim=True)
    scale = torch.rsqrt(var + bn.eps)
    scale = scale if bn.weight is None else scale * bn.weight.view(1, -1, 1, 1)
    shift = -mean * scale if bn.bias is None else bn.bias.view(1, -1, 1, 1) - mean * scale
    return x * scale + shift


@contextmanager
def lookahead_batch_norm(model):
    """Within the block, the model's BatchNorm2d layers use ``batch_norm_train`` (statistics untouched)."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.forward = partial(batch_norm_train, bn)
    try:
        yield
    finally:
        for bn in bns:
            del bn.forward


UNREACHED = ("zero-grad", "kept")  # what a lookahead step does to a parameter its loss does not reach


def sgd_step(params, grads, bufs, lr, momentum, weight_decay, unreached="zero-grad"):
    """One differentiable ``torch.optim.SGD`` step on dicts of tensors (Alg. 1 lines 5-6's update).

    d = g + wd * p;  buf = momentum * buf + d (buf = d at the first step);  p = p - lr * buf.
    A key of ``params`` without a gradient (missing or None) is moved with g = 0 (``unreached="zero-grad"``,
    the authors' rule) or left as it is with its buffer (``"kept"``, PyTorch 2's rule for ``.grad is None``).
    Each line is one ``torch._foreach_*`` call over all parameters: fewer operations, same values;
    tests/test_meta_gradient.py::test_lookahead_equals_torch_sgd_with_zeroed_gradients proves the steps equal
    ``torch.optim.SGD``'s, and ::test_meta_gradient_is_exact_in_every_branch_of_the_sgd_step each branch.
    """
    if unreached not in UNREACHED:
        raise ValueError(f"unreached must be one of {', '.join(UNREACHED)}, got {unreached!r}")
    reached = [k for k in params if grads.get(k) is not None]
    zero = [k for k in params if grads.get(k) is None] if unreached == "zero-grad" else []
    d = dict(
        zip(
            reached,
            _each(torch._foreach_add, [grads[k] for k in reached], [params[k] for k in reached], alpha=weight_decay)
            if weight_decay
            else [grads[k] for k in reached],
        )
    )
    d.update(zip(zero, _each(torch._foreach_mul, [params[k] for k in zero], weight_decay)))  # g = 0: wd only
    new_bufs = dict(bufs)
    if momentum:
        carried = [k for k in d if bufs.get(k) is not None]
        d.update(
            zip(carried, _each(torch._foreach_add, [d[k] for k in carried], [bufs[k] for k in carried], alpha=momentum))
        )
        new_bufs.update(d)
    keys, steps = list(d), list(d.values())
    if torch.is_tensor(lr):  # a tensor lr: no host value in a CUDA graph
        moved = _each(torch._foreach_sub, [params[k] for k in keys], _each(torch._foreach_mul, steps, lr))
    else:
        moved = _each(torch._foreach_add, [params[k] for k in keys], steps, alpha=-lr)
    return {**params, **dict(zip(keys, moved))}, new_bufs


def _each(op, tensors, *args, **kwargs):
    """``op`` of a ``torch._foreach_*`` family on a list of tensors; an empty list gives an empty list."""
    return list(op(tensors, *args, **kwargs)) if tensors else []


def optimizer_state(optimizer, named):
    """(lr, momentum, weight decay, {name: momentum buffer}) of a single-group SGD for named parameters."""
    group = optimizer.param_groups[0]
    bufs = {}
    for name, p in named.items():
        buf = optimizer.state.get(p, {}).get("momentum_buffer")
        bufs[name] = buf  # a plain tensor: momentum buffers are never part of a graph
    return group["lr"], group["momentum"], group["weight_decay"], bufs


def meta_gradient(
    model,
    regressors,
    source_features,
    x,
    y,
    what_w,
    where_l,
    optimizer,
    beta,
    T=2,
    order="exact",
    lr=None,
    unreached="zero-grad",
    sources=None,
):
    """grad_phi L_org(theta_{T+1}) (Alg. 1 lines 5-8) and the lookahead's final CE, as ``(loss, theta_{T+1})``.

    ``what_w``/``where_l`` are the meta-networks' outputs on this batch (lists per pair, still attached to
    phi; ``where_l=None`` for fixed lambda = 1). The caller takes grad_phi with ``torch.autograd.grad(loss,
    phi)``: theta_0 is the model's parameters themselves, so ``loss.backward()`` would also fill their ``.grad``.

    ``order="first"`` is a cheaper approximation, never the default: every gradient in the lookahead is
    taken at a detached copy of theta_t, so the Hessian terms d(grad)/d(theta) are dropped while the
    direct dependence of each matching gradient on phi (through w and lambda) is kept.
    ``lr`` overrides the optimizer's current learning rate (a 0-dim tensor when replayed as a CUDA graph).
    ``unreached``: the rule for parameters a step's loss does not reach (module docstring).
    ``sources``: ``regressors.stacked_sources`` of this batch, if the caller has them already.
    """
    named_model = dict(model.named_parameters())
    named_reg = {"r." + k: v for k, v in regressors.named_parameters()}
    group_lr, momentum, wd, bufs = optimizer_state(optimizer, {**named_model, **named_reg})
    lr = group_lr if lr is None else lr
    theta = {**named_model, **named_reg}  # theta_0: the parameters themselves (grad_phi never reaches them)
    model_keys = list(named_model)
    reg_prefix = len("r.")
    # phi does not change within the lookahead: Eq. 3's factors beta/B * lambda * w are computed once
    coefficients = wfm_coefficients(regressors, what_w, where_l, beta, len(x))

    def forward(params):  # batch_norm_train: running statistics are neither read nor moved
        return functional_call(model, {k: params[k] for k in model_keys}, (x,))

    if order not in ("exact", "first"):
        raise ValueError(f"meta-gradient order must be 'exact' or 'first', got {order!r}")
    first = order == "first"
    at = (lambda th: {k: v.detach().requires_grad_() for k, v in th.items()}) if first else (lambda th: th)

    with lookahead_batch_norm(model):
        for _ in range(T):  # line 5: T steps on L_wfm
            point = at(theta)
            _, target_features = forward(point)
            if sources is None:  # the source maps, resized to the target's map sizes once for all T steps
                sources = regressors.stacked_sources(source_features, [f.shape[-2:] for f in target_features])
            reg = {k[reg_prefix:]: v for k, v in point.items() if k.startswith("r.")}
            loss = (coefficients * regressors.stacked(sources, target_features, reg)).sum()  # Eq. 3
            keys = list(theta)
            grads = torch.autograd.grad(loss, [point[k] for k in keys], create_graph=True, allow_unused=True)
            theta, bufs = sgd_step(theta, dict(zip(keys, grads)), bufs, lr, momentum, wd, unreached)

        point = at(theta)
        logits, _ = forward(point)  # line 6: one step on L_org
        loss = F.cross_entropy(logits, y)
        grads = torch.autograd.grad(loss, [point[k] for k in model_keys], create_graph=not first)
        theta, _ = sgd_step(theta, dict(zip(model_keys, grads)), bufs, lr, momentum, wd, unreached)

        logits, _ = forward(theta)  # line 8: L_org(theta_{T+1})
    return F.cross_entropy(logits, y), theta
