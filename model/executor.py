"""One executor for every sweep (design-space exploration, the analog Monte Carlo, the
random-network verification): a pure function mapped over tasks, on

* ``serial`` — this process, in order (debugging, and the reference a parallel run must equal);
* ``local`` — a process pool on this machine (``workers`` processes, spawned);
* ``dask`` — Dask distributed: by default a ``LocalCluster`` of ``workers`` single-threaded
  worker processes started here (no set-up), or an existing cluster at ``scheduler``
  (``tcp://HOST:PORT``; see ``docs/explore.md`` for starting one on several machines).

Tasks must be pure functions of their arguments (the same arguments give the same result on
any worker), so a task lost with a dying worker is simply run again elsewhere — Dask does this
by itself; a failing task (an exception: a tool crash, a timeout) is recorded with the tail of
its message and does not stop the others. :meth:`Executor.map` returns one :class:`Outcome` per
task, in the tasks' order, whatever order they finished in.
"""
from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass

__all__ = ["Executor", "Outcome", "EXECUTORS"]

EXECUTORS = ("serial", "local", "dask")


@dataclass
class Outcome:
    """One task's result (``value``) or failure (``error``: the exception and the tail of its
    traceback), and its wall time in seconds."""

    value: object = None
    error: str | None = None
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def _run(fn, arg) -> Outcome:
    t0 = time.perf_counter()
    try:
        return Outcome(value=fn(arg), wall_s=time.perf_counter() - t0)
    except Exception as exc:                            # recorded, the sweep goes on
        tail = "".join(traceback.format_exception(exc))[-2000:]
        return Outcome(error=f"{type(exc).__name__}: {exc}\n{tail}",
                       wall_s=time.perf_counter() - t0)


class Executor:
    """``with Executor("dask", workers=2) as ex: outcomes = ex.map(fn, args, progress=cb)``.

    ``progress(done, total, info)`` is called as tasks end; ``info`` counts ``done``,
    ``running`` (submitted, not ended) and ``failed``, and ``last`` is the index of the task
    that just ended."""

    def __init__(self, kind: str = "dask", workers: int | None = None,
                 scheduler: str | None = None):
        if kind not in EXECUTORS:
            raise ValueError(f"executor {kind!r}: use one of {', '.join(EXECUTORS)}")
        if scheduler and kind != "dask":
            raise ValueError("a scheduler address is for the dask executor")
        self.kind, self.scheduler = kind, scheduler
        self.workers = workers or os.cpu_count() or 1
        self.client = self.cluster = self.pool = None

    def __enter__(self):
        if self.kind == "dask":
            from distributed import Client, LocalCluster
            if self.scheduler:
                self.client = Client(self.scheduler, timeout="30s")
            else:
                self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                            processes=True, dashboard_address=None)
                self.client = Client(self.cluster)
        elif self.kind == "local":
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor
            self.pool = ProcessPoolExecutor(max_workers=self.workers,
                                            mp_context=mp.get_context("spawn"))
        return self

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        self.client = self.cluster = self.pool = None

    @property
    def n_workers(self) -> int:
        if self.client is not None:
            return len(self.client.scheduler_info()["workers"])
        return 1 if self.kind == "serial" else self.workers

    def map(self, fn, args: list, *, keys: list | None = None, progress=None) -> list:
        """``fn(arg)`` for every arg; one :class:`Outcome` each, in order. ``keys`` (Dask):
        task names — the digests of the points, so a cluster never runs one twice at once."""
        n = len(args)
        out: list = [None] * n
        counts = {"done": 0, "running": n, "failed": 0}

        def record(i, o: Outcome):
            out[i] = o
            counts["done"] += 1
            counts["running"] -= 1
            counts["failed"] += not o.ok
            if progress:
                progress(counts["done"], n, dict(counts, last=i))

        if n == 0:
            return out
        if self.kind == "serial":
            for i, a in enumerate(args):
                record(i, _run(fn, a))
        elif self.kind == "local":
            from concurrent.futures import as_completed
            futs = {self.pool.submit(_run, fn, a): i for i, a in enumerate(args)}
            for f in as_completed(futs):
                record(futs[f], f.result())
        else:
            from distributed import as_completed
            names = [f"pcforge-{k}" for k in keys] if keys else None
            futs = self.client.map(_run, [fn] * n, args, key=names, pure=False, retries=2)
            index = {f.key: i for i, f in enumerate(futs)}
            for f in as_completed(futs):
                try:
                    o = f.result()
                except Exception as exc:              # the task's worker died too often
                    o = Outcome(error=f"{type(exc).__name__}: {exc}")
                record(index[f.key], o)
        return out
