"""Stored notebook outputs that nbval compares are facts on any CPU; ignored outputs are always checked right after."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
IGNORE = "nbval-ignore-output"


def code_of(path):
    """A notebook's code cells, joined with newlines."""
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def unchecked_ignored_cells(cells):
    """Indices of code cells tagged nbval-ignore-output whose next code cell is ignored too or asserts nothing."""
    code = [(i, c) for i, c in enumerate(cells) if c["cell_type"] == "code"]
    bad = []
    for (i, cell), nxt in zip(code, code[1:] + [(None, None)]):
        if IGNORE not in cell.get("metadata", {}).get("tags", []):
            continue
        _, check = nxt
        if (
            check is None
            or IGNORE in check.get("metadata", {}).get("tags", [])
            or "assert " not in "".join(check["source"])
        ):
            bad.append(i)
    return bad


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_ignored_output_is_followed_by_a_compared_checking_cell(path):
    cells = json.loads(path.read_text())["cells"]
    assert unchecked_ignored_cells(cells) == []
    text = code_of(path)
    assert "NBVAL_IGNORE_OUTPUT" not in text and "NBVAL_SKIP" not in text  # tags, not comments in the code


def test_the_check_itself_catches_an_unchecked_or_doubly_ignored_cell():
    def cell(source, tags=()):
        return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": [source]}

    ok = [cell("train()", [IGNORE]), cell("assert loss < 1")]
    assert unchecked_ignored_cells(ok) == []
    assert unchecked_ignored_cells([cell("train()", [IGNORE]), cell("print(loss)")]) == [0]
    assert unchecked_ignored_cells([cell("a()", [IGNORE]), cell("assert b", [IGNORE])]) == [0, 1]
    assert unchecked_ignored_cells([cell("print(1)"), cell("train()", [IGNORE])]) == [1]  # nothing after it


def leaked_folders(source):
    """Calls in a notebook's code that make a folder outside the kernel's SCRATCH directory (left behind on disk)."""
    calls = [line.strip() for line in source.splitlines() if "mkdtemp(" in line]
    return [c for c in calls if "mkdtemp(dir=SCRATCH.name" not in c]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_run_folder_a_notebook_makes_lives_inside_its_scratch_directory(path):
    text = code_of(path)
    assert leaked_folders(text) == []
    if "mkdtemp(" in text:
        assert "SCRATCH = tempfile.TemporaryDirectory(" in text


def test_the_scratch_check_itself_sees_a_stray_folder():
    assert leaked_folders("out = tempfile.mkdtemp(prefix='x')") == ["out = tempfile.mkdtemp(prefix='x')"]
    assert leaked_folders("out = tempfile.mkdtemp(dir=SCRATCH.name, prefix='x')") == []


def test_a_kernel_removes_its_scratch_directory_when_it_stops(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            f"import tempfile\nSCRATCH = tempfile.TemporaryDirectory(dir={str(tmp_path)!r})\n"
            "open(tempfile.mkdtemp(dir=SCRATCH.name) + '/checkpoint.pt', 'w').write('x')\nprint(SCRATCH.name)"
        )
    ]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    made = nb.cells[0].outputs[0]["text"].strip()
    assert made.startswith(str(tmp_path)) and not Path(made).exists()  # the kernel stopped and took it away
