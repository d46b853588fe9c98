"""The rules of the house (``docs/contributing.md``), checked: the layering pcforge (CLI) →
boards → sim → hdl → model with nothing pointing back; names imported from the module that
defines them; every module importing on its own in a fresh interpreter; functions in hdl/ and
boards/ short enough to read; every hardware module with its tests; no plots in the golden
model; every package folder installed."""
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


# ---- blocks small enough to hold in your head, each with a test ------------------------------
MAX_FUNCTION_LINES = 120


@pytest.mark.parametrize("folder", ["hdl", "boards"])
def test_no_function_is_too_long_to_read(folder):
    long = []
    for f in sorted((ROOT / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{f.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    assert not long, "split these into named builders:\n" + "\n".join(long)


#: Where each hardware module is tested (a block without a test file of its own is built only
#: inside another block, and is tested through it).
BLOCK_TESTS = {
    "hdl/activation.py": ("test_hdl_activation.py", "ActivationUnit"),
    "hdl/controller.py": ("test_hdl_controller.py", "SlotController"),
    "hdl/core.py": ("test_hdl_core.py", "PCCore"),
    "hdl/emit.py": ("test_verilog.py", "emit"),
    "hdl/fixed.py": ("test_hdl_fixed.py", "Requantizer"),
    "hdl/host_port.py": ("test_hdl_core.py", "read_back"),        # every read-back of the core
    "hdl/learning.py": ("test_hdl_core.py", "learn"),
    "hdl/dsp.py": ("test_verilator.py", "hard_multipliers"),
    "hdl/mac.py": ("test_hdl_mac.py", "adder_tree"),
    "hdl/node_unit.py": ("test_hdl_core.py", "run_core"),
    "hdl/operands.py": ("test_hdl_core.py", "run_core"),
    "hdl/pipeline.py": ("test_hdl_mac.py", "TokenPipeline"),
    "hdl/protocol.py": ("test_hdl_protocol.py", "weight_words"),
    "boards/build.py": ("test_boards.py", '"build", "--board"'),
    "boards/clocking.py": ("test_boards.py", "ecp5_pll"),
    "boards/estimate.py": ("test_boards.py", "check_fits"),
    "boards/flash.py": ("test_board_cli.py", "flash_command"),
    "boards/frame.py": ("test_boards.py", "crc8"),
    "boards/host.py": ("test_boards.py", "SimBoard"),
    "boards/link.py": ("test_boards_link.py", "HostLink"),
    "boards/link_bench.py": ("test_link_fuzz.py", "LinkHarness"),
    "boards/profiles.py": ("test_boards.py", "BOARDS"),
    "boards/pty_bench.py": ("test_board_cli.py", "board_on_pty"),
    "boards/report.py": ("test_boards.py", "report.md"),
    "boards/simulated.py": ("test_boards.py", "SimBoard"),
    "boards/simulated_bench.py": ("test_boards.py", "SimBoard"),
    "boards/system.py": ("test_boards.py", "design_id"),
    "boards/top.py": ("test_boards.py", '"build", "--board"'),
    "boards/uart.py": ("test_boards.py", "UARTReceiver"),
}


def test_every_hardware_module_has_its_tests():
    modules = {str(f.relative_to(ROOT)) for d in ("hdl", "boards")
               for f in (ROOT / d).glob("*.py") if f.name != "__init__.py"}
    assert modules == set(BLOCK_TESTS), "say where a new module is tested (BLOCK_TESTS)"
    for mod, (test, name) in BLOCK_TESTS.items():
        text = (ROOT / "tests" / test).read_text()
        assert name in text, f"{test} does not exercise {name} of {mod}"


def test_plots_stay_out_of_the_golden_model():
    """matplotlib is imported only by the modules that draw (analog plots; sim's reports)."""
    drawers = {"pcforge.model.analog.plots", "pcforge.sim.compare", "pcforge.sim.generate",
               "pcforge.sim.complete",
               "pcforge.explore"}
    for mod, path in MODULES.items():
        if "matplotlib" in path.read_text() and mod not in drawers:
            tree = ast.parse(path.read_text())
            names = [a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                     for a in (n.names if isinstance(n, ast.Import) else [ast.alias(n.module or "")])]
            assert not any(n.startswith("matplotlib") for n in names), mod
