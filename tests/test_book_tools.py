"""The book's build helpers: the table of contents, the Colab URLs and the internal-link check."""
from pathlib import Path

import pytest
from conftest import book_script

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("bs4")
pytest.importorskip("yaml")


def _check_html():
    return book_script("check_html")


def test_toc_lists_every_chapter_once():
    pages = _check_html().toc_pages(ROOT / "_toc.yml")
    assert pages[0] == "book/intro"
    assert len(pages) == len(set(pages))
    notebooks = [p for p in pages if p.startswith("notebooks/") and not p.startswith("notebooks/student/")]
    assert [p.split("/")[1][:2] for p in notebooks] == [f"{i:02d}" for i in range(1, 12)]
    students = sorted(p.removeprefix("notebooks/student/") + ".ipynb" for p in pages if p.startswith("notebooks/student/"))
    assert students == sorted(p.name for p in (ROOT / "notebooks" / "student").glob("*.ipynb"))   # each one, once
    for page in ("book/paper", "book/results", "book/teaching", "book/instructors", "book/references", "book/appendix"):
        assert page in pages


def test_colab_url_points_at_the_notebook_in_the_configured_repository():
    url = _check_html().colab_url(ROOT / "_config.yml", "notebooks/01_problem_and_tools")
    assert url == ("https://colab.research.google.com/github/l2t-book/l2t/blob/main/"
                   "notebooks/01_problem_and_tools.ipynb")


def test_link_check_finds_missing_files_and_anchors(tmp_path):
    (tmp_path / "a.html").write_text('<h1 id="top">A</h1><a href="b.html#here">ok</a><a href="#top">self</a>'
                                     '<a href="https://example.org">external</a>')
    (tmp_path / "b.html").write_text('<p id="here">B</p><a href="a.html#nowhere">bad anchor</a>'
                                     '<a href="c.html">missing</a><img src="x.png">'
                                     '<script src="https://cdn.example.org/m.js"></script>')
    problems, n = _check_html().check_links(tmp_path)
    assert n == 2
    text = "\n".join(problems)
    assert "missing anchor #nowhere" in text and "c.html -> missing file" in text
    assert "x.png -> missing file" in text and "from the network" in text
    assert len(problems) == 4
