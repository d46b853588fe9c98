"""The house's layering: pcforge (CLI) → boards → sim → hdl → model, nothing pointing back;
names are imported from the module that defines them; every module imports on its own."""
from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: import name prefix → (folder, layer rank): a module may import only its own rank or lower
LAYERS = {"pcforge.model": ("model", 0), "pcforge.hdl": ("hdl", 1), "pcforge.sim": ("sim", 2),
          "pcforge.boards": ("boards", 3), "pcforge": ("pcforge", 4)}


def _modules() -> dict:
    """{import name: path} of every module of the package."""
    out = {}
    for prefix, (folder, _) in LAYERS.items():
        for f in sorted((ROOT / folder).rglob("*.py")):
            rel = f.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([prefix, *parts])] = f
    return out


MODULES = _modules()


def _rank(name: str) -> int:
    for prefix, (_, rank) in LAYERS.items():          # the longest prefixes come first
        if name == prefix or name.startswith(prefix + "."):
            return rank
    raise KeyError(name)


def _imports(mod: str, path: Path):
    """(imported module, [names], line) for every import of pcforge, at any depth."""
    is_pkg = path.name == "__init__.py"
    package = mod if is_pkg else mod.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("pcforge"):
                    yield a.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("pcforge"):
                yield target, [a.name for a in node.names], node.lineno


def test_every_package_folder_is_installed():
    """setuptools installs exactly the packages that exist (a new subpackage is listed)."""
    import tomllib
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    packages = {m for m, f in MODULES.items() if f.name == "__init__.py"}
    assert listed == packages


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_imports_point_down_the_layers(mod):
    rank = _rank(mod)
    for target, _, line in _imports(mod, MODULES[mod]):
        assert _rank(target) <= rank or mod == "pcforge", (
            f"{MODULES[mod].relative_to(ROOT)}:{line} imports {target}: "
            f"{mod} may import only layers below it (CLI → boards → sim → hdl → model)")


def _defined(mod: str) -> set:
    """Top-level names a module defines (functions, classes, assignments) and its submodules."""
    names = {m.rsplit(".", 1)[1] for m in MODULES if m.rsplit(".", 1)[0] == mod and m != mod}
    for node in ast.parse(MODULES[mod].read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        names.add(n.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


#: The public facades re-export on purpose (for users); the package itself does not use them.
FACADES = {"pcforge", "pcforge.model"}


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_names_come_from_where_they_are_defined(mod):
    for target, names, line in _imports(mod, MODULES[mod]):
        if not names or target not in MODULES:
            continue
        assert target not in FACADES or mod in FACADES, (
            f"{MODULES[mod].relative_to(ROOT)}:{line} imports {names} through the facade "
            f"{target}; import them from the module that defines them")
        missing = set(names) - _defined(target)
        assert mod in FACADES or not missing, (
            f"{MODULES[mod].relative_to(ROOT)}:{line} imports {sorted(missing)} from {target}, "
            "which does not define them (a re-export); import from the defining module")


def test_model_and_hdl_stay_in_their_layers():
    """The issue's wording, checked directly: model/ imports nothing of hdl/sim/boards/CLI, and
    hdl/ imports only model."""
    for mod, path in MODULES.items():
        targets = {t for t, _, _ in _imports(mod, path)}
        if mod.startswith("pcforge.model"):
            assert all(t.startswith("pcforge.model") for t in targets), (mod, targets)
        if mod.startswith("pcforge.hdl"):
            assert all(t.startswith(("pcforge.model", "pcforge.hdl")) for t in targets), \
                (mod, targets)


def test_every_module_imports_on_its_own():
    """Each module in a fresh interpreter (an import cycle fails here, whatever the order)."""
    def one(mod):
        r = subprocess.run([sys.executable, "-c", f"import {mod}"], capture_output=True,
                           text=True, cwd=ROOT / "tests")
        return mod, r.returncode, r.stderr[-600:]

    with ThreadPoolExecutor(max_workers=2) as pool:
        failed = [(m, err) for m, rc, err in pool.map(one, sorted(MODULES)) if rc]
    assert not failed, "\n\n".join(f"import {m}:\n{err}" for m, err in failed)
