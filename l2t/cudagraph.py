"""Optional: replay each training iteration as CUDA graphs (``--cuda-graph``); the same computation, fewer launches.

One exact L2T-ww iteration makes about 4,500 operator calls (``benchmarks/op_count.py``), each at least one
small kernel, and on a fast GPU the launches, not the arithmetic, set the pace. A CUDA graph records the
kernels of a piece of work once and replays them with one launch. Two graphs per iteration, with the
optimizers' steps between them run as usual:

    graph 1   Alg. 1 line 4: source pass, what/where, L_total and its gradient          (Trainer.line4)
    eager     SGD step on theta
    graph 2   Alg. 1 lines 5-8: the lookahead and grad_phi                              (Trainer.meta)
    eager     Adam step on phi

Graphs replay fixed memory, so the batch is copied into static tensors and the learning rate the
lookahead uses is a device tensor, refilled before every replay. For each batch size, the first
``warmup`` iterations run eagerly (they create the momentum buffers and let cuDNN choose its kernels);
the next one captures. Parameters, momentum buffers and BatchNorm statistics are updated in place by
both paths, so eager and replayed iterations mix freely.
"""

import torch


class GraphedStep:
    """``Trainer.step`` as two CUDA graphs around the two optimizer steps, one pair per batch size."""

    def __init__(self, trainer, warmup=3):
        self.trainer, self.warmup = trainer, warmup
        self.eager_steps, self.captured = {}, {}

    def __call__(self, x, y):
        """One iteration of Alg. 1; returns ``(loss, correct, lambda)`` like ``Trainer.step``."""
        with torch.cuda.device(x.device):  # streams, capture and synchronize on the run's GPU, also on cuda:1
            return self._step(x, y)

    def _step(self, x, y):
        t, size = self.trainer, len(y)
        done = self.eager_steps.get(size, 0)
        if done < self.warmup:  # warm-up on a side stream, as capture requires
            self.eager_steps[size] = done + 1
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                out = t.eager_step(x, y)
            torch.cuda.current_stream().wait_stream(stream)
            return out
        if size not in self.captured:
            self.captured[size] = self._capture(x, y)
        g = self.captured[size]
        g["x"].copy_(x)
        g["y"].copy_(y)
        g["lr"].fill_(t.optimizer.param_groups[0]["lr"])
        g["line4"].replay()
        for p, grad in g["theta_grads"]:  # another batch size's graph or an eager step may have moved .grad
            p.grad = grad
        t.optimizer.step()
        if t.meta_now():
            g["meta"].replay()
            for p, grad in g["phi_grads"]:
                p.grad = grad
            t.meta_optimizer.step()
            if t.cfg.bn_updates == "authors":  # eager: a plain forward, no gradient
                t.authors_bn_update(x)
        t.iteration += 1
        return tuple(None if v is None else v.clone() for v in g["out"])  # the next replay overwrites them

    def _capture(self, x, y):
        """Record line 4 and (for L2T methods) lines 5-8 on static inputs; nothing runs until a replay."""
        t = self.trainer
        g = {
            "x": x.clone(),
            "y": y.clone(),
            "meta": None,
            "phi_grads": [],
            "lr": torch.tensor(float(t.optimizer.param_groups[0]["lr"]), device=x.device),
        }
        torch.cuda.synchronize()
        g["line4"], (loss, right, lam, *phi_inputs) = self.graph(lambda: t.line4(g["x"], g["y"]))
        g["out"], g["phi_inputs"] = (loss, right, lam), phi_inputs  # graph 2 reads them: keep them alive
        g["theta_grads"] = [(p, p.grad) for group in t.optimizer.param_groups for p in group["params"]]
        if t.meta_optimizer is not None:
            g["meta"], _ = self.graph(lambda: t.meta(g["x"], g["y"], *phi_inputs, lr=g["lr"]))
            g["phi_grads"] = [(p, p.grad) for group in t.meta_optimizer.param_groups for p in group["params"]]
        return g

    def graph(self, work):
        """``work``'s kernels recorded as one CUDA graph, not run: ``(graph, work's outputs)``.

        The outputs, like every tensor the work allocates (the ``.grad`` it sets included), are the graph's
        own memory: each ``replay()`` recomputes them in place.
        """
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = work()
        return graph, out
