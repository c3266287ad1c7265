"""Chapter 05's Exercise 4 (Algorithm 1's meta-step, end to end): the library's ``algorithm1`` behaves as the chapter
shows, and the staged grader fails each plausible mistake at the stage that owns it."""

import pytest
import torch
from test_student_notebooks import EXERCISES, grade

from l2t.teach.toy import algorithm1, toy_problem


def _phi(problem):
    return [q.detach().clone() for q in problem.phi()]


def test_algorithm1_leaves_the_callers_problem_and_a_frozen_phi_alone():
    problem = toy_problem(seed=0)
    phi, theta = _phi(problem), [q.detach().clone() for q in problem.optimizer.param_groups[0]["params"]]
    frozen, frozen_problem = algorithm1(problem, 3, meta_lr=0.0)
    learned, learned_problem = algorithm1(problem, 3, meta_lr=1e-2)
    assert all(torch.equal(a, b) for a, b in zip(_phi(problem), phi))  # the caller's phi ...
    assert all(torch.equal(q, b) for q, b in zip(problem.optimizer.param_groups[0]["params"], theta))  # ... theta
    assert all(torch.equal(a, b) for a, b in zip(_phi(frozen_problem), phi))  # meta_lr = 0: phi frozen
    assert all(not torch.equal(a, b) for a, b in zip(_phi(learned_problem), phi))  # every tensor of phi learns
    assert len(frozen["L_org"]) == len(learned["L_org"]) == 3
    assert frozen["L_org"][0] == learned["L_org"][0]  # the same first line-4 step
    assert frozen["lambda"][0] == learned["lambda"][0] and len(frozen["lambda"][0]) == 4  # one mean per pair
    assert frozen["lambda"][2] == frozen["lambda"][0] != learned["lambda"][2]


def test_algorithm1_reproduces_the_chapters_run():
    """The chapter's 40 iterations on toy problem 0: learning phi helps the target by turning one pair down."""
    problem = toy_problem(seed=0)
    learned, _ = algorithm1(problem, 40, meta_lr=1e-2)
    frozen, _ = algorithm1(problem, 40, meta_lr=0.0)
    lams = torch.tensor(learned["lambda"])
    assert learned["L_org"][-1] < frozen["L_org"][-1]
    assert lams[-1].min() < 0.5 * lams[0].min() and bool((lams[-1] < lams[0]).all())


[(SOLUTION, GRADER, BEFORE)] = [
    (sol, gr, before)
    for name, _, _, sol, gr, before in EXERCISES
    if name == "05_meta_gradient" and "def meta_step" in sol
]

# plausible mistakes: (what the solution says, the mistaken text, the stage whose FAIL it must be)
MISTAKES = [
    ("[a.detach() for a in w], [a.detach() for a in lam]", "w, lam", 1),  # line 4 trains phi too
    ("    problem.optimizer.zero_grad(set_to_none=True)\n", "", 1),  # stale theta gradients
    (", [a.detach() for a in lam], problem.beta)", ", [a.detach() for a in lam])", 1),  # beta left out
    ("    meta_opt.zero_grad(set_to_none=True)\n", "", 2),  # meta-gradients pile up
    (
        '        history["L_org"].append(line4(problem))\n        if meta_lr > 0:\n'
        "            meta_step(problem, meta_opt, T)\n",
        "        if meta_lr > 0:\n            meta_step(problem, meta_opt, T)\n"
        '        history["L_org"].append(line4(problem))\n',
        3,
    ),  # meta-step before line 4
    ("    problem = copy.deepcopy(problem)\n", "", 3),  # no copy: trains the input
    ("meta_step(problem, meta_opt, T)\n    return", "meta_step(problem, meta_opt, 2)\n    return", 3),  # T ignored
]


@pytest.mark.parametrize(
    "right, wrong, stage",
    MISTAKES,
    ids=["not-detached", "no-zero-grad", "no-beta", "no-meta-zero-grad", "meta-step-first", "no-deepcopy", "T-ignored"],
)
def test_the_grader_fails_each_mistake_at_its_own_stage(right, wrong, stage):
    assert SOLUTION.count(right) == 1
    passed, printed = grade(SOLUTION.replace(right, wrong), GRADER, BEFORE)
    fail = [line for line in printed.splitlines() if line.startswith("FAIL")]
    assert not passed and len(fail) == 1 and f"stage {stage} of 3" in fail[0], printed
    assert printed.count("PASS") == stage - 1, printed
