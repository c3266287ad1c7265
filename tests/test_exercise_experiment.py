"""Chapter 08's exercise 8 (the experiment question): each plausible mistake fails at its own stage of the grader,
and the grader's made-up folder holds what it must (the reference is the library's, computed afresh)."""

import pytest
from test_student_notebooks import EXERCISES
from test_student_notebooks import grade as grade_cells

from l2t.report import runs
from l2t.teach.grading_experiment import library_table, make_folder

[(SOLUTION, GRADER, BEFORE)] = [
    (sol, gr, bf) for name, _, _, sol, gr, bf in EXERCISES if name == "08_limited_data" and "def comparison" in sol
]


def grade(source):
    """Exercise 7's solution, ``source`` and the grader in a fresh namespace: (verdict, what it printed)."""
    return grade_cells(source, GRADER, BEFORE)


# (what the student wrote instead, [(text of the solution, the mistaken text)], the stage that must fail)
MISTAKES = [
    ("suffixed files mixed in", [('-lr{lr:g}.json")', '-lr{lr:g}*.json")')], 1),  # -kept, -bnauthors
    ("validation accuracy", [('result["test_acc"]', 'result["best_val_acc"]')], 1),
    ("training accuracy", [('result["test_acc"]', 'result["final_train_acc"]')], 1),
    (
        "seed from the name, no check",
        [
            ("if result_problem(path):", "if not path.exists():"),  # a renamed copy
            ('result["config"]["seed"]', 'int(path.stem.split("-s")[1].split("-")[0])'),
        ],
        1,
    ),
    ("one seed kept", [("len(seeds) >= 2", "len(seeds) >= 1")], 2),
    ("a's seeds counted", [("len(seeds))", "len(x))")], 2),
    (
        "paired by position",
        [("paired_analysis(x, y)", "paired_analysis(dict(enumerate(x.values())), dict(enumerate(y.values())))")],
        2,
    ),
    ("the baseline at lr 0.01", [("accuracies(folder, b, n, lr)", "accuracies(folder, b, n, 0.01)")], 2),
    ("keys (lr, N)", [("table[(n, lr)]", "table[(lr, n)]")], 2),
    ("seeds as strings", [('result["config"]["seed"]', 'str(result["config"]["seed"])')], 1),
    ("lr keys as strings", [("table[(n, lr)]", "table[(n, f'{lr:g}')]")], 2),
]


@pytest.mark.parametrize("name, edits, stage", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_a_plausible_mistake_fails_at_its_own_stage(name, edits, stage):
    wrong = SOLUTION
    for right, mistaken in edits:
        assert right in wrong, right
        wrong = wrong.replace(right, mistaken, 1)
    passed, printed = grade(wrong)
    fail = [line for line in printed.splitlines() if line.startswith("FAIL")]
    assert not passed and len(fail) == 1 and f"stage {stage} of 2" in fail[0], printed
    assert printed.count("PASS") == stage - 1


def test_the_solution_passes_both_stages():
    passed, printed = grade(SOLUTION)
    assert passed and printed.count("PASS") == 2 and "stage 2 of 2" in printed, printed


def test_the_made_up_folder_has_one_rule_to_break_per_case(tmp_path):
    folder = make_folder(tmp_path)
    assert {s: r["test_acc"] for s, r in runs(folder, "l2t-ww", 10, 0.01).items()}.keys() == {0, 2, 3}
    assert {p.name for p in folder.glob("*.json")} >= {
        "l2t-ww-n10-s1-lr0.01-kept.json",
        "summary.json",
        "l2t-ww-n10-s0-lr0.01-bnauthors.json",
        "fm-all-to-all-n10-s0-lr0.01-it5.json",
        "l2t-ww-n10-s5-lr0.01.json",
    }  # seed 0's result, renamed
    table = library_table(folder)
    assert set(table) == {(10, 0.01), (10, 0.03)} and table[(10, 0.01)][3] == 2  # N = 25 shares one seed only
