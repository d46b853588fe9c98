"""Cycle-accurate simulation of the generated hardware (Amaranth simulator, cocotb + Verilator)
with scoreboards against the fixed-point golden model."""
