"""The emitted Verilog: deterministic, lint-clean under Verilator -Wall (with written waivers),
a manifest that describes it, and clear refusals of what the generator cannot build."""
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import pcforge.hdl
from pcforge.cli import main
from pcforge.hdl.emit import emit, verilog_text
from pcforge.model import PCSpec, SpecError
from pcforge.model.arch.cycles import cycle_report
from pcforge.model import Formats, QFormat
from pcforge.model.randspec import random_spec
from pcforge.model.presets import digits_spec
from pcforge.sim.toolchain import verilator_env

WAIVERS = Path(pcforge.hdl.__file__).parent / "verilator_waivers.vlt"
WAIVED = {"WIDTHEXPAND", "WIDTHTRUNC", "UNUSEDSIGNAL", "PROCASSINIT", "CASEINCOMPLETE",
          "DECLFILENAME", "CASEOVERLAP"}


def lint(vfile, *extra):
    r = subprocess.run(["verilator", "--lint-only", "-Wall", *extra, str(vfile),
                        "--top-module", "pcforge_core"], capture_output=True, text=True,
                       env=verilator_env())
    return r.returncode, r.stdout + r.stderr


def lint_specs():
    rng = np.random.default_rng(5)
    specs = [("digits", digits_spec(), 8)]
    for k in range(8):
        specs.append((f"random{k}", random_spec(rng, activations=("tanh", "relu"),
                                                schedules=(("synchronous", "delayed_feedback")[
                                                    k % 2],)),
                      int(rng.integers(1, 6))))
    # the learning hardware: incremental (second multiplier, column-sweep writes) with weight
    # guard bits, and after relaxation
    specs.append(("digits_incremental_guard",
                  digits_spec(learning="incremental",
                              formats=Formats(w=QFormat(12, 8), w_guard=4)), 4))
    specs.append(("digits_after_relaxation_tanh", digits_spec(activation="tanh"), 3))
    return specs


@pytest.mark.parametrize("name,spec,lanes", lint_specs(), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_verilator_lint_clean_with_written_waivers(tmp_path, name, spec, lanes):
    res = emit(spec, lanes, tmp_path)
    rc, out = lint(res.verilog)
    fired = set(re.findall(r"%Warning-([A-Z]+)", out))
    assert "%Error" not in out.replace("%Error: Exiting due to", ""), out[:2000]
    assert fired <= WAIVED, f"unwaived Verilator warnings {fired - WAIVED}:\n{out[:3000]}"
    rc, out = lint(res.verilog, str(WAIVERS))
    assert rc == 0 and "%Warning" not in out, out[:3000]


def test_same_spec_gives_byte_identical_verilog(tmp_path):
    spec = random_spec(np.random.default_rng(11), schedules=("synchronous",))
    a, _ = verilog_text(spec, 3)
    b, _ = verilog_text(PCSpec.from_dict(spec.to_dict()), 3)
    assert a == b
    # and across processes, through the CLI
    spec.save(tmp_path / "s.toml")
    r = CliRunner().invoke(main, ["hdl", "--spec", str(tmp_path / "s.toml"), "--lanes", "3",
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o" / "pcforge_core.v").read_text() == a


def test_manifest_describes_ports_memories_and_cycles(tmp_path):
    spec = digits_spec()
    r = CliRunner().invoke(main, ["hdl", "--lanes", "4", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    man = json.loads((tmp_path / "manifest.json").read_text())
    v = (tmp_path / "pcforge_core.v").read_text()
    assert man["spec_digest"] == spec.digest and man["lanes"] == 4
    header = re.search(r"module pcforge_core\((.*?)\);", v, re.S).group(1)
    verilog_ports = {p.strip() for p in header.split(",")} - {"clk", "rst"}
    assert {p["name"] for p in man["ports"]} == verilog_ports
    assert man["estimated_cycles"]["inference"]["total"] == \
        cycle_report(spec, 4, "inference").total
    w1 = [m for m in man["memories"] if m["kind"] == "w" and m["layer"] == 1]
    assert len(w1) == 4 and all(m["depth"] == 64 * 16 for m in w1)
    assert PCSpec.load(tmp_path / "spec.toml").digest == spec.digest


@pytest.mark.parametrize("lanes,change,field", [
    (0, {}, "lanes"),
    (300, {}, "lanes"),
    (64, {"activations": ("tanh", "tanh"), "table_bits": 12}, "table_bits"),
])
def test_unbuildable_spec_fails_at_generation_and_writes_nothing(tmp_path, lanes, change, field):
    spec = digits_spec()
    if change:
        spec = PCSpec.from_dict({**spec.to_dict(), "network": {**spec.to_dict()["network"],
                                 **{k: list(v) if isinstance(v, tuple) else v
                                    for k, v in change.items()}}})
    with pytest.raises(SpecError, match=field):
        emit(spec, lanes, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    spec.save(tmp_path / "s.toml")
    r = CliRunner().invoke(main, ["hdl", "--spec", str(tmp_path / "s.toml"), "--lanes",
                                  str(lanes), "--out", str(tmp_path / "cli")])
    assert r.exit_code != 0 and field in r.output and "Traceback" not in r.output
    assert not (tmp_path / "cli").exists()
