"""Prepare the book build: serve MathJax locally (no CDN) and pick up the Figure 5 results if present.

Run by ``make book`` before ``jupyter-book build``:
  * MathJax 3 comes from npm (``build/mathjax``) and is copied to ``build/book-static/mathjax``, which
    ``_config.yml`` lists as a static path, so the rendered pages typeset their math with no network;
  * ``book/_generated/figure5.md`` includes ``results/figure5-quick/{figure5.png,summary.md}`` when they
    exist, and says that they do not yet otherwise; ``book/_generated/lead_split.md`` does the same for
    ``lead_split.png``.
"""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(NPM_DIR),
                        f"mathjax@{MATHJAX_VERSION}"], check=True)
    if not (STATIC / "tex-chtml.js").exists():
        if STATIC.exists():
            shutil.rmtree(STATIC)
        shutil.copytree(es5, STATIC)
    print(f"MathJax {MATHJAX_VERSION} served from {STATIC.relative_to(ROOT)}")


def figure5_fragment():
    """Write the Markdown fragment that results.md includes for the CPU-scale Figure 5."""
    out = ROOT / "book" / "_generated" / "figure5.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    parts = []
    if (FIG5 / "figure5.png").exists():
        parts.append("```{figure} /results/figure5-quick/figure5.png\n:name: fig-figure5-quick\n:width: 90%\n\n"
                     "CPU-scale Figure 5, every method at lr 0.01: test accuracy against training images per class.\n```\n")
    if (FIG5 / "paired.png").exists():
        parts.append("```{figure} /results/figure5-quick/paired.png\n:name: fig-figure5-paired\n:width: 100%\n\n"
                     "The same runs seed by seed: a seed's points are "
                     "joined across methods (same training images); black bars are means.\n```\n")
    if (FIG5 / "summary.md").exists():
        parts.append("```{include} /results/figure5-quick/summary.md\n```\n")
    if not parts:
        parts.append("*No results yet: `results/figure5-quick/` does not hold `figure5.png` or `summary.md`.*\n")
    out.write_text("\n".join(parts))
    print(f"wrote {out.relative_to(ROOT)} ({'with results' if len(parts) > 1 or 'No results' not in parts[0] else 'placeholder'})")
    split = out.with_name("lead_split.md")   # the ablation's figure, placed beside the ablation's paragraph
    split.write_text("```{figure} /results/figure5-quick/lead_split.png\n:name: fig-figure5-lead-split\n:width: 70%\n\n"
                     "L2T-ww's lead over FM one-to-one, per N: the part that matching 15 pairs with fixed weights "
                     "gives (`fm-all-to-all`), and the part that learning *what* and *where* adds. Bars are means; "
                     "dots are seeds (paired: the same images for all three methods).\n```\n"
                     if (FIG5 / "lead_split.png").exists() else
                     "*No figure yet: `results/figure5-quick/` does not hold `lead_split.png`.*\n")


if __name__ == "__main__":
    mathjax()
    figure5_fragment()
