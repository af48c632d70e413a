"""Every loader of untrusted bytes goes through ``mammoscreen.core``: a walk over the source's syntax trees.

A new ``pickle.load`` or ``torch.load`` anywhere else in ``src/`` fails this test, so the safe-loading layer
cannot be bypassed by accident. The only modules allowed to call the underlying loaders are the core modules
that wrap them with their limits.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mammoscreen

SOURCE = Path(mammoscreen.__file__).resolve().parent
CORE = "core/"

# (what is called) -> the core modules that may call it.
ALLOWED = {
    "pickle.load": {"core/safepickle.py"},  # the restricted Unpickler subclass
    "pickle.loads": set(),
    "pickle.Unpickler": {"core/safepickle.py"},
    "pandas.read_pickle": set(),
    "torch.load": {"core/checkpoints.py"},
    "numpy.load": {"core/archives.py"},
    "json.load": set(),
    "json.loads": {"core/safejson.py"},
    "h5py": {"core/hdf5.py"},
}


def _calls(tree: ast.AST, aliases: dict[str, str]) -> list[tuple[str, ast.AST]]:
    """(dotted name as the module is known, node) of every attribute chain used in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts = []
            value: ast.AST = node
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in aliases:
                found.append((".".join([aliases[value.id], *reversed(parts)]), node))
        elif isinstance(node, ast.Name) and node.id in aliases and "." in aliases[node.id]:
            found.append((aliases[node.id], node))  # from pickle import loads as x; x(...)
    return found


def _aliases(tree: ast.AST) -> dict[str, str]:
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                names[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return {k: {"np": "numpy", "pd": "pandas"}.get(v, v) for k, v in names.items()}


def _violations() -> list[str]:
    problems = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        aliases = _aliases(tree)
        uses = [(name, node) for name, node in _calls(tree, aliases)]
        # h5py: importing it at all counts as a use.
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "h5py" for a in node.names):
                uses.append(("h5py", node))
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "h5py":
                uses.append(("h5py", node))
        for name, node in uses:
            for loader, allowed in ALLOWED.items():
                if (name == loader or name.startswith(loader + ".")) and relative not in allowed:
                    problems.append(f"{relative}:{node.lineno}: {name}")
        # np.load(..., allow_pickle=True) is never allowed, not even in core.
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and any(k.arg == "allow_pickle" and not (
                    isinstance(k.value, ast.Constant) and k.value.value is False) for k in node.keywords):
                problems.append(f"{relative}:{node.lineno}: allow_pickle other than False")
            if isinstance(node, ast.Call) and any(k.arg == "weights_only" and not (
                    isinstance(k.value, ast.Constant) and k.value.value is True) for k in node.keywords):
                problems.append(f"{relative}:{node.lineno}: weights_only other than True")
    return problems


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_no_loader_bypasses_the_core_layer():
    assert _violations() == []


def test_the_walk_finds_what_it_must_refuse(tmp_path, monkeypatch):
    # The checker itself: a module with each forbidden call is reported, line by line.
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "bad.py").write_text(
        "import pickle, json, torch\nimport numpy as np\nimport pandas as pd\nfrom pickle import loads as l\n"
        "import h5py\n"
        "pickle.load(f)\njson.loads(t)\ntorch.load(p, weights_only=False)\nnp.load(p, allow_pickle=True)\n"
        "pd.read_pickle(p)\nl(b)\n")
    monkeypatch.setattr(__import__(__name__), "SOURCE", package)
    found = _violations()
    for expected in ("bad.py:6: pickle.load", "bad.py:7: json.loads", "bad.py:8: torch.load",
                     "bad.py:8: weights_only other than True", "bad.py:9: numpy.load",
                     "bad.py:9: allow_pickle other than False", "bad.py:10: pandas.read_pickle",
                     "bad.py:11: pickle.loads", "bad.py:5: h5py"):
        assert expected in found, (expected, found)
    # and the core modules are where the real loaders are called
    assert "core/safepickle.py" in ALLOWED["pickle.Unpickler"]
