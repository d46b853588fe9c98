"""pcforge from Python, cell by cell (run it whole: ``python examples/quickstart.py``, or cell by
cell in an editor that knows ``# %%``). The order is the field's: convert → predict → compile →
simulate → build. ``--build`` also places and routes the iCEBreaker bitstream (minutes; cached).

Every number printed is computed here; nothing is pasted in.
"""
# %% A trained network: float PC on the shipped digits set (a few epochs, seconds)
import argparse
import tempfile
from pathlib import Path

import numpy as np

import pcforge
from pcforge.model.data import load_digits_split
from pcforge.model.presets import digits_spec
from pcforge.model.train import train_float

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=8)
parser.add_argument("--build", action="store_true", help="also build the iCEBreaker bitstream")
args = parser.parse_args()

data = load_digits_split()
spec = digits_spec()
net, hist = train_float(spec, data, epochs=args.epochs, seed=0)
print(f"trained {spec.name} {list(spec.sizes)} for {args.epochs} epochs "
      f"({hist.wall_s:.1f} s)")

# %% convert: the network bound to a core of 8 MAC lanes
hw = pcforge.convert(spec, weights=net.weights, lanes=8)
print(hw)

# %% predict: bit-exact fixed point (what the hardware computes) beside float64
fixed = hw.predict(data.x_test).argmax(1)
flt = hw.predict_float(data.x_test).argmax(1)
print(f"test accuracy: fixed point {np.mean(fixed == data.y_test):.2%}, float "
      f"{np.mean(flt == data.y_test):.2%}, argmax agreement {np.mean(fixed == flt):.2%}")

# %% trace: every layer at every iteration. With the label clamped the energy falls; with
# only the input clamped the network starts at rest (every error 0) and stays there.
x0, label = data.x_test[:1], np.eye(10)[data.y_test[:1]]
t = hw.trace(x0, mode="training", clamp={spec.L: label})
print(f"training-mode relaxation: energy {t.energy[0, 0]:.4f} → {t.energy[-1, 0]:.4f} over "
      f"{len(t.x) - 1} iterations (the hardware stops after {t.iterations[0]})")
rest = hw.trace(x0)
print(f"inference from rest: energy {rest.energy[0, 0]:.3g}, stops after "
      f"{rest.iterations[0]} iteration(s)")

# %% cycles from the exact cycle model
c = hw.cycles(x=data.x_test[:100])
print(f"cycles per inference: {c['all_iterations']} with all T iterations, "
      f"{int(np.median(c['per_sample']))} (median) with the exact stop; MAC-lane utilisation "
      f"{c['utilisation']:.1%}")

# %% compile + simulate: the emitted Verilog, cycle-accurate (Verilator), every iteration of
# every sample checked against the fixed-point model
sim = hw.simulate(data.x_test[:20])
assert np.array_equal(sim.output, hw.predict(data.x_test[:20]))
assert sim.cycles == c["per_sample"][:20]
print(f"Verilator: {sum(sim.bit_exact)}/{len(sim.bit_exact)} samples bit-exact, "
      f"{sim.total_cycles} cycles in {sim.wall_s:.2f} s (model built in {sim.build_s:.1f} s)")

# %% files other tools read: the Verilog, and the feed-forward network as ONNX
with tempfile.TemporaryDirectory() as tmp:
    v = hw.write_verilog(Path(tmp) / "hdl")
    hw.export_onnx(Path(tmp) / "digits.onnx")
    back = pcforge.convert(Path(tmp) / "digits.onnx", calibration=data.x_train[:200])
    agree = np.mean(back.predict(data.x_test).argmax(1) == flt)
    print(f"wrote {v.name} ({v.stat().st_size} bytes); ONNX round trip: formats "
          f"x {back.spec.formats.x}, argmax agreement with float {agree:.2%}")

# %% estimate, then build (with --build)
est = hw.estimate("ulx3s")
print(f"ULX3S estimate: {est['estimate']} (fits: {est['fits']})")
if args.build:
    small = pcforge.convert(spec, weights=net.weights, lanes=1)
    rep = small.build("icebreaker")
    print(f"iCEBreaker: {rep['fmax_mhz']:.1f} MHz post-route (clock {rep['clock_mhz']:.0f}, "
          f"timing {'met' if rep['timing_met'] else 'NOT met'}), bitstream in {rep['out']}")
