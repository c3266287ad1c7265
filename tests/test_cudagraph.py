"""l2t.cudagraph's bookkeeping on the CPU, where no CUDA graph can run: a stand-in graph keeps a CUDA graph's
contract (a replay recomputes the recorded work into the memory of its capture), so that a batch not copied
in, a learning rate not refilled, or a batch size replayed on another size's graph changes the numbers."""

import contextlib

import pytest
import torch
from test_trainer import run

from l2t.cudagraph import GraphedStep


class StandInGraph:
    """What a CUDA graph promises, on the CPU: capture runs nothing (here: runs once and leaves no trace), and
    ``replay`` recomputes the work into the capture's own outputs and ``.grad`` tensors, in place."""

    def __init__(self, work, trainer):
        self.work, self.params = work, [p for m in _nets(trainer) for p in m.parameters()]
        state = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        self.out = work()
        trainer.model.load_state_dict(state)  # BatchNorm statistics as before: a capture moves nothing
        self.grads = {p: p.grad for p in self.params}

    def replay(self):
        before = {p: p.grad for p in self.params}  # a replay writes memory; it never reassigns an attribute
        _refill(self.out, self.work())
        for p in self.params:
            if self.grads[p] is not None:
                self.grads[p].copy_(p.grad)
            p.grad = before[p]


def _nets(t):
    return [m for m in (t.model, t.regressors, t.lwf_head, t.what, t.where) if m is not None]


def _refill(static, fresh):
    """Fresh outputs into the captured ones: tensors copied in place, lists and dicts refilled."""
    if isinstance(static, torch.Tensor):
        with torch.no_grad():
            static.copy_(fresh)
    elif isinstance(static, tuple):
        for a, b in zip(static, fresh):
            _refill(a, b)
    elif isinstance(static, list):
        static[:] = fresh
    elif isinstance(static, dict):
        static.clear()
        static.update(fresh)


@pytest.fixture
def stand_in(monkeypatch):
    """torch.cuda's streams and devices as no-ops, and ``GraphedStep.graph`` as a ``StandInGraph``."""
    stream = type("Stream", (), {"wait_stream": lambda self, other: None})()
    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "Stream", lambda: stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: stream)
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)

    def graph(self, work):
        g = StandInGraph(work, self.trainer)
        return g, g.out

    monkeypatch.setattr(GraphedStep, "graph", graph)


@pytest.mark.parametrize("method", ["scratch", "l2t-ww"])
def test_graphed_steps_copy_each_batch_refill_the_lr_and_capture_each_batch_size(tmp_path, stand_in, method):
    """Seven iterations, new images each time, the lr changing each time, batch sizes 6, 4 and 6 again:
    the graphed trainer computes what the eager one does (loss, phi's meta-gradient, theta), in float64."""
    torch.set_default_dtype(torch.float64)  # so that only a bookkeeping fault, not rounding, can part them
    try:
        eager, graphed = run(tmp_path, "eager", method=method), run(tmp_path, "graphed", method=method)
        graphed.graphed = GraphedStep(graphed, warmup=1)
        x, y = next(iter(eager.train_loader))
        g = torch.Generator().manual_seed(5)
        for i, size in enumerate([6, 6, 6, 4, 4, 4, 6]):  # warm-up, capture, replay
            xi = x[:size].double() + 0.3 * torch.randn(x[:size].shape, generator=g)
            out = []
            for t in (eager, graphed):
                t.optimizer.param_groups[0]["lr"] = 0.05 / (i + 1)  # as the cosine schedule moves it
                out.append(t.step(xi, y[:size]))
            assert torch.allclose(out[0][0], out[1][0], rtol=1e-10), (i, out[0][0], out[1][0])
            if method == "l2t-ww":
                for a, b in zip(eager.what.parameters(), graphed.what.parameters()):
                    assert torch.allclose(a.grad, b.grad, rtol=1e-7, atol=1e-14), i
    finally:
        torch.set_default_dtype(torch.float32)
    assert sorted(graphed.graphed.captured) == [4, 6] and graphed.iteration == 7
    for a, b in zip(eager.model.parameters(), graphed.model.parameters()):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("method", ["scratch", "l2t-ww"])
def test_cuda_graph_replay_trains_like_the_eager_step(tmp_path, method):
    """On a GPU, real graphs: seven iterations with new images, a changing lr and batch sizes 6, 4, 6 (warm-up,
    capture, replays) land where seven eager ones do.

    cuDNN runs deterministic kernels without TF32 here: with its defaults two eager runs already differ
    by ~1e-4 after a few steps (benchmarks/graph_agreement.py measures both settings).
    """
    trainers = [
        run(tmp_path, name, method=method, device="cuda", cuda_graph=graph, lr=0.01)
        for name, graph in (("eager", False), ("graph", True))
    ]
    trainers[1].graphed.warmup = 1
    x, y = next(iter(trainers[0].train_loader))
    g = torch.Generator(device=x.device).manual_seed(5)
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False):
        for i, size in enumerate([6, 6, 6, 4, 4, 4, 6]):
            xi = x[:size] + 0.3 * torch.randn(x[:size].shape, generator=g, device=x.device)
            out = []
            for t in trainers:
                t.optimizer.param_groups[0]["lr"] = 0.05 / (i + 1)
                out.append(t.step(xi, y[:size]))
            assert torch.allclose(out[0][0], out[1][0], rtol=1e-4, atol=1e-5), i
    assert sorted(trainers[1].graphed.captured) == [4, 6]  # it captured each batch size, and replayed them
    for a, b in zip(trainers[0].model.parameters(), trainers[1].model.parameters()):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-5)
    if method == "l2t-ww":
        for a, b in zip(trainers[0].what.parameters(), trainers[1].what.parameters()):
            assert torch.allclose(a, b, rtol=1e-3, atol=1e-6)
