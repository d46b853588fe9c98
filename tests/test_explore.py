"""Design-space exploration (issue 19): the grid, the measures of a point, the Pareto front,
the cache (a killed sweep resumes), failed points recorded, and the acceptance case: a Dask
LocalCluster of 2 workers, one killed mid-sweep, ends with every point and the serial run's
results."""
import json
import os
import signal
import threading

import numpy as np
import pytest
from click.testing import CliRunner

from pcforge.cli import main
from pcforge.explore import (AXES, explore, grid, pareto_front, point_spec, resource_fraction)
from pcforge.model.arch.cycles import cycle_report
from pcforge.model.data import load_digits_split
from pcforge.model.executor import Executor
from pcforge.model.fixed_pcn import FixedPCN
from pcforge.model.presets import digits_spec
from pcforge.model.train import train_float

#: fields that measure the machine, not the design
TIMES = ("wall_s", "build_s")


@pytest.fixture(scope="module")
def base():
    spec = digits_spec()
    net, _ = train_float(spec, load_digits_split(), epochs=6, seed=0)
    return spec, net.weights


def _design(r):
    """A result without its timings (what must not depend on where or when it ran)."""
    r = {k: v for k, v in r.items() if k not in TIMES}
    if "build" in r:
        r["build"] = {k: v for k, v in r["build"].items() if k not in TIMES}
    return r


def test_grid_fills_unnamed_axes_and_refuses_unknown_ones():
    pts = grid({"lanes": [1, 2], "board": ["icebreaker", "ulx3s"]})
    assert len(pts) == 4 and all(set(p) == set(AXES) for p in pts)
    assert {(p["lanes"], p["board"]) for p in pts} == {(1, "icebreaker"), (2, "icebreaker"),
                                                       (1, "ulx3s"), (2, "ulx3s")}
    with pytest.raises(ValueError, match="unknown axes"):
        grid({"lane": [1]})


def test_width_keeps_integer_bits():
    s = point_spec(digits_spec(), dict(AXES, width=10))
    for k in "xewb":
        f, g = getattr(digits_spec().formats, k), getattr(s.formats, k)
        assert g.width == 10 and g.int_bits == f.int_bits


def test_rows_per_token_is_an_axis(base, tmp_path):
    """``rows`` (two multipliers per lane): the cycles are the cycle model's for two rows, the
    estimate counts twice the multipliers; two rows with an odd lane count is an invalid point
    that says why."""
    spec, w = base
    points = grid({"lanes": [2, 3], "rows": [1, 2], "board": ["ulx3s"]})
    res = {(r["point"]["lanes"], r["point"]["rows"]): r
           for r in explore(spec, w, points, executor="serial", cache_dir=tmp_path)["results"]}
    assert res[3, 2]["status"] == "invalid" and "even lane count" in res[3, 2]["reason"]
    one, two = res[2, 1], res[2, 2]
    assert two["cycles_all_T"] == cycle_report(spec, 2, "inference", rows=2).total
    assert two["cycles_all_T"] < one["cycles_all_T"]
    assert two["estimate"]["DSP"] == 2 * one["estimate"]["DSP"]
    assert two["accuracy"] == one["accuracy"]              # the same FixedPCN


def test_a_point_measures_what_the_models_say(base, tmp_path):
    spec, w = base
    p = dict(AXES, lanes=4, board="ulx3s", width=12)
    r = explore(spec, w, [p], executor="serial", cache_dir=tmp_path)["results"][0]
    s = point_spec(spec, p)
    d = load_digits_split()
    fx = FixedPCN.from_float(s, w)
    res = fx.infer(fx.quantize(d.x_test))
    assert r["accuracy"] == np.mean(res.output.argmax(1) == d.y_test)
    cyc = [cycle_report(s, 4, "inference", iterations=int(t)).total for t in res.iterations]
    assert r["cycles_mean"] == pytest.approx(np.mean(cyc))
    assert r["latency_us"] == pytest.approx(np.mean(cyc) / 100.0)
    assert r["cycles_all_T"] == cycle_report(s, 4, "inference").total
    assert r["fits"] and r["status"] == "ok"


def test_pareto_front_keeps_only_undominated_points():
    def res(d, acc, lat, lut):
        return {"digest": d, "status": "ok", "fits": True, "accuracy": acc, "latency_us": lat,
                "estimate": {"LUT": lut, "FF": 0, "DSP": 0, "BRAM": 0},
                "available": {"LUT": 100, "FF": 1, "DSP": 1, "BRAM": 1}}
    rs = [res("a", 0.9, 10, 50), res("b", 0.9, 20, 50),      # b: dominated by a
          res("c", 0.95, 30, 50), res("d", 0.8, 5, 90), res("e", 0.8, 5, 95)]
    assert [r["digest"] for r in pareto_front(rs)] == ["d", "a", "c"]
    assert resource_fraction(rs[3]) == 0.9


def test_cli_sweep_is_cached_and_records_failed_points(base, tmp_path, monkeypatch):
    monkeypatch.setenv("PCFORGE_CACHE", str(tmp_path / "cache"))
    spec, w = base
    spec.save(tmp_path / "s.toml")
    w.save(tmp_path / "w.npz", spec)
    args = ["explore", "--spec", str(tmp_path / "s.toml"), "--weights", str(tmp_path / "w.npz"),
            "--lanes", "1,2", "--board", "icebreaker,ulx3s", "--executor", "serial"]
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["meta"]["evaluated"] == 4 and len(res["results"]) == 4
    csv = (tmp_path / "a" / "results.csv").read_text().splitlines()
    assert len(csv) == 5 and "accuracy" in csv[0] and "pareto" in csv[0]
    report = (tmp_path / "a" / "report.md").read_text()
    assert "## Pareto front" in report and "accuracy_vs_latency.png" in report
    for png in ("accuracy_vs_latency.png", "resources_vs_lanes.png"):
        assert (tmp_path / "a" / png).stat().st_size > 5000
    # a second run reads every point from the cache
    r = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b")])
    assert r.exit_code == 0 and "0 points evaluated, 4 from the cache" in r.output, r.output
    # a point that fails (an unknown board) is recorded with its error; the others finish
    r = CliRunner().invoke(main, [*args[:-4], "--board", "ulx3s,nosuch", "--lanes", "1",
                                  "--executor", "serial", "--out", str(tmp_path / "c")])
    assert r.exit_code == 1 and "1 points failed" in r.output, r.output
    res = json.loads((tmp_path / "c" / "results.json").read_text())
    failed = [x for x in res["results"] if x["status"] == "failed"]
    assert len(failed) == 1 and "nosuch" in failed[0]["error"]
    assert [x["status"] for x in res["results"] if x["point"]["board"] == "ulx3s"] == ["ok"]
    assert "## Failed points" in (tmp_path / "c" / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.xdist_group("bitstreams")
def test_dask_sweep_survives_a_killed_worker_and_equals_the_serial_run(base, tmp_path,
                                                                      monkeypatch):
    """A LocalCluster of 2 worker processes runs model + estimate points and one real iCE40
    build; one worker is killed (SIGKILL) once the first points are in. Every point must come
    back, and equal — timings aside — what a serial run of the same points gives."""
    spec, w = base
    points = grid({"lanes": [1, 2, 4], "board": ["icebreaker", "ulx3s"],
                   "schedule": ["synchronous", "delayed_feedback"]})
    points.append(dict(AXES, lanes=1, board="icebreaker", build=True))
    killed = []
    with Executor("dask", workers=2) as ex:
        pids = ex.client.run(os.getpid)

        def progress(done, total, info):
            if done >= 2 and not killed:
                victim = sorted(pids.values())[0]
                killed.append(victim)
                threading.Thread(target=os.kill, args=(victim, signal.SIGKILL)).start()
        res = explore(spec, w, points, executor=ex, progress=progress,
                      cache_dir=tmp_path / "dask")
    assert killed, "no worker was killed"
    assert res["meta"]["failed"] == 0 and len(res["results"]) == len(points)
    built = [r for r in res["results"] if "build" in r]
    assert len(built) == 1 and built[0]["build"]["fmax_mhz"] > 0
    serial = explore(spec, w, points, executor="serial", cache_dir=tmp_path / "serial")
    assert [_design(r) for r in res["results"]] == [_design(r) for r in serial["results"]]
