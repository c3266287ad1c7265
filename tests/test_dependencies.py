"""The declared dependencies are true: every third-party module that the library or a chapter imports is
declared in pyproject.toml, and every declared runtime dependency is imported somewhere."""

import ast
import re
import sys
from pathlib import Path

import nbformat
import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
# import name -> distribution name, where they differ
DISTRIBUTION = {"PIL": "pillow", "yaml": "pyyaml", "IPython": "ipykernel"}  # IPython: the kernel a chapter runs in
FIRST_PARTY = {"l2t", "check_html", "conftest"}


def declared(*extras):
    """Distribution names of the runtime dependencies (and of ``extras``), without versions."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [s for e in extras for s in project["optional-dependencies"][e]]
    return {re.match(r"[A-Za-z0-9_.-]+", s).group(0).lower() for s in specs}


def imported(source):
    """Top-level names of the modules ``source`` imports (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def third_party(names):
    return {DISTRIBUTION.get(n, n).lower() for n in names if n not in sys.stdlib_module_names and n not in FIRST_PARTY}


def library_imports():
    return third_party(set().union(*(imported(p.read_text()) for p in (ROOT / "l2t").rglob("*.py"))))


def chapter_imports():
    """Every module a chapter's code cells import (shell and magic lines left out)."""
    names = set()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                code = re.sub(r"^(\s*)[!%].*$", r"\1pass", cell.source, flags=re.M)  # a shell or magic line
                names |= imported(code)
    return third_party(names)


def test_every_module_the_library_and_the_chapters_import_is_declared():
    missing = (library_imports() | chapter_imports()) - declared()
    # the chapters run in the environment of `make setup` (the dev extra): Jupyter's own modules count there
    assert missing <= declared("dev"), f"imported but not declared in pyproject.toml: {sorted(missing)}"


def test_every_declared_runtime_dependency_is_imported():
    unused = declared() - library_imports() - chapter_imports()
    assert not unused, f"declared in pyproject.toml but imported nowhere: {sorted(unused)}"
