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
at theta_0 (what the paper's code does with ``rollback=True``). The lookahead's forward passes run the
target in train mode (batch statistics) on *clones* of the BatchNorm running statistics, so the real
running statistics are never touched by the lookahead.
"""
from contextlib import contextmanager
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .matching import wfm_loss


def batch_norm_train(bn, x):
    """Train-mode batch norm from elementary ops, without touching running statistics.

    Same values as ``nn.BatchNorm2d`` in train mode; its second derivative is cheaper on the CPU than
    the native kernel's, and the lookahead differentiates twice through every BatchNorm.
    """
    var, mean = torch.var_mean(x, (0, 2, 3), correction=0, keepdim=True)
    scale = torch.rsqrt(var + bn.eps) * bn.weight.view(1, -1, 1, 1)
    return x * scale + (bn.bias.view(1, -1, 1, 1) - mean * scale)


@contextmanager
def lookahead_batch_norm(model):
    """Within the block, the model's BatchNorm2d layers use ``batch_norm_train`` (statistics untouched)."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.affine]
    for bn in bns:
        bn.forward = partial(batch_norm_train, bn)
    try:
        yield
    finally:
        for bn in bns:
            del bn.forward


UNREACHED = ("zero-grad", "kept")   # what a lookahead step does to a parameter its loss does not reach


def sgd_step(params, grads, bufs, lr, momentum, weight_decay, unreached="zero-grad"):
    """One differentiable ``torch.optim.SGD`` step on dicts of tensors (Alg. 1 lines 5-6's update).

    d = g + wd * p;  buf = momentum * buf + d (buf = d at the first step);  p = p - lr * buf.
    A key of ``params`` without a gradient (missing or None) is moved with g = 0 (``unreached="zero-grad"``,
    the authors' rule) or left as it is with its buffer (``"kept"``, PyTorch 2's rule for ``.grad is None``).
    Each line is one fused ``torch.add(..., alpha=...)``: fewer passes over the parameters, same values.
    """
    if unreached not in UNREACHED:
        raise ValueError(f"unreached must be one of {', '.join(UNREACHED)}, got {unreached!r}")
    new_params, new_bufs = dict(params), dict(bufs)
    for k, p in params.items():
        g = grads.get(k)
        if g is None and unreached == "kept":
            continue
        if g is None:   # a zero gradient: only weight decay feeds the step
            d = p * weight_decay
        else:
            d = torch.add(g, p, alpha=weight_decay) if weight_decay else g
        if momentum:
            d = d if bufs.get(k) is None else torch.add(d, bufs[k], alpha=momentum)
            new_bufs[k] = d
        new_params[k] = (torch.add(params[k], d, alpha=-lr) if not torch.is_tensor(lr)
                         else torch.addcmul(params[k], d, lr, value=-1))   # a tensor lr: no host value in a CUDA graph
    return new_params, new_bufs


def optimizer_state(optimizer, named):
    """(lr, momentum, weight decay, {name: momentum buffer}) of a single-group SGD for named parameters."""
    group = optimizer.param_groups[0]
    bufs = {}
    for name, p in named.items():
        buf = optimizer.state.get(p, {}).get("momentum_buffer")
        bufs[name] = None if buf is None else buf.detach()
    return group["lr"], group["momentum"], group["weight_decay"], bufs


def meta_gradient(model, regressors, source_features, x, y, what_w, where_l, optimizer, beta, T=2,
                  order="exact", lr=None, unreached="zero-grad"):
    """grad_phi L_org(theta_{T+1}) (Alg. 1 lines 5-8) and the lookahead's final CE, as ``(loss, theta_{T+1})``.

    ``what_w``/``where_l`` are the meta-networks' outputs on this batch (lists per pair, still attached to
    phi; ``where_l=None`` for fixed lambda = 1). The caller runs ``loss.backward()`` to put grad_phi on phi.

    ``order="first"`` is a cheaper approximation, never the default: every gradient in the lookahead is
    taken at a detached copy of theta_t, so the Hessian terms d(grad)/d(theta) are dropped while the
    direct dependence of each matching gradient on phi (through w and lambda) is kept.
    ``lr`` overrides the optimizer's current learning rate (a 0-dim tensor when replayed as a CUDA graph).
    ``unreached``: the rule for parameters a step's loss does not reach (module docstring).
    """
    named_model = dict(model.named_parameters())
    named_reg = {"r." + k: v for k, v in regressors.named_parameters()}
    group_lr, momentum, wd, bufs = optimizer_state(optimizer, {**named_model, **named_reg})
    lr = group_lr if lr is None else lr
    theta = {k: v.detach().requires_grad_() for k, v in {**named_model, **named_reg}.items()}
    buffers = dict(model.named_buffers())
    model_keys = list(named_model)
    reg_prefix = len("r.")

    def forward(params):
        # clones: the lookahead must not move any running statistics of the real model
        state = {k: params[k] for k in model_keys}
        state.update({k: b.clone() for k, b in buffers.items()})
        return functional_call(model, state, (x,))

    if order not in ("exact", "first"):
        raise ValueError(f"meta-gradient order must be 'exact' or 'first', got {order!r}")
    first = order == "first"
    at = (lambda th: {k: v.detach().requires_grad_() for k, v in th.items()}) if first else (lambda th: th)

    with lookahead_batch_norm(model):
        for _ in range(T):                                                   # line 5: T steps on L_wfm
            point = at(theta)
            _, target_features = forward(point)
            reg = {k[reg_prefix:]: v for k, v in point.items() if k.startswith("r.")}
            errors = functional_call(regressors, reg, (source_features, target_features))
            loss = wfm_loss(errors, what_w, where_l, beta)
            keys = list(theta)
            grads = torch.autograd.grad(loss, [point[k] for k in keys], create_graph=True, allow_unused=True)
            theta, bufs = sgd_step(theta, dict(zip(keys, grads)), bufs, lr, momentum, wd, unreached)

        point = at(theta)
        logits, _ = forward(point)                                           # line 6: one step on L_org
        loss = F.cross_entropy(logits, y)
        grads = torch.autograd.grad(loss, [point[k] for k in model_keys], create_graph=not first)
        theta, _ = sgd_step(theta, dict(zip(model_keys, grads)), bufs, lr, momentum, wd, unreached)

        logits, _ = forward(theta)                                           # line 8: L_org(theta_{T+1})
    return F.cross_entropy(logits, y), theta
