"""Student notebooks and Colab links: ``python book/student_notebooks.py`` (``--check`` only compares).

* Every notebook's first cell carries a link that opens it in Colab, built from ``_config.yml``'s repository
  (the same setting as the book's launch buttons).
* Every instructor notebook with cells tagged ``exercise`` gets a student version in ``notebooks/student/``:
  in each ``exercise`` cell the lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` become
  ``...  # your code here`` (signatures, docstrings and imports stay), the outputs of ``exercise`` and
  ``grader`` cells are cleared, and every other cell is kept as it is, outputs included, so that a student
  sees what the chapter should print once the exercise is solved; relative links are rewritten for the
  deeper folder. Solutions stay in the instructor notebooks.
"""

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_html import colab_url  # noqa: E402  (the URL the browser check expects)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
STUDENT = NOTEBOOKS / "student"
CONFIG = ROOT / "_config.yml"
COLAB = re.compile(r"^\[Open in Colab\]\(.*\)\n*", re.M)
LINK = re.compile(r"\]\((?![a-z]+:|#|/)([^)\s]+)\)")  # a relative Markdown link or image target
BLOCK = re.compile(r"^([ \t]*)# BEGIN SOLUTION\n.*?^[ \t]*# END SOLUTION\n?", re.M | re.S)
NOTE = (
    "**Student version.** The exercise cells below are blank: write the code where it says\n"
    "`...  # your code here`, then run the grading cell after it, which prints PASS or FAIL. Cells after an\n"
    "exercise may use your solution. Every other output is the one the chapter should show."
)


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def template(source):
    """An exercise cell's code with each solution block replaced by ``...  # your code here``."""
    out, n = BLOCK.subn(lambda m: f"{m.group(1)}...  # your code here\n", source)
    if "SOLUTION" in out:
        raise ValueError(f"unbalanced solution markers in exercise cell:\n{source[:200]}")
    if n == 0:
        raise ValueError(f"exercise cell without a '# BEGIN SOLUTION' ... '# END SOLUTION' block:\n{source[:200]}")
    return out


def with_colab_link(nb, page):
    """``nb`` with the first cell's Colab link (after its title line) pointing at ``page``'s notebook."""
    nb = copy.deepcopy(nb)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "a notebook must open with its title"
    title, _, rest = first.source.partition("\n")
    rest = COLAB.sub("", rest.lstrip("\n"))
    first.source = f"{title}\n\n[Open in Colab]({colab_url(CONFIG, page)})\n\n{rest}".rstrip("\n")
    return nb


def student_version(nb, name):
    """The student notebook generated from instructor notebook ``nb`` (file name ``name``)."""
    nb = with_colab_link(nb, f"notebooks/student/{Path(name).stem}")
    title, _, rest = nb.cells[0].source.partition("\n")
    nb.cells[0].source = f"{title} (student version)\n{rest}"
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(NOTE, id="student-note"))
    for cell in nb.cells:
        if cell.cell_type == "markdown":  # one folder deeper: relative links gain a ../
            cell.source = LINK.sub(r"](../\1)", cell.source)
        if cell.cell_type != "code":
            continue
        if "exercise" in tags(cell):
            cell.source = template(cell.source)
        if {"exercise", "grader"} & set(tags(cell)):
            cell.outputs, cell.execution_count = [], None
    return nb


def has_exercises(nb):
    return any("exercise" in tags(c) for c in nb.cells)


def expected_files():
    """{path: text} of every notebook as this script would write it: instructor notebooks, then student ones."""
    files = {}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        files[path] = nbformat.writes(with_colab_link(nb, f"notebooks/{path.stem}")) + "\n"
        if has_exercises(nb):
            files[STUDENT / path.name] = nbformat.writes(student_version(nb, path.name)) + "\n"
    return files


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report notebooks that differ; exit 1 if any")
    args = parser.parse_args(argv)
    files = expected_files()
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    stray = sorted(set(STUDENT.glob("*.ipynb")) - set(files))
    if args.check:
        for p in stale:
            print(f"out of date: {p.relative_to(ROOT)}")
        for p in stray:
            print(f"no instructor notebook with exercises for: {p.relative_to(ROOT)}")
        if stale or stray:
            print("run: python book/student_notebooks.py")
            return 1
        print(f"{len(files)} notebooks up to date")
        return 0
    STUDENT.mkdir(exist_ok=True)
    for p in stale:
        p.write_text(files[p])
        print(f"wrote {p.relative_to(ROOT)}")
    for p in stray:
        p.unlink()
        print(f"removed {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
