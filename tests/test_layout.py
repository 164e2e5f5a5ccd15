"""The package's layers: every ``capstone`` import of every module goes down, never up.

`LAYERS` is the order of the package docstring's map, bottom first. A module may import from its
own layer and from any layer below it; `common` is the bottom, so every layer may use it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import capstone

PACKAGE = Path(capstone.__file__).parent

#: Bottom to top. A name is a folder or a top-level module of ``capstone``; "capstone" is the
#: package itself (its ``__init__``: the public API, gathered from the layers below it).
LAYERS = [
    "common",
    "course_math",
    "data",
    "text",
    "photos",
    "embeddings",
    "dataset",
    "evaluation",
    "training",
    "search",
    "runs",
    "course",
    "capstone",
    "frontends",
    "__main__",
]


def module_name(path: Path) -> str:
    """``capstone/photos/resnet.py`` -> ``capstone.photos.resnet``; a package by its name."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    """The layer of a module: its first part below ``capstone`` ("capstone" for the package)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "capstone"


def capstone_imports(path: Path) -> set[str]:
    """Every ``capstone`` module that ``path`` imports, at any depth of its code.

    ``from capstone.photos import describer`` imports ``capstone.photos.describer``;
    ``from capstone import __version__`` imports the package.
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "capstone")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "capstone":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").is_file()
                is_package = (PACKAGE.parent / Path(*sub.split("."))).is_dir()
                found.add(sub if is_module or is_package else node.module)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_layer():
    unknown = {layer(module_name(p)) for p in MODULES} - set(LAYERS)
    assert not unknown, f"add these to LAYERS, in their place: {sorted(unknown)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_go_down(path):
    here = LAYERS.index(layer(module_name(path)))
    upward = sorted(m for m in capstone_imports(path) if LAYERS.index(layer(m)) > here)
    assert not upward, f"{module_name(path)} ({LAYERS[here]}) imports from above: {upward}"


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    # the rule bites: training importing runs (what it did before) is caught
    fake = PACKAGE / "training" / "train.py"
    source = tmp_path / "train.py"
    source.write_text("from capstone.runs import Run\nfrom capstone.photos import describer\n")
    assert capstone_imports(source) == {"capstone.runs", "capstone.photos.describer"}
    here = LAYERS.index(layer(module_name(fake)))
    assert [m for m in capstone_imports(source) if LAYERS.index(layer(m)) > here] == [
        "capstone.runs"
    ]


def test_the_package_docstring_maps_the_layers_in_order():
    # the map a reader meets first (``capstone.__doc__``): one row per layer, each row importing
    # only from the rows above it (``common`` and ``course_math``, below every layer, close it)
    rows = [
        line.split()[0].removesuffix("/").removesuffix(".py")
        for line in capstone.__doc__.splitlines()
        if line.startswith("    ") and not line.startswith("     ")
    ]
    bottom = ["common", "course_math"]
    layers = [name for name in LAYERS if name not in (*bottom, "capstone", "__main__")]
    assert rows == layers + bottom


def test_no_benchmark_script_shadows_a_standard_module():
    """A script's folder comes first on ``sys.path``: ``benchmarks/collections.py`` once broke
    ``python benchmarks/photos.py`` in a fresh venv (``import argparse`` found it, not the
    standard ``collections``)."""
    import sys

    folder = Path(capstone.__file__).resolve().parent.parent / "benchmarks"
    names = {p.stem for p in folder.glob("*.py")}
    assert names, f"no scripts found in {folder}"
    assert not names & set(sys.stdlib_module_names)
