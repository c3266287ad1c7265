"""Exercise 5 (chapter 06, Algorithm 1's line 4): each plausible mistake fails at its own stage of the grader,
and the grader's setup compares like with like (copies that share nothing with the Trainer, its RNG untouched)."""

import pytest
import torch
from test_student_notebooks import EXERCISES, grade

from l2t.teach import grading_wfm_step as G

[(SOLUTION, GRADER, BEFORE)] = [(sol, gr, bf) for name, _, _, sol, gr, bf in EXERCISES if name == "06_full_l2t_ww"]

# (text of the instructor solution, the mistaken text, the stage that must report it)
MISTAKES = [
    ("pow(2).mean(dim=(2, 3))", "pow(2).sum(dim=(2, 3))", 1),  # sum, not mean, over H, W
    ('mode="bilinear", align_corners=False', 'mode="bilinear", align_corners=True', 1),  # another resize
    ('s = F.interpolate(s, size=t.shape[-2:], mode="bilinear", align_corners=False)', "pass", 1),  # no resize
    ("(l * (wk * e).sum(1)).mean()", "(wk * e).sum(1).mean()", 2),  # lambda not applied
    ("(wk * e).sum(1)", "e.mean(1)", 2),  # w not applied (uniform)
    ("+ beta * wfm", "+ wfm", 2),  # beta forgotten
    ("F.cross_entropy(logits, y) + ", "", 2),  # the task loss missing
    ("[a.detach() for a in w], [a.detach() for a in lam]", "w, lam", 3),  # gradients reach phi
    ("    optimizer.zero_grad()\n", "", 3),  # last step's gradients added
    ("logits, target_maps = model(x)", "logits, target_maps = model(x)[0], model(x)[1]", 3),  # BN moved twice
    ("    optimizer.step()\n", "", 3),  # no step at all
]


@pytest.mark.parametrize("right, wrong, stage", MISTAKES, ids=[f"stage{m[2]}:{m[1][:24]}" for m in MISTAKES])
def test_a_mistake_fails_at_its_own_stage(right, wrong, stage):
    assert right in SOLUTION
    passed, printed = grade(SOLUTION.replace(right, wrong, 1), GRADER, BEFORE)
    fail = [line for line in printed.splitlines() if line.startswith("FAIL")]
    assert not passed and len(fail) == 1 and f"stage {stage} of 3" in fail[0], printed
    assert printed.count("PASS") == stage - 1, printed


# (the mistake, the text of the solution, the mistaken text, what the FAIL line must say to point at the cause)
CAUSES = [
    (
        "a float from total_loss",
        "return F.cross_entropy(logits, y) + beta * wfm",
        "return (F.cross_entropy(logits, y) + beta * wfm).item()",
        "backward cannot go through",
    ),
    ("no zero_grad", "    optimizer.zero_grad()\n", "", "optimizer.zero_grad() before backward"),
    ("no step", "    optimizer.step()\n", "", "no step: optimizer.step() after backward"),
]


@pytest.mark.parametrize("name, right, wrong, cause", CAUSES, ids=[c[0] for c in CAUSES])
def test_the_fail_line_names_the_likely_cause(name, right, wrong, cause):
    assert right in SOLUTION
    _, printed = grade(SOLUTION.replace(right, wrong, 1), GRADER, BEFORE)
    assert cause in printed, printed


def test_the_copies_share_nothing_with_the_trainer_and_keep_its_optimizer_state():
    with torch.random.fork_rng():
        trainer = G._trainer()
        trainer.line4(*next(iter(trainer.train_loader)))
        trainer.optimizer.step()
        model, regressors, optimizer, what, where = G._copies(trainer)
    copies, theta = [*model.parameters(), *regressors.parameters()], G._theta(trainer)
    assert [id(q) for q in optimizer.param_groups[0]["params"]] == [id(q) for q in copies]
    assert not {id(q) for q in copies} & {id(q) for q in theta}
    for q, r in zip(copies, theta):
        assert torch.equal(q, r) and torch.equal(q.grad, r.grad)  # the first step's gradients come along
        assert torch.equal(optimizer.state[q]["momentum_buffer"], trainer.optimizer.state[r]["momentum_buffer"])
    lam = torch.stack(where(trainer.sources[0](next(iter(trainer.train_loader))[0])[1]))
    assert lam.min() > 0 and lam.max() < 6 and lam.std() > 0.05  # lambda non-uniform, no pair switched off


def test_the_grader_leaves_the_global_random_numbers_as_they_were():
    namespace = {}
    exec(compile(SOLUTION, "<solution>", "exec"), namespace)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    assert G.check_wfm_step(namespace["pair_errors"], namespace["total_loss"], namespace["training_step"])
    assert torch.equal(torch.get_rng_state(), state)
