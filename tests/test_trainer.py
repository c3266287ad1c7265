"""The trainer: every method runs; beta=0 is scratch; phi learns; resume is exact; NaN is caught."""

import json
import time

import pytest
import torch
import torch.nn.functional as F
from conftest import metrics
from torch.utils.flop_counter import FlopCounterMode

from l2t.baselines import at_loss, lwf_loss
from l2t.matching import pooled, wfm_loss
from l2t.methods import METHODS
from l2t.models import build_model
from l2t.train import Config, NonFiniteLoss, Trainer


def tiny_data(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    make = lambda k: (torch.randint(0, 256, (k, 3, 32, 32), generator=g, dtype=torch.uint8), torch.arange(k) % 3)
    return {"train": make(n), "val": make(6), "test": make(6)}


def tiny_sources(k=1):
    torch.manual_seed(123)
    return [build_model("resnet20", 7).eval().requires_grad_(False) for _ in range(k)]


def run(tmp_path, name="run", sources=1, **kw):
    cfg = Config(
        **{
            "sources": ["resnet20:random"] * sources,
            "batch_size": 6,
            "epochs": 2,
            "device": "cpu",
            "out": str(tmp_path / name),
            **kw,
        }
    )
    return Trainer(cfg, data=tiny_data(), sources=tiny_sources(sources))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_runs_two_iterations(tmp_path, method):
    trainer = run(tmp_path, method=method, max_iters=2)
    result = trainer.fit(progress=False)
    assert result["iterations"] == 2 and 0 <= result["test_acc"] <= 100
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in rows)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_methods_line4_loss_is_its_terms_by_hand(tmp_path, method):
    """Line 4's L_total on a fixed batch = CE + beta * L_wfm(what, where) + AT + LwF, each where the method has it."""
    trainer = run(tmp_path, method=method, beta=0.7, at_beta=300.0, lwf_weight=0.4)
    cfg, m = trainer.cfg, trainer.m
    torch.manual_seed(1)  # phi away from its start (uniform w, lambda = 1), so that every weight shows in the loss
    for q in [q for net in (trainer.what, trainer.where) if net is not None for q in net.parameters()]:
        q.data.normal_(0, 0.5)
    x, y = next(iter(trainer.train_loader))
    with torch.no_grad():  # train mode, as line 4: the batch's own BatchNorm statistics
        logits, t = trainer.model(x)
        s_logits, s = trainer.sources[0](x) if trainer.sources else (None, [])
        expected = F.cross_entropy(logits, y)
        if m["fm"]:
            what = trainer.what(s) if trainer.what is not None else None
            where = trainer.where(s) if trainer.where is not None else None
            expected = expected + wfm_loss(trainer.regressors(s, t), what, where, cfg.beta)
        if m["at"]:
            expected = expected + at_loss(s, t, trainer.pairs, cfg.at_beta)
        if m["lwf"]:
            expected = expected + cfg.lwf_weight * lwf_loss(trainer.lwf_head(pooled(t[-1])), s_logits)
    loss, *_ = trainer.line4(x, y)
    assert torch.allclose(loss, expected, rtol=1e-5), (float(loss), float(expected))
    assert m["fm"] or m["at"] or m["lwf"] or torch.allclose(loss, F.cross_entropy(logits, y))  # scratch: CE only


def test_multi_source_l2t_ww_pairs_both_sources(tmp_path):
    trainer = run(tmp_path, method="l2t-ww", sources=2, max_iters=2)
    assert len(trainer.pairs) == 30 and max(m for m, _ in trainer.pairs) >= 9  # second source's maps
    trainer.fit(progress=False)
    named = run(tmp_path, "named", method="l2t-ww", sources=2, pairs="one-to-one").pairs  # a name: per source too
    assert len(named) == 6 and named[3:] == [(m + 9, n) for m, n in named[:3]]  # resnet20 has 9 maps


def test_beta_zero_l2t_ww_equals_scratch_step_for_step(tmp_path):
    a = run(tmp_path, "a", method="scratch")
    b = run(tmp_path, "b", method="l2t-ww", beta=0.0)
    for (xa, ya), (xb, yb) in zip(a.train_loader, b.train_loader):
        assert torch.equal(xa, xb)
        la, _, _ = a.step(xa, ya)
        lb, _, _ = b.step(xb, yb)
        assert torch.equal(la, lb)
        for (k, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
            assert torch.equal(pa, pb), k


def test_meta_networks_receive_nonzero_gradients_and_move(tmp_path):
    trainer = run(tmp_path, method="l2t-ww")
    before = [p.detach().clone() for p in trainer.meta_optimizer.param_groups[0]["params"]]
    x, y = next(iter(trainer.train_loader))
    trainer.step(x, y)
    grads = [p.grad for p in trainer.meta_optimizer.param_groups[0]["params"]]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    after = trainer.meta_optimizer.param_groups[0]["params"]
    assert any(not torch.equal(a, b) for a, b in zip(after, before))


def test_the_trainer_puts_algorithm_1s_meta_gradient_on_phi(tmp_path):
    """phi.grad after a step is grad_phi L_org(theta_{T+1}) from the state right after line 4.

    At the run's lr, beta, T.
    """
    import copy

    from l2t.lookahead import meta_gradient

    trainer = run(tmp_path, method="l2t-ww", lr=0.05, beta=0.7, T=3)
    reference = {}
    meta = Trainer.meta

    def checked(self, x, y, s_feats, what_w, where_l, lr=None):
        model, regressors = copy.deepcopy(self.model), copy.deepcopy(self.regressors)
        what, where = copy.deepcopy(self.what), copy.deepcopy(self.where)
        sgd = torch.optim.SGD(
            list(model.parameters()) + list(regressors.parameters()), lr=0.05, momentum=0.9, weight_decay=1e-4
        )
        sgd.load_state_dict(copy.deepcopy(self.optimizer.state_dict()))  # theta_0's momentum buffers
        outer, _ = meta_gradient(model, regressors, s_feats, x, y, what(s_feats), where(s_feats), sgd, 0.7, 3)
        reference["grads"] = torch.autograd.grad(outer, list(what.parameters()) + list(where.parameters()))
        return meta(self, x, y, s_feats, what_w, where_l, lr)

    trainer.meta = checked.__get__(trainer)
    x, y = next(iter(trainer.train_loader))
    trainer.step(x, y)
    phi = trainer.meta_optimizer.param_groups[0]["params"]
    assert len(phi) == len(reference["grads"])
    for p, g in zip(phi, reference["grads"]):
        assert torch.allclose(p.grad, g, rtol=1e-4, atol=1e-7)
    assert sum(float(g.abs().sum()) for g in reference["grads"]) > 0


def test_meta_every_k_moves_phi_only_on_every_kth_iteration(tmp_path):
    trainer = run(tmp_path, method="l2t-ww", meta_every=2)
    phi = trainer.meta_optimizer.param_groups[0]["params"]
    batches = iter(trainer.train_loader)
    moved = []
    for _ in range(2):
        before = [p.detach().clone() for p in phi]
        trainer.step(*next(batches))
        moved.append(any(not torch.equal(a, b) for a, b in zip(phi, before)))
    assert moved == [True, False]  # iteration 0 updates phi, iteration 1 does not


def test_an_exact_step_does_no_repeated_work(tmp_path):
    # Issue 4: source features once per batch, no replayed forwards. In one L2T-ww iteration the source runs
    # once and the target T + 3 times (Alg. 1 line 4, T matching steps, the CE step, the outer loss), and each
    # extra lookahead step adds the same FLOPs (counted by torch.utils.flop_counter: no timing noise).
    flops = {}
    for T in (1, 2, 3):
        trainer = run(tmp_path, f"T{T}", method="l2t-ww", T=T)
        calls = {"source": 0, "target": 0}

        def counting(name):
            return lambda *_: calls.update({name: calls[name] + 1})

        trainer.sources[0].register_forward_pre_hook(counting("source"))
        trainer.model.register_forward_pre_hook(counting("target"))
        x, y = next(iter(trainer.train_loader))
        with FlopCounterMode(display=False) as counter:
            trainer.step(x, y)
        assert calls == {"source": 1, "target": T + 3}
        flops[T] = counter.get_total_flops()
    assert flops[3] - flops[2] == flops[2] - flops[1] > 0


def test_resume_after_a_kill_reproduces_the_uninterrupted_run(tmp_path, monkeypatch):
    full = run(tmp_path, "full", method="l2t-ww", epochs=3).fit(progress=False)
    killed = run(tmp_path, "killed", method="l2t-ww", epochs=3)
    original = Trainer._train_epoch
    calls = {"n": 0}

    def dies_in_epoch_two(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(2.0)  # a slow first epoch: its time must survive the kill
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return original(self, *a, **k)

    monkeypatch.setattr(Trainer, "_train_epoch", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        killed.fit(progress=False)
    monkeypatch.setattr(Trainer, "_train_epoch", original)
    resumed = run(tmp_path, "killed", method="l2t-ww", epochs=3).fit(resume=True, progress=False)
    assert metrics(tmp_path / "full") == metrics(tmp_path / "killed")
    assert resumed["test_acc"] == full["test_acc"] and resumed["best_val_epoch"] == full["best_val_epoch"]
    assert [r["epoch"] for r in resumed["curves"]] == [0, 1, 2] and "lambda" in resumed["curves"][-1]
    elapsed = [r["elapsed_s"] for r in resumed["curves"]]
    assert elapsed[0] > 2.0 and elapsed == sorted(elapsed) and resumed["wall_time_s"] >= elapsed[-1]  # across the kill


def test_resume_between_checkpoints_redoes_the_epochs_after_it_and_survives_a_cut_metrics_row(tmp_path, monkeypatch):
    """The Figure 5 protocol saves every 20th epoch: a kill later loses the rows after the save, which are redone."""
    full = run(tmp_path, "full", method="fm-one-to-one", epochs=4, ckpt_every=2).fit(progress=False)
    original = Trainer._train_epoch
    calls = {"n": 0}

    def dies_in_epoch_four(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("killed")
        return original(self, *a, **k)

    monkeypatch.setattr(Trainer, "_train_epoch", dies_in_epoch_four)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "killed", method="fm-one-to-one", epochs=4, ckpt_every=2).fit(progress=False)
    monkeypatch.setattr(Trainer, "_train_epoch", original)
    rows = tmp_path / "killed" / "metrics.jsonl"
    assert len(rows.read_text().splitlines()) == 3  # epochs 0-2 written; the checkpoint holds epoch 2
    with open(rows, "a") as f:
        f.write('{"epoch": 3, "train_lo')  # a row the kill cut off mid-write
    resumed = run(tmp_path, "killed", method="fm-one-to-one", epochs=4, ckpt_every=2).fit(resume=True, progress=False)
    assert metrics(tmp_path / "killed") == metrics(tmp_path / "full")  # epoch 2 redone once, the cut row dropped
    assert resumed["test_acc"] == full["test_acc"]


def test_result_scores_the_best_validation_weights_not_the_last(tmp_path, monkeypatch):
    """test_acc in result.json is the test accuracy of the weights of the best-validation epoch."""
    trainer = run(tmp_path, method="scratch", epochs=3)
    scores, states = iter([50.0, 80.0, 20.0]), []  # validation accuracy of epochs 0, 1, 2: the best is epoch 1
    accuracy = Trainer.accuracy

    def scripted(self, part, labels=None, state=None):
        if part is self.data["val"]:
            states.append({k: v.clone() for k, v in self.model.state_dict().items()})
            return next(scores)
        return accuracy(self, part, labels, state)

    predict, scored = Trainer.predict, []

    def spied(self, part, labels=None, state=None, **kw):
        if part is self.data["test"]:
            scored.append(state)
        return predict(self, part, labels, state, **kw)

    monkeypatch.setattr(Trainer, "accuracy", scripted)
    monkeypatch.setattr(Trainer, "predict", spied)
    result = trainer.fit(progress=False)
    assert result["best_val_epoch"] == 1 and result["best_val_acc"] == 80.0
    assert len(scored) == 1 and all(torch.equal(scored[0][k], v) for k, v in states[1].items())  # epoch 1's weights
    assert any(not torch.equal(states[1][k], v) for k, v in trainer.model.state_dict().items())  # not the last
    assert result["test_acc"] == accuracy(trainer, trainer.data["test"], state=states[1])


def test_a_checkpoint_resumes_only_its_own_run_and_starting_over_moves_it_aside(tmp_path, monkeypatch):
    run(tmp_path, method="scratch", epochs=2).fit(progress=False)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    with pytest.raises(ValueError, match="holds another run \\(epochs=2 there, 3 here\\)"):
        run(tmp_path, method="scratch", epochs=3).fit(resume=True, progress=False)  # not T_max=2 in 3 epochs
    run(tmp_path, method="scratch", epochs=2, device="cpu", workers=0).fit(resume=True, progress=False)  # how, not what

    def killed(self, *a, **k):
        raise KeyboardInterrupt("killed before the first save")

    monkeypatch.setattr(Trainer, "_train_epoch", killed)
    with pytest.raises(KeyboardInterrupt):  # a new run in the same folder, the old one moved aside
        run(tmp_path, method="scratch", epochs=3).fit(progress=False, overwrite=True)
    assert not ckpt.exists()  # so a later --resume cannot continue the old run's weights
    assert len(list((tmp_path / "run").glob("replaced-*/checkpoint.pt"))) == 1


def test_a_slow_run_checkpoints_by_time_between_its_checkpoint_epochs(tmp_path, monkeypatch):
    import l2t.train as train

    saved = []
    monkeypatch.setattr(Trainer, "save", lambda self, path: saved.append(self.epoch))
    run(tmp_path, "fast", method="scratch", epochs=4, ckpt_every=100).fit(progress=False)
    assert saved == [4]  # only the last epoch: every 100th epoch never comes, and the run is fast
    saved.clear()
    monkeypatch.setattr(train, "CKPT_SECONDS", 0.0)  # now every epoch takes "too long" since the last save
    run(tmp_path, "slow", method="scratch", epochs=4, ckpt_every=100).fit(progress=False)
    assert saved == [1, 2, 3, 4]


def test_same_seed_gives_the_same_metrics_file(tmp_path):
    run(tmp_path, "a", method="fm-one-to-one").fit(progress=False)
    run(tmp_path, "b", method="fm-one-to-one").fit(progress=False)
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b")


def test_nonfinite_loss_without_a_checkpoint_says_there_is_none(tmp_path, monkeypatch):
    trainer = run(tmp_path, method="scratch", epochs=2, ckpt_every=5)
    step = Trainer.step

    def diverging(self, x, y):
        self.optimizer.param_groups[0]["lr"] = 1e30
        return step(self, x, y)

    monkeypatch.setattr(Trainer, "step", diverging)
    with pytest.raises(NonFiniteLoss, match="no checkpoint was saved before it"):
        trainer.fit(progress=False)


def test_nonfinite_loss_stops_with_epoch_and_step_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    trainer = run(tmp_path, method="fm-one-to-one", epochs=4)
    step = Trainer.step

    def diverging_from_epoch_two(self, x, y):
        if self.epoch == 2:  # a learning rate far too large, from the third epoch on
            self.optimizer.param_groups[0]["lr"] = 1e30
        return step(self, x, y)

    monkeypatch.setattr(Trainer, "step", diverging_from_epoch_two)
    with pytest.raises(NonFiniteLoss, match=r"at epoch 2, step \d+; the last good checkpoint \(epoch 2\) is kept"):
        trainer.fit(progress=False)
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_bad_method_and_device_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown method 'l2t'"):
        run(tmp_path, method="l2t")
    with pytest.raises(ValueError, match="device must be"):
        run(tmp_path, method="scratch", device="tpu")
    with pytest.raises(ValueError, match="scratch matches none"):  # used to fail with an IndexError
        run(tmp_path, method="scratch", pairs="4-0")
    # data settings fail before any image is read (no data here): a typo is not silently another split,
    # and 0 images per class is not silently the whole training set
    with pytest.raises(ValueError, match="split must be 'auto', 'paper' or 'none', got 'papr'"):
        Trainer(Config(method="scratch", dataset="stl10", split="papr", device="cpu"))
    with pytest.raises(ValueError, match="samples-per-class must be >= 1, got 0"):
        Trainer(Config(method="scratch", samples_per_class=0, device="cpu"))
    # counts: each of these used to divide by zero after training, or (max_iters=0, epochs=0) to write an
    # untrained model's result under a real run's name
    for field in ("epochs", "batch_size", "eval_every", "ckpt_every", "meta_every", "max_iters"):
        with pytest.raises(ValueError, match=f"{field.replace('_', '-')} must be >= 1, got 0"):
            Config(**{field: 0})
    with pytest.raises(ValueError, match="--T must be >= 0, got -1"):
        Config(T=-1)


def test_a_run_trained_with_cuda_graphs_loads_for_inspection_on_a_cpu(tmp_path):
    from l2t.inspect import load_run

    run(tmp_path, method="scratch", max_iters=1).fit(progress=False)
    config = tmp_path / "run" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "cuda_graph": True, "device": "cuda"}))
    trainer = load_run(tmp_path / "run", data=tiny_data())  # used to raise "--cuda-graph needs a CUDA device"
    assert trainer.device.type == "cpu" and trainer.graphed is None and trainer.iteration == 1


def meta_gradient_of_one_step(tmp_path, precision, lr):
    """phi's gradient after one L2T-ww iteration from a fixed float32 initialisation, as float64."""
    cfg = Config(
        method="l2t-ww",
        sources=["resnet20:random"],
        batch_size=12,
        device="cpu",
        lr=lr,
        bf16=precision == "bf16",
        out=str(tmp_path / precision),
    )
    trainer = Trainer(cfg, data=tiny_data(12), sources=tiny_sources())
    x, y = next(iter(trainer.train_loader))
    if precision == "fp64":
        for module in (trainer.model, trainer.regressors, trainer.what, trainer.where, *trainer.sources):
            module.double()
        x = x.double()
    loss, _, _ = trainer.step(x, y)
    assert torch.isfinite(loss)
    return torch.cat([p.grad.double().flatten() for p in trainer.meta_optimizer.param_groups[0]["params"]])


def test_bf16_first_order_parts_keep_the_meta_gradient_within_tolerance(tmp_path):
    # At a stable learning rate (0.01: the lookahead lowers the loss) the meta-gradient is well conditioned:
    # float32 lands within 10 % of float64 (3 % measured), and bf16 autocast of the source pass and of the
    # line-4 step (the lookahead stays float32) within the stated 30 % (15 % measured). At lr 0.1 from
    # initialisation the lookahead is unstable and even float32 is off by more than 100 % (see benchmarks/).
    reference = meta_gradient_of_one_step(tmp_path, "fp64", 0.01)
    error = lambda g: float((g - reference).norm() / reference.norm())
    fp32, bf16 = (
        error(meta_gradient_of_one_step(tmp_path, "fp32", 0.01)),
        error(meta_gradient_of_one_step(tmp_path, "bf16", 0.01)),
    )
    assert fp32 < 0.10, fp32
    assert 0 < bf16 < 0.30, bf16
    assert bf16 > 2 * fp32, (bf16, fp32)  # bf16 really ran: an ignored flag would give float32's error


def test_cuda_graph_option_needs_a_gpu(tmp_path):
    with pytest.raises(ValueError, match="needs a CUDA device"):
        run(tmp_path, method="l2t-ww", cuda_graph=True)


@pytest.mark.parametrize("method", ["l2t-ww", "fm-one-to-one"])
def test_authors_bn_updates_move_running_statistics_a_second_time_at_theta_0(tmp_path, method):
    """--bn-updates authors: after the meta-step, one more train-mode forward at theta_0 (float64, by hand).

    Only the BatchNorm running statistics differ from the default: each moves by its momentum towards the batch
    statistics of its input at theta_0, and num_batches_tracked counts 2; parameters and phi are unchanged.
    A method without a meta-step has nothing to repeat: both settings train it identically.
    """
    from torch import nn

    from l2t.lookahead import lookahead_batch_norm

    torch.set_default_dtype(torch.float64)
    try:
        once = run(tmp_path, "once", method=method)
        twice = run(tmp_path, "twice", method=method, bn_updates="authors")
        x, y = next(iter(once.train_loader))
        x = x.double()
        once.step(x, y)
        twice.step(x, y)
        bns = {k: m for k, m in once.model.named_modules() if isinstance(m, nn.BatchNorm2d)}
        inputs = {}
        hooks = [m.register_forward_pre_hook(lambda mod, a, k=k: inputs.__setitem__(k, a[0])) for k, m in bns.items()]
        with torch.no_grad(), lookahead_batch_norm(once.model):  # theta_0's batch statistics, nothing moved
            once.model(x)
        for h in hooks:
            h.remove()
    finally:
        torch.set_default_dtype(torch.float32)
    state = twice.model.state_dict()
    repeated = once.meta_optimizer is not None
    for k, bn in bns.items():
        var, mean = torch.var_mean(inputs[k], (0, 2, 3), correction=1)
        m = bn.momentum if repeated else 0.0
        assert int(state[f"{k}.num_batches_tracked"]) == (2 if repeated else 1), k
        assert torch.allclose(state[f"{k}.running_mean"], (1 - m) * bn.running_mean + m * mean, rtol=0, atol=1e-12), k
        assert torch.allclose(state[f"{k}.running_var"], (1 - m) * bn.running_var + m * var, rtol=0, atol=1e-12), k
    for (k, a), b in zip(once.model.named_parameters(), twice.model.parameters()):
        assert torch.equal(a, b), k
    if repeated:
        for a, b in zip(once.meta_optimizer.param_groups[0]["params"], twice.meta_optimizer.param_groups[0]["params"]):
            assert torch.equal(a, b)
        assert any(
            not torch.equal(a, state[f"{k}.running_mean"]) for k, a in ((k, bn.running_mean) for k, bn in bns.items())
        )


def test_bn_updates_is_checked_recorded_and_named(tmp_path):
    from l2t.reproduce import run_id

    with pytest.raises(ValueError, match="bn-updates must be 'once' or 'authors'"):
        Config(bn_updates="twice")
    assert (
        run_id(Config(method="l2t-ww", samples_per_class=10, bn_updates="authors")) == "l2t-ww-n10-s0-lr0.1-bnauthors"
    )
    assert (
        run_id(Config(method="fm-all-to-all", samples_per_class=10, bn_updates="authors"))
        == "fm-all-to-all-n10-s0-lr0.1"
    )  # nothing to repeat without a meta-step
    result = run(tmp_path, method="l2t-ww", bn_updates="authors", max_iters=1).fit(progress=False)
    assert result["config"]["bn_updates"] == "authors" and result["cpu_capability"]
