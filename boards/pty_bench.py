"""cocotb 2 bench that puts the simulated board on a serial port: a pseudo-terminal whose other
end is the board top's UART (run by :meth:`pcforge.boards.simulated.SimBoard.serve_pty`).

Any program that opens the pty's path as a serial port — ``pcforge board … --port PATH``, the
:class:`~pcforge.boards.host.PCLink` driver on a :class:`~pcforge.boards.host.SerialTransport`,
a terminal — talks to the simulated board exactly as it would to a real one on
``/dev/ttyUSB*``: bytes written to the port are shifted into ``rx`` bit by bit, bytes the board
shifts out of ``tx`` come back on the port. Simulated time advances while the port is quiet.
The bench writes the pty's path to ``job["pty_file"]`` when it is ready and stops when
``job["stop_file"]`` exists (or after ``job["max_s"]`` seconds).
"""
from __future__ import annotations

import json
import os
import time
import tty

import cocotb
from cocotb.triggers import Timer
from cocotb.utils import get_sim_time

from pcforge.boards.simulated_bench import PERIOD_NS, start_board
from pcforge.model.files import atomic_write

#: clock cycles simulated per poll of a quiet port, waited as one simulator timer (cocotb's
#: ClockCycles wakes Python at every edge: 40 k cycles/s instead of Verilator's millions)
IDLE_CYCLES = 400


@cocotb.test()
async def board_on_pty(dut):
    job, uart = await start_board(dut)
    master, slave = os.openpty()
    tty.setraw(slave)                 # bytes pass unchanged: no echo, no line editing
    os.set_blocking(master, False)
    atomic_write(job["pty_file"], os.ttyname(slave))
    t_end = time.monotonic() + job.get("max_s", 3600)
    to_host = from_host = 0
    while not os.path.exists(job["stop_file"]) and time.monotonic() < t_end:
        try:
            data = os.read(master, 4096)
        except (BlockingIOError, OSError):
            data = b""
        if data:
            from_host += len(data)
            await uart._write(data)
        if uart.received:
            out = bytes(uart.received)
            uart.received.clear()
            os.write(master, out)
            to_host += len(out)
        if not data:
            await Timer(IDLE_CYCLES * PERIOD_NS, unit="ns")
    os.close(master)
    os.close(slave)
    with open(os.environ["PCFORGE_RESULT"], "w") as f:
        json.dump({"bytes_from_host": from_host, "bytes_to_host": to_host,
                   "total_cycles": int(get_sim_time("ns") // PERIOD_NS)}, f)
