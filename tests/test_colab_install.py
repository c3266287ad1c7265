"""The notebooks' Colab cell: the same in every notebook, and its commands work against a local clone (file://)."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("**/*.ipynb"))
REPO = "https://github.com/l2t-book/l2t"
HOME = "/content/l2t"


def install_cell(path):
    cells = [
        c
        for c in json.loads(path.read_text())["cells"]
        if c["cell_type"] == "code" and "google.colab" in "".join(c["source"])
    ]
    assert len(cells) == 1, f"{path.name}: {len(cells)} Colab cells"
    return "".join(cells[0]["source"])


def test_every_notebook_has_the_same_colab_cell_from_the_configured_repository():
    cells = {install_cell(p) for p in NOTEBOOKS}
    assert len(cells) == 1
    config = (ROOT / "_config.yml").read_text()
    assert f"url: {REPO}\n" in config  # the book's one repository setting
    assert f"git clone -q --depth 1 {REPO} {HOME}" in cells.pop()


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the repository's git history to clone")
def test_the_colab_cell_clones_and_installs_from_a_local_clone(tmp_path):
    cell = install_cell(ROOT / "notebooks" / "01_problem_and_tools.ipynb")
    commands = [line.strip() for line in cell.splitlines() if line.strip().startswith(("!", "%"))]
    assert [c.split()[0] for c in commands] == ["!git", "%pip", "%cd"]
    home = tmp_path / "l2t"
    site = tmp_path / "site"
    for command in commands:
        command = command.replace(REPO, f"file://{ROOT}").replace(HOME, str(home))
        if command.startswith("!"):  # a shell command
            subprocess.run(shlex.split(command[1:]), check=True, cwd=tmp_path)
        elif command.startswith("%pip install"):  # into a folder of its own; Colab has the dependencies
            args = shlex.split(command)[2:]
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), *args],
                check=True,
                cwd=tmp_path,
            )
        else:  # %cd: the notebooks' folder of the clone
            assert Path(command.split(maxsplit=1)[1]).is_dir()
    # the clone brings the stored results, and the installed package (not this checkout's) imports
    assert len(list((home / "results" / "figure5-quick").glob("*.json"))) > 10
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import l2t.cli, l2t.configs, importlib.resources as r; "
            "print(l2t.cli.__file__); print(len(list(r.files('l2t.configs').iterdir())))",
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    ).stdout.split()
    assert out[0].startswith(str(site)) and int(out[1]) >= 3
