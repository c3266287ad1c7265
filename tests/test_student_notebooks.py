"""Student notebooks: generated from the instructor notebooks, up to date; every grader passes with the solution
put back, fails on the blank template, and fails on a plausible wrong solution."""

import contextlib
import io
from pathlib import Path

import pytest
from conftest import book_script

ROOT = Path(__file__).resolve().parents[1]
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("yaml")


GEN = book_script("student_notebooks")
STUDENT = sorted((ROOT / "notebooks" / "student").glob("*.ipynb"))


def exercises(nb):
    """[(exercise cell, its grader cell)] in order; each exercise cell is followed by a grader cell."""
    cells = nb.cells
    pairs = []
    for i, cell in enumerate(cells):
        if "exercise" in GEN.tags(cell):
            grader = next(c for c in cells[i + 1 :] if c.cell_type == "code")
            assert "grader" in GEN.tags(grader), f"the code cell after exercise cell {i} is not a grader"
            pairs.append((cell, grader))
    return pairs


def grade(exercise_source, grader_source, before=""):
    """Run an exercise cell and its grader in a fresh namespace: (the grader's verdict, what it printed).

    ``before``: the solutions of the notebook's earlier exercises, which a later one may build on.
    """
    namespace, out = {}, io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(before, "<earlier exercises>", "exec"), namespace)
        exec(compile(exercise_source, "<exercise>", "exec"), namespace)
        exec(compile(grader_source, "<grader>", "exec"), namespace)
    assert isinstance(namespace.get("passed"), bool), "a grading cell must set `passed` to the verdict"
    return namespace["passed"], out.getvalue()


def all_exercises():
    """(notebook, index, student exercise, solution, grader, earlier solutions) for every exercise."""
    found = []
    for path in STUDENT:
        student = exercises(nbformat.read(path, as_version=4))
        instructor = exercises(nbformat.read(ROOT / "notebooks" / path.name, as_version=4))
        assert len(student) == len(instructor) > 0
        for k, ((s_ex, s_gr), (i_ex, i_gr)) in enumerate(zip(student, instructor)):
            assert s_ex.id == i_ex.id and s_gr.source == i_gr.source
            before = "\n".join(ex.source for ex, _ in instructor[:k])
            found.append((path.stem, k, s_ex.source, i_ex.source, s_gr.source, before))
    return found


EXERCISES = all_exercises()
IDS = [f"{name}-{k}" for name, k, *_ in EXERCISES]


def test_the_student_notebooks_equal_a_fresh_generation():
    assert GEN.main(["--check"]) == 0
    assert [p.name for p in STUDENT] == [
        "03_what_to_transfer.ipynb",
        "04_where_to_transfer.ipynb",
        "05_meta_gradient.ipynb",
        "06_full_l2t_ww.ipynb",
        "07_baselines.ipynb",
        "08_limited_data.ipynb",
    ]


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_the_grader_passes_with_the_solution_put_back(exercise):
    _, _, _, solution, grader, before = exercise
    passed, printed = grade(solution, grader, before)
    assert passed and printed.startswith("PASS") and "FAIL" not in printed, printed


@pytest.mark.parametrize("exercise", EXERCISES, ids=IDS)
def test_the_grader_fails_on_the_blank_template(exercise):
    _, _, blank, solution, grader, before = exercise
    assert "# your code here" in blank and "SOLUTION" not in blank and blank != solution
    passed, printed = grade(blank, grader, before)
    assert not passed and "FAIL" in printed and "None" in printed, printed


# one plausible mistake per exercise: (notebook, text of the solution, the mistaken text)
MISTAKES = [
    ("03_what_to_transfer", "pow(2).mean(dim=(2, 3))", "pow(2).sum(dim=(2, 3))"),  # sum, not mean, over HW
    ("04_where_to_transfer", "F.relu6(", "F.relu("),  # no clamp at 6
    ("05_meta_gradient", "create_graph=True", "create_graph=False"),  # steps cut from phi
    ("05_meta_gradient", "g = torch.zeros_like(q)", "continue"),  # None grad skipped
    ("05_meta_gradient", "b = mu * b + g + wd * q", "b = b.mul_(mu).add_(g + wd * q)"),  # a buffer changed in place
    ("05_meta_gradient", "loss = wfm_loss(errors, w, lam, p.beta)", "loss = wfm_loss(errors, w, lam)"),  # beta left out
    ("07_baselines", "F.normalize(a.pow(2).mean(dim=1).flatten(1), dim=1)", "a.pow(2).mean(dim=1).flatten(1)"),
    ("08_limited_data", "sorted(a.keys() & b.keys())", "a"),  # a's extra seed
    (
        "08_limited_data",
        "[a[s] - b[s] for s in sorted(a.keys() & b.keys())]",
        "[x - y for x, y in zip(a.values(), b.values())]",
    ),  # paired by position
    ("08_limited_data", "0.5 + level / 2", "level"),  # a one-sided quantile
]


@pytest.mark.parametrize("name, right, wrong", MISTAKES, ids=[f"{m[0]}:{m[2][:20]}" for m in MISTAKES])
def test_the_grader_fails_on_a_plausible_mistake(name, right, wrong):
    [(solution, grader, before)] = [(sol, gr, bf) for n, _, _, sol, gr, bf in EXERCISES if n == name and right in sol]
    passed, printed = grade(solution.replace(right, wrong, 1), grader, before)
    assert not passed and "FAIL" in printed, printed


def test_template_keeps_signature_and_docstring_and_blanks_each_solution_block():
    source = (
        'import torch\n\n\ndef f(x):\n    """Doc."""\n    # BEGIN SOLUTION\n    y = x + 1\n    return y\n'
        "    # END SOLUTION\n\n\ndef g(x):\n    h = 2\n    # BEGIN SOLUTION\n    return h * x\n"
        "    # END SOLUTION\n"
    )
    assert GEN.template(source) == (
        'import torch\n\n\ndef f(x):\n    """Doc."""\n    ...  # your code here\n\n\n'
        "def g(x):\n    h = 2\n    ...  # your code here\n"
    )
    with pytest.raises(ValueError, match="without"):
        GEN.template("def f(x):\n    return x\n")
    with pytest.raises(ValueError, match="unbalanced"):
        GEN.template("def f(x):\n    # BEGIN SOLUTION\n    return x\n")


def test_a_student_notebook_differs_from_its_instructor_notebook_only_where_it_should():
    for path in STUDENT:
        student = nbformat.read(path, as_version=4)
        instructor = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
        assert "(student version)" in student.cells[0].source.splitlines()[0]
        assert f"notebooks/student/{path.name})" in student.cells[0].source  # its own Colab link
        assert f"notebooks/{path.name})" in instructor.cells[0].source
        kept = student.cells[2:]  # after the title and the student note
        assert len(kept) == len(instructor.cells) - 1
        for s, i in zip(kept, instructor.cells[1:]):
            if "exercise" in GEN.tags(i) or "grader" in GEN.tags(i):
                assert s.outputs == [] and (s.source != i.source) == ("exercise" in GEN.tags(i))
            elif s.cell_type == "markdown":
                assert s.source == GEN.LINK.sub(r"](../\1)", i.source)  # relative links one folder up
            else:
                assert s == i
    assert (
        GEN.LINK.sub(r"](../\1)", "[a](../book/x.md) [b](https://c) [c](#d) ![e](f.png)")
        == "[a](../../book/x.md) [b](https://c) [c](#d) ![e](../f.png)"
    )


def test_every_notebook_opens_with_its_colab_link():
    for path in sorted((ROOT / "notebooks").glob("**/*.ipynb")):
        first = nbformat.read(path, as_version=4).cells[0].source
        page = path.relative_to(ROOT).with_suffix("").as_posix()
        assert f"[Open in Colab]({GEN.colab_url(GEN.CONFIG, page)})" in first, path
