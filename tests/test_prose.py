"""The chapters speak to a student: no device names, lending, work history or benchmark paths in their prose
or code comments (those belong in the appendix, book/appendix.md)."""

import io
import json
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("**/*.ipynb")) + [
    ROOT / "book" / f for f in ("intro.md", "paper.md", "teaching.md")
]
FORBIDDEN = re.compile(
    r"\b(H100|H200|A100|V100|EPYC|Xeon|AVX[-\w]*)\b"  # device names
    r"|\b(lent|lend|lending)\b"  # lending
    r"|\bsessions?\b|\bfor days\b|\bover days\b|\bthis project's\b|\b\d-core\b|\bdownloaded there\b"  # work history
    r"|benchmarks/results",  # benchmark result paths
    re.I,
)


def comments(code):
    """The comments of a code cell (IPython's ! and % lines are read as comments too)."""
    code = "\n".join("#" + line if line.lstrip().startswith(("!", "%")) else line for line in code.splitlines())
    try:
        return [t.string for t in tokenize.generate_tokens(io.StringIO(code).readline) if t.type == tokenize.COMMENT]
    except (tokenize.TokenError, SyntaxError):
        return [line for line in code.splitlines() if "#" in line]


def prose(path):
    """(where, text) of every Markdown cell and code comment of a notebook, or the lines of a Markdown page."""
    if path.suffix == ".md":
        return [(f"line {i + 1}", line) for i, line in enumerate(path.read_text().splitlines())]
    found = []
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        text = "".join(cell["source"])
        found += (
            [(f"cell {i}", text)] if cell["cell_type"] == "markdown" else [(f"cell {i}", c) for c in comments(text)]
        )
    return found


# the reproduction's reference pages may name machines and commands, never how the work went
REFERENCE = [ROOT / "book" / f for f in ("results.md", "results_detail.md", "appendix.md")]
HISTORY = re.compile(
    r"\b(lent|lend|lending)\b|\bsessions?\b|\bcommit [0-9a-f]{7,}|\(commit [0-9a-f]{7,}|\bdriver \d"
    r"|\bin the background\b|\breproduction paused\b",
    re.I,
)


def hits(path, pattern):
    """'where: match in text' for every place in ``path``'s prose that ``pattern`` finds."""
    return [
        f"{where}: {m.group(0)!r} in {text.strip()[:80]!r}"
        for where, text in prose(path)
        for m in [pattern.search(text)]
        if m
    ]


@pytest.mark.parametrize("path", REFERENCE, ids=lambda p: p.name)
def test_reference_pages_hold_no_work_history(path):
    assert hits(path, HISTORY) == []


def test_the_history_check_finds_each_kind():
    for text in (
        "some sessions were lent a GPU",
        "at commit 6c3b0f6",
        "Before (commit be0a796)",
        "driver 580.1",
        "ran in the background of other work",
        "with the background reproduction paused",
    ):
        assert HISTORY.search(text), text
    for text in ("on an NVIDIA H100", "`l2t reproduce figure5`", "the CPU instruction set", "a 2-core AVX2 CPU"):
        assert not HISTORY.search(text), text


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_chapter_prose_is_for_students(path):
    assert hits(path, FORBIDDEN) == []


def test_the_check_finds_each_kind():
    for text in (
        "on an H200",
        "lent to a few sessions",
        "it runs for days",
        "a shared 2-core machine",
        "see benchmarks/results/x.json",
        "AVX512 kernels",
    ):
        assert FORBIDDEN.search(text), text
    for text in ("the paper's lr 0.1", "on a GPU", "the appendix", "a Colab GPU", "the batch's loss"):
        assert not FORBIDDEN.search(text), text
    assert comments("x = 1  # one comment\n!git clone url  # shell\ny = '# not a comment'") == [
        "# one comment",
        "#!git clone url  # shell",
    ]


@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_each_chapter_opens_with_learning_objectives_and_closes_with_its_checks(path):
    cells = json.loads(path.read_text())["cells"]
    first = "".join(cells[0]["source"])
    objectives = (
        first.split("**Learning objectives.**", 1)[1].split("\n\n")[1] if "**Learning objectives.**" in first else ""
    )
    assert 2 <= sum(line.startswith("* ") for line in objectives.splitlines()) <= 4
    headings = [
        k
        for k, c in enumerate(cells)
        if c["cell_type"] == "markdown" and "## What you should have seen" in "".join(c["source"]).splitlines()
    ]
    assert len(headings) == 1
    checks = next(c for c in cells[headings[0] :] if c["cell_type"] == "code")
    assert "assert " in "".join(checks["source"])
