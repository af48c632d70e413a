"""Dependencies run one way: every import in src/mammoscreen points to the same or a lower layer, and no
group of modules imports itself in a circle (imports inside functions count too; ``if TYPE_CHECKING:``
blocks do not, they never run)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest
from testutils import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "mammoscreen"

# Bottom to top. A module belongs to the layer of the longest prefix that names it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core utilities", ("mammoscreen.core",)),
    ("data", ("mammoscreen.data",)),
    ("preprocessing", ("mammoscreen.preprocess",)),
    ("model interfaces", ("mammoscreen.models.interfaces",)),
    ("network layers and file formats", ("mammoscreen.models.layers", "mammoscreen.interop",
                                         "mammoscreen.models.config_checks")),
    ("model registry and factory", ("mammoscreen.models.registry", "mammoscreen.models.weights",
                                    "mammoscreen.models.options", "mammoscreen.models.preprocessing",
                                    "mammoscreen.models.factory", "mammoscreen.models")),
    ("figures", ("mammoscreen.explain.visualize", "mammoscreen.explain.glam_figure", "mammoscreen.explain.detections")),
    ("models", ()),  # every package models/<name>/ (see layer_of)
    ("engine", ("mammoscreen.engine",)),
    ("explanation and evaluation", ("mammoscreen.explain", "mammoscreen.evaluate")),
    ("applications", ("mammoscreen.report", "mammoscreen.app")),
    # Whole workflows over several stages (a run, its evaluation, the demo that ends in a report; training).
    ("workflows", ("mammoscreen.workflows", "mammoscreen.train")),
    ("cli", ("mammoscreen.cli", "mammoscreen.__main__")),
]
MODEL_FOUNDATIONS = {"interfaces", "layers", "config_checks", "registry", "weights", "options", "preprocessing",
                     "factory", "pretrained"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    parts = module.split(".")
    if module == "mammoscreen":
        return 0  # the package's own __init__ exports only the version
    if len(parts) >= 3 and parts[1] == "models" and parts[2] not in MODEL_FOUNDATIONS:
        return [name for name, _ in LAYERS].index("models")
    best, level = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), index
    if level is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return level


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path) -> set[str]:
    """The mammoscreen modules ``path`` imports (a name imported from a package counts as its submodule
    when there is one)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.split(".")[0] == "mammoscreen")
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] != "mammoscreen":
                    continue
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    found.add(sub if _exists(sub) else target)
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    found.discard(module)
    return found


def _exists(module: str) -> bool:
    relative = Path(*module.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def graph() -> dict[str, frozenset[str]]:
    return _graph_of(PACKAGE)


@functools.cache  # parsed once per package for the three checks that read it (the source does not change mid-run)
def _graph_of(package: Path) -> dict[str, frozenset[str]]:
    return {module_name(p): frozenset(imports_of(p)) for p in sorted(package.rglob("*.py"))
            if "migrations" not in p.parts}


def test_every_import_points_to_the_same_or_a_lower_layer():
    upward = []
    for module, imported in graph().items():
        for target in sorted(imported):
            if layer_of(target) > layer_of(module):
                upward.append(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} "
                              f"({LAYERS[layer_of(target)][0]})")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_models_import_no_other_model_package():
    crossing = []
    for module, imported in graph().items():
        own = module.split(".")[2] if module.startswith("mammoscreen.models.") else None
        if own is None or own in MODEL_FOUNDATIONS:
            continue
        for target in imported:
            parts = target.split(".")
            if len(parts) >= 3 and parts[1] == "models" and parts[2] not in MODEL_FOUNDATIONS | {own} \
                    and parts[2] not in ALLOWED_MODEL_REUSE.get(own, ()):
                crossing.append(f"{module} imports {target}")
    assert not crossing, "a model package uses another one:\n" + "\n".join(crossing)


# gmic_demo is GMIC with other weights: it reuses GMIC's network and predictor by design.
ALLOWED_MODEL_REUSE = {"gmic_demo": ("gmic",)}


def test_no_import_cycles():
    edges = graph()
    cycles, state = [], {}

    def walk(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if target not in edges:
                continue
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                walk(target, stack + [target])
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            walk(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


@pytest.mark.parametrize("module, expected", [("mammoscreen.core.journal", "core utilities"),
                                              ("mammoscreen.models.gmic.predictor", "models"),
                                              ("mammoscreen.models.interfaces", "model interfaces"),
                                              ("mammoscreen.engine.run", "engine"),
                                              ("mammoscreen.report.html", "applications"),
                                              ("mammoscreen.workflows.pipeline", "workflows"),
                                              ("mammoscreen.workflows.demo", "workflows"),
                                              ("mammoscreen.cli.predict", "cli")])
def test_layer_assignment(module, expected):
    assert LAYERS[layer_of(module)][0] == expected


def test_the_model_interfaces_import_nothing_from_mammoscreen():
    assert imports_of(PACKAGE / "models" / "interfaces.py") == set()


def test_the_checker_sees_an_upward_and_a_circular_import(tmp_path, monkeypatch):
    fake = tmp_path / "mammoscreen"
    (fake / "core").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "core" / "__init__.py").write_text("")
    (fake / "core" / "a.py").write_text("from ..engine import run\nfrom . import b\n")
    (fake / "core" / "b.py").write_text("def f():\n    from .a import x\n")
    (fake / "engine").mkdir()
    (fake / "engine" / "__init__.py").write_text("")
    (fake / "engine" / "run.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                            "    from ..cli import main\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    with pytest.raises(AssertionError, match=r"mammoscreen.core.a \(core utilities\) imports mammoscreen.engine"):
        test_every_import_points_to_the_same_or_a_lower_layer()
    with pytest.raises(AssertionError, match="mammoscreen.core.a -> mammoscreen.core.b -> mammoscreen.core.a"):
        test_no_import_cycles()
    assert imports_of(fake / "engine" / "run.py") == set()
