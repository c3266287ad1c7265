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
    students = sorted(
        p.removeprefix("notebooks/student/") + ".ipynb" for p in pages if p.startswith("notebooks/student/")
    )
    assert students == sorted(p.name for p in (ROOT / "notebooks" / "student").glob("*.ipynb"))  # each one, once
    for page in ("book/paper", "book/results", "book/teaching", "book/instructors", "book/references", "book/appendix"):
        assert page in pages


def test_colab_url_points_at_the_notebook_in_the_configured_repository():
    url = _check_html().colab_url(ROOT / "_config.yml", "notebooks/01_problem_and_tools")
    assert url == (
        "https://colab.research.google.com/github/l2t-book/l2t/blob/main/notebooks/01_problem_and_tools.ipynb"
    )


def test_link_check_finds_missing_files_and_anchors(tmp_path):
    (tmp_path / "a.html").write_text(
        '<h1 id="top">A</h1><a href="b.html#here">ok</a><a href="#top">self</a>'
        '<a href="https://example.org">external</a>'
    )
    (tmp_path / "b.html").write_text(
        '<p id="here">B</p><a href="a.html#nowhere">bad anchor</a>'
        '<a href="c.html">missing</a><img src="x.png">'
        '<script src="https://cdn.example.org/m.js"></script>'
    )
    problems, n = _check_html().check_links(tmp_path)
    assert n == 2
    text = "\n".join(problems)
    assert "missing anchor #nowhere" in text and "c.html -> missing file" in text
    assert "x.png -> missing file" in text and "from the network" in text
    assert len(problems) == 4


def test_results_pages_embed_only_what_the_build_draws_from_the_result_files(tmp_path, monkeypatch):
    """No page embeds a committed picture; the build redraws the figures and tables from the result files."""
    import json
    import re

    from conftest import fig5

    root = Path(__file__).resolve().parents[1]
    for page in (root / "book").glob("*.md"):
        assert not re.search(r"\{figure\}\s*/results/", page.read_text()), page.name
    prepare = book_script("prepare")
    results, gen = tmp_path / "figure5-quick", tmp_path / "_generated"
    results.mkdir()
    for method, accs in (("scratch", (30.0, 32.0)), ("l2t-ww", (33.0, 36.0)), ("fm-all-to-all", (34.0, 35.0))):
        for seed, acc in enumerate(accs):
            config = fig5(
                {
                    "method": method,
                    "samples_per_class": 10,
                    "seed": seed,
                    "lr": 0.01,
                    "lookahead_unreached": "zero-grad",
                }
            )
            r = {
                "config": config,
                "test_acc": acc,
                "iterations": 200,
                "best_val_acc": acc,
                "collapsed": False,
                "device": "cpu",
                "cpu_capability": "AVX512" if seed else "AVX2",
            }
            (results / f"{method}-n10-s{seed}-lr0.01.json").write_text(json.dumps(r))
    config = fig5(
        {
            "method": "l2t-ww",
            "samples_per_class": 10,
            "seed": 0,
            "lr": 0.01,
            "lookahead_unreached": "zero-grad",
            "bn_updates": "authors",
        }
    )  # the authors' BatchNorm updates
    (results / "l2t-ww-n10-s0-lr0.01-bnauthors.json").write_text(
        json.dumps(
            {
                "config": config,
                "test_acc": 34.0,
                "best_val_acc": 34.0,
                "collapsed": False,
                "device": "cpu",
                "cpu_capability": "AVX2",
            }
        )
    )
    noise = tmp_path / "hardware-noise"  # beside the results folder: the same run natively and forced to AVX2
    for isa, acc in (("native", 32.0), ("avx2", 31.5)):
        (noise / isa).mkdir(parents=True)
        config = fig5({"method": "scratch", "samples_per_class": 10, "seed": 0, "lr": 0.01})
        r = {"config": config, "test_acc": acc, "best_val_acc": acc, "collapsed": False, "device": "cpu"}
        (noise / isa / "scratch-n10-s0-lr0.01.json").write_text(json.dumps(r))
    choice = {"scratch": {"chosen_lr": 0.01, "best_val_acc_by_lr": {"0.1": 17.6, "0.03": 31.8, "0.01": 35.6}}}
    (results / "lr_choice.json").write_text(json.dumps(choice))
    (gen / "figure5").mkdir(parents=True)
    (gen / "figure5" / "stale.png").write_text("an older build's figure")
    monkeypatch.setattr(prepare, "FIG5", results)
    monkeypatch.setattr(prepare, "GEN", gen)
    monkeypatch.setattr(prepare, "SIDE", {"bn-updates": tmp_path / "none", "noise": tmp_path / "none"})
    prepare.figure5_fragment()
    assert not (gen / "figure5" / "stale.png").exists() and (gen / "figure5" / "figure5.png").stat().st_size > 1000
    assert "/book/_generated/figure5/figure5.png" in (gen / "figure5-plot.md").read_text()
    table = (gen / "fig5-table.md").read_text()
    assert "| scratch | 31.00 ± 1.41 |" in table and "| L2T-ww | 34.50 ± 2.12 |" in table
    paired = (gen / "fig5-paired.md").read_text()
    assert "| 10 | scratch | +3.00, +4.00 | +3.50 [-2.85, +9.85] (2 seeds) |" in paired  # (t = 12.71)
    assert "‡" not in paired  # same instruction set on each seed: both methods of a seed ran alike
    assert (
        "| 10 | 0.01 | 34.50 ± 2.12 | 34.50 ± 0.71 | +0.00 [-12.71, +12.71] (2 seeds) |"
        in (gen / "lr-2x2.md").read_text()
    )
    assert "| 0 | 33.00 | 34.00 | +1.00 | cpu/AVX2 / cpu/AVX2 |" in (gen / "bn-updates.md").read_text()
    assert (
        "| 10 | fm-all-to-all (ablation) | — |" in (gen / "lr-effect.md").read_text()
    )  # no run at lr 0.03 in this folder: nothing paired
    assert "L2T-ww-bnauthors" not in table  # a variant is not one of the figure's lines
    runs = (gen / "runs-table.md").read_text()  # the appendix's list: each family, its hardware and time
    assert "| scratch | 0.01 | 10 | 0, 1 | cpu/AVX2, cpu/AVX512 | — |" in runs
    assert "| L2T-ww-bnauthors | 0.01 | 10 | 0 |" in runs
    assert "| scratch | 17.6 | 31.8 | 35.6 | 0.01 |" in (gen / "lr-choice.md").read_text()  # the grid, largest lr first
    assert "| 10 | 2 | 1.41 | ±1.76 | ±1.01 | ±0.66 | — | — |" in (gen / "settle.md").read_text()  # no GPU run
    bottom = (gen / "bottom-line.md").read_text()  # the results page's last words, from the same intervals
    assert "- at lr 0.01: N = 10: +0.00 [-12.71, +12.71] (2 seeds); N = 25: not yet run; N = 50: not yet" in bottom
    assert "- at lr 0.03: N = 10: not yet run; N = 25: not yet run; N = 50" in bottom and "‡" not in bottom
    assert "no difference the seeds can detect at N = 10 at lr 0.01; the tightest interval, [-12.71, +12.71]" in bottom
    assert "(these runs give it 200 at N = 10)" in bottom  # the iterations of the L2T-ww runs: one meta-update each
    assert "instruction set changed moved by up to 0.50 points (1 run)" in bottom


def test_the_readme_tables_are_the_ones_the_result_files_give():
    """README.md's Figure 5 tables are generated (``python book/prepare.py --readme``); stale ones fail here."""
    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text()
    assert book_script("prepare").readme_blocks(text) == text, "run: python book/prepare.py --readme"


def test_the_results_page_quotes_only_numbers_its_tables_give(tmp_path):
    """Every signed or two-decimal number in the results page's own prose about our runs (from its Figure 5 on)
    is in a table the build makes from the result files now: a result that lands and moves one fails here."""
    import re

    from l2t import report

    text = (ROOT / "book" / "results.md").read_text()
    prose = re.sub(r"```\{include\}.*?```", "", text[text.index("## Our Figure 5") :], flags=re.S)
    tables = " ".join(book_script("prepare").fragments(tmp_path, report).values())
    quoted = {n.replace("−", "-") for n in re.findall(r"[+−-]?\d+\.\d\d\b", prose)}
    assert len(quoted) > 10  # the page does quote its tables
    assert sorted(n for n in quoted if n not in tables and n.lstrip("+") not in tables) == []


def test_the_bottom_line_says_ahead_behind_or_level_as_the_interval_allows():
    """``report.verdict``: ahead or behind only when the whole interval is; the closing sentence names where, and
    the largest effect the tightest and the widest level interval leave."""
    from l2t.report import _summary, paired, verdict

    def run(acc, isa="AVX512"):
        return {"test_acc": acc, "device": "cpu", "cpu_capability": isa}

    base = {0: run(30.0), 1: run(31.0), 2: run(32.0)}
    up = {s: run(r["test_acc"] + d) for (s, r), d in zip(base.items(), (2.0, 2.5, 3.0))}  # +2.50 [+1.26, +3.74]
    level = paired({0: run(31.0), 1: run(30.0)}, {0: run(30.0), 1: run(31.0)})  # +0.00 [-12.71, +12.71]
    one, none = paired({0: run(31.0)}, {0: run(30.0)}), paired({0: run(31.0)}, {1: run(30.0)})
    assert [verdict(p) for p in (paired(up, base), paired(base, up), level, one, none)] == [
        "ahead",
        "behind",
        "level",
        None,
        None,
    ]
    close = paired({s: run(r["test_acc"] + 0.1 * s) for s, r in base.items()}, base)  # +0.10 [-0.15, +0.35]
    cells = [(10, "lr 0.01", paired(up, base)), (25, "lr 0.01", level), (50, "lr 0.01", one)]
    cells += [(10, "lr 0.03", close), (25, "lr 0.03", close)]
    assert _summary(cells) == (
        "L2T-ww is ahead of `fm-all-to-all` at N = 10 at lr 0.01; learning *what* and *where* makes no difference "
        "the seeds can detect at N = 25 at lr 0.01; N = 10 and 25 at lr 0.03; the tightest interval, [-0.15, +0.35] "
        "(N = 10, lr 0.03), rules out a gain above 0.3 or a loss above 0.1 points and the widest interval, "
        "[-12.71, +12.71] (N = 25, lr 0.01), rules out a gain above 12.7 or a loss above 12.7 points."
    )
    assert (
        _summary([(50, "lr 0.01", one), (100, "lr 0.01", none)])
        == "No comparison has two paired seeds yet, so no interval."
    )
    assert paired(up, {**base, 0: run(30.0, "AVX2")})["mixed"] == [0]  # seed 0 ran on two instruction sets


def test_the_bottom_line_pairs_each_method_at_its_preferred_lr(tmp_path):
    """When validation prefers another lr for each method, the bottom line pairs them there too, and counts it."""
    import json

    from conftest import fig5

    from l2t.report import bottom_line

    accs = {("l2t-ww", 0.01): (34.0, 35.0, 36.0), ("l2t-ww", 0.03): (33.0, 33.5, 34.0)}
    accs |= {("fm-all-to-all", 0.01): (30.0, 31.0, 32.0), ("fm-all-to-all", 0.03): (31.0, 32.5, 33.0)}
    for (method, lr), values in accs.items():
        for seed, acc in enumerate(values):
            config = fig5(
                {"method": method, "samples_per_class": 10, "seed": seed, "lr": lr, "lookahead_unreached": "zero-grad"}
            )
            r = {"config": config, "test_acc": acc, "best_val_acc": acc, "collapsed": False, "device": "cpu"}
            (tmp_path / f"{method}-n10-s{seed}-lr{lr:g}.json").write_text(json.dumps(r))
    text = bottom_line(tmp_path, ns=(10,))
    assert "N = 10: lr 0.01 against 0.03, +2.83 [+2.12, +3.55] (3 seeds)" in text  # validation: 0.01 and 0.03
    assert "L2T-ww is ahead of `fm-all-to-all` at N = 10 at lr 0.01; N = 10 at lr 0.01 against 0.03" in text


def test_no_page_closes_a_fence_with_text_after_it():
    """'``` text' cannot close a fence: the rest of the page would vanish into it (as once in the appendix)."""
    import re

    root = Path(__file__).resolve().parents[1]
    for page in sorted((root / "book").glob("*.md")):
        bad = [i + 1 for i, line in enumerate(page.read_text().splitlines()) if re.match(r"^```+\s+\S", line)]
        assert bad == [], f"{page.name}: lines {bad}"
