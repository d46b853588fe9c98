"""``pcforge explore``: design-space exploration over lanes, widths, schedule, stop, learning
rule, board, clock and nextpnr seed (:mod:`pcforge.explore`), on Dask or a local pool."""
from __future__ import annotations

import tomllib
from pathlib import Path

import click
from rich.table import Table

from .common import (FORCE_OPTION, console, errors, executor_options, load_weights,
                     output_folder, progress, spec_from_options)

__all__ = ["explore_cmd"]


def _list(kind):
    def parse(ctx, param, value):
        if value is None:
            return None
        try:
            return [kind(v) if v.lower() not in ("base", "default") else None
                    for v in value.split(",") if v.strip()]
        except ValueError as exc:
            raise click.BadParameter(f"{value!r}: {exc}") from None
    return parse


def _axis(name, kind, help_):
    return click.option(f"--{name.replace('_', '-')}", name, default=None,
                        callback=_list(kind), help=help_ + " Comma-separated.")


@click.command("explore", short_help="Sweep configurations: accuracy, latency, resources.")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), default=None,
              help="Base spec (default: the digits spec).")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False), default=None,
              help="Float weights for the base spec (default: trained here in float, seconds).")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Output folder: results.json, results.csv, report.md, plots.")
@_axis("lanes", int, "MAC lanes, e.g. 1,2,4,8.")
@_axis("rows", int, "Rows per token (1,2: two multipliers per lane; even lanes only).")
@_axis("width", int, "Bits of x, e, w, b (integer bits as the base spec), e.g. 16,12.")
@_axis("schedule", str, "synchronous,delayed_feedback.")
@_axis("stop", str, "exact,none.")
@_axis("learning", str, "after_relaxation,incremental.")
@_axis("board", str, "icebreaker,ulx3s.")
@_axis("clock_mhz", float, "Core clock in MHz ('base': the board's).")
@_axis("seed", int, "nextpnr placer seeds (builds only).")
@click.option("--axes", "axes_path", type=click.Path(dir_okay=False), default=None,
              help="A TOML file of axes (lanes = [1, 2], board = [\"ulx3s\"], …).")
@click.option("--build", is_flag=True,
              help="Also place and route every point that fits (minutes each; cached).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes of the local cluster or pool (default: every core).")
@executor_options("dask")
@FORCE_OPTION
def explore_cmd(spec_path, weights_path, out, lanes, rows, width, schedule, stop, learning,
                board, clock_mhz, seed, axes_path, build, workers, executor, scheduler, force):
    """Sweep configurations of the core for accuracy (FixedPCN on the digits test set:
    bit-exact with the hardware), cycles, latency and throughput (exact cycle model), the
    pre-synthesis estimate, and with --build the placed fmax and resources. Points that do not
    fit are marked, not built. Results are cached per point: a killed sweep resumes. With no
    axes: a default grid (60 points, model and estimates, a few minutes)."""
    from ..explore import (DEFAULT_GRID, PARETO_COLUMNS, explore, grid, pareto_front,
                           pareto_row, write_results)
    from ..model.data import load_digits_split
    from ..model.train import train_float
    out = output_folder(out, ("results.json", "results.csv", "report.md"), force)
    if scheduler:
        executor = "dask"
    given = {k: v for k, v in dict(lanes=lanes, rows=rows, width=width, schedule=schedule,
                                   stop=stop,
                                   learning=learning, board=board, clock_mhz=clock_mhz,
                                   seed=seed).items() if v is not None}
    with errors():
        if axes_path:
            try:
                extra = tomllib.loads(Path(axes_path).read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise click.ClickException(f"{axes_path}: {exc}") from None
            for k, v in extra.items():
                if k in given:
                    raise click.UsageError(f"axis {k} is given both in {axes_path} and as "
                                           f"--{k.replace('_', '-')}")
                given[k] = v if isinstance(v, list) else [v]
        axes = given or DEFAULT_GRID
        try:
            points = grid(axes)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        base = spec_from_options(spec_path, (64,), "relu", None, None)
        if weights_path:
            weights = load_weights(weights_path, base)
        else:
            with progress("float PC training of the base spec") as cb:
                net, _ = train_float(base, load_digits_split(), progress=cb)
            weights = net.weights
        console.print(f"[bold]explore[/]: {len(points)} points over "
                      f"{', '.join(f'{k} {v}' for k, v in axes.items())}; "
                      f"{'with builds' if build else 'model and estimates'}; executor "
                      f"{executor}" + (f" at {scheduler}" if scheduler else ""))
        with progress("points") as cb:
            res = explore(base, weights, points, build=build, executor=executor,
                          workers=workers, scheduler=scheduler, progress=cb)
        files = write_results(res, out)
    m = res["meta"]
    front = pareto_front(res["results"])
    t = Table(title=f"Pareto front ({len(front)} of {m['points']} points)")
    for col in PARETO_COLUMNS:
        t.add_column(col)
    for r in front:
        t.add_row(*pareto_row(r))
    console.print(t)
    console.print(f"{m['evaluated']} points evaluated, {m['cached']} from the cache, "
                  f"{m['failed']} failed; {m['wall_s']} s on {m['workers']} worker(s); wrote "
                  f"{files['json']}, {files['csv']}, {files['report']}, "
                  + ", ".join(str(p) for p in files["plots"]))
    if m["failed"]:
        raise click.ClickException(f"{m['failed']} points failed (their errors are in "
                                   f"{files['report']})")
