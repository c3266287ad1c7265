"""Prepare the book build: serve MathJax locally (no CDN) and pick up the Figure 5 results if present.

Run by ``make book`` before ``jupyter-book build``:
  * MathJax 3 comes from npm (``build/mathjax``) and is copied to ``build/book-static/mathjax``, which
    ``_config.yml`` lists as a static path, so the rendered pages typeset their math with no network;
  * ``python book/prepare.py --readme`` remakes the README's tables the same way (a test fails while they
    are stale);
  * the results pages' figures and tables are made from ``results/`` by this checkout's code into
    ``book/_generated/`` (``figure5_fragment``): never a committed picture, so never a stale one.
"""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's l2t, whichever is installed
MATHJAX_VERSION = "3.2.2"
NPM_DIR = ROOT / "build" / "mathjax"
STATIC = ROOT / "build" / "book-static" / "mathjax"
FIG5 = ROOT / "results" / "figure5-quick"


def mathjax():
    """Install MathJax with npm (once) and copy its browser bundle into the book's static files."""
    es5 = NPM_DIR / "node_modules" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").exists():
        npm = shutil.which("npm")
        if npm is None:
            sys.exit("npm is needed once to fetch MathJax for offline math (apt-get install -y npm)")
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(NPM_DIR), f"mathjax@{MATHJAX_VERSION}"],
            check=True,
        )
    if not (STATIC / "tex-chtml.js").exists():
        if STATIC.exists():
            shutil.rmtree(STATIC)
        shutil.copytree(es5, STATIC)
    print(f"MathJax {MATHJAX_VERSION} served from {STATIC.relative_to(ROOT)}")


GEN = ROOT / "book" / "_generated"
SIDE = {"bn-updates": ROOT / "results" / "bn-updates", "noise": ROOT / "results" / "hardware-noise"}


def figure5_fragment():
    """Draw Figure 5's figures and summary from the result files now, and write the fragments the pages include.

    Nothing the pages show is a committed picture or table: ``summarize_figure5`` redraws ``figure5.png``,
    ``paired.png``, ``lead_split.png`` and ``summary.md`` into ``book/_generated/figure5/`` with the code of
    this checkout, and ``l2t.report`` writes the tables, so a page can never show an older figure.
    """
    from l2t import report
    from l2t.reproduce import summarize_figure5

    figures = GEN / "figure5"
    if figures.exists():
        shutil.rmtree(figures)  # nothing left over from an older build
    figures.mkdir(parents=True)
    if FIG5.is_dir():
        summarize_figure5(FIG5, verbose=False, out=figures)
    written = fragments(figures, report)
    for name, text in written.items():
        (GEN / name).write_text(text)
    print(f"wrote {', '.join(sorted(written))} into {GEN}")


def _figure(name, label, width, caption, figures):
    """A MyST figure of ``figures/name`` (a line saying it is missing when there is none)."""
    if not (figures / name).exists():
        return f"*No figure yet: the results folder has no runs for `{name}`.*\n"
    return f"```{{figure}} /book/_generated/figure5/{name}\n:name: {label}\n:width: {width}\n\n{caption}\n```\n"


def bn_fragment(report):
    """L2T-ww with BatchNorm statistics moved once (the figure's run, and a rerun beside the other) and twice."""
    twice = report.runs(FIG5, "l2t-ww", 10, 0.01, name="l2t-ww-bnauthors")
    text = report.versus_table(
        report.runs(FIG5, "l2t-ww", 10, 0.01), twice, ("once (the figure's run)", "twice (the authors')")
    )
    rerun = report.runs(SIDE["bn-updates"], "l2t-ww", 10, 0.01)
    if rerun:  # the default run again, on the hardware of the authors' run: a difference without the machine's
        text += "\n\n" + report.versus_table(rerun, twice, ("once (rerun)", "twice (the authors')"))
    return text + "\n"


def fragments(figures, report):
    """File name -> Markdown of every fragment the results pages (and the teaching page's last lesson) include."""
    from l2t.teach.scale import settle_table

    out = {
        "figure5-plot.md": _figure("figure5.png", "fig-results-figure5", "80%", FIG5_CAPTION, figures),
        "lead_split.md": _figure("lead_split.png", "fig-figure5-lead-split", "70%", SPLIT_CAPTION, figures),
        "fig5-table.md": report.mean_table(FIG5) + "\n",
        "fig5-seeds.md": report.seeds_table(FIG5) + "\n",
        "fig5-paired.md": report.paired_table(FIG5) + "\n",
        "lr-2x2.md": report.two_by_two(FIG5) + "\n\n" + report.best_lr_table(FIG5) + "\n",
        "lr-effect.md": report.lr_effect(FIG5, ("fm-all-to-all", "l2t-ww"), ns=report.NS) + "\n",
        "lr-kept.md": report.two_by_two(FIG5, lrs=(0.03,), ns=report.NS, name="l2t-ww-kept") + "\n",
        "bn-updates.md": bn_fragment(report),
        "bottom-line.md": report.bottom_line(FIG5) + "\n",
        "runs-table.md": report.runs_table(FIG5) + "\n",
        "settle.md": settle_table(FIG5) + "\n",
        "lr-choice.md": report.lr_choice_table(FIG5) + "\n",
        "hardware-noise.md": "**One CPU, two instruction sets.**\n\n"
        + report.side_by_side(SIDE["noise"] / "native", SIDE["noise"] / "avx2", ("native (AVX-512)", "forced to AVX2"))
        + "\n\n"
        + "**Two CPUs: the figure's runs and the same runs again.**\n\n"
        + report.side_by_side(FIG5, SIDE["noise"] / "native", ("the figure's run", "the same run again, natively"))
        + "\n",
    }
    parts = [
        _figure("paired.png", "fig-figure5-paired", "100%", PAIRED_CAPTION, figures),
        _figure("figure5-own-lr.png", "fig-figure5-own-lr", "80%", OWN_CAPTION, figures),
    ]
    if (figures / "summary.md").exists():
        parts.append("```{include} /book/_generated/figure5/summary.md\n```\n")
    out["figure5.md"] = "\n".join(parts)
    return out


FIG5_CAPTION = (
    "Test accuracy against training images per class, every method at lr 0.01: mean ± standard deviation "
    "over seeds, each seed a dot; `fm-all-to-all` (an ablation, not in the paper) dashed. Methods are "
    "nudged apart along the axis so that their seeds stay readable. Drawn from the result files when "
    "this book was built."
)
OWN_CAPTION = (
    "The secondary view: each method at the learning rate its validation accuracy chose at N = 10, seed 0 "
    "(L2T-ww at 0.03 with the `kept` rule, the others at 0.01; `fm-all-to-all` dashed), so method and learning "
    "rate change together. Runs of a method without a finished grid are in the table below, not drawn."
)
PAIRED_CAPTION = (
    "The equal-lr runs (every method at lr 0.01) seed by seed: a seed's points are joined across "
    "methods (same training images); black bars are means. Single runs of another rule (`-kept`, "
    "`-bnauthors`) are in the tables, not drawn."
)
SPLIT_CAPTION = (
    "L2T-ww's lead over FM one-to-one at one learning rate, split in two, per N: what matching 15 pairs "
    "with fixed weights adds (`fm-all-to-all` − FM) and what learning *what* and *where* adds on top "
    "(L2T-ww − `fm-all-to-all`). The two add up to the lead. Bars are means over seeds with their 95 % "
    "intervals (none with one seed); dots are seeds, paired: the same images for all three methods."
)


README_BLOCKS = {
    "fig5-table": "mean_table",
    "fig5-paired": "paired_table",
    "fig5-bottom-line": "bottom_line",
}  # marker in README.md -> l2t.report


def readme_blocks(text):
    """README.md's text with its generated blocks (``<!-- NAME: generated ... -->`` to ``<!-- end NAME -->``) remade."""
    import re

    from l2t import report

    for name, function in README_BLOCKS.items():
        table = getattr(report, function)(FIG5)
        text, found = re.subn(
            rf"(<!-- {name}: generated from results/figure5-quick -->\n).*?(<!-- end {name} -->)",
            lambda m: m.group(1) + table + "\n" + m.group(2),
            text,
            flags=re.S,
        )
        if found != 1:
            sys.exit(f"README.md: expected one <!-- {name}: ... --> block, found {found}")
    return text


if __name__ == "__main__":
    if sys.argv[1:] == ["--readme"]:  # after new results land: the README's tables, from the result files
        (ROOT / "README.md").write_text(readme_blocks((ROOT / "README.md").read_text()))
        sys.exit(0)
    mathjax()
    figure5_fragment()
