"""The core's architecture as facts the golden side can reason about: where every value lives
(:mod:`.geometry`), what the controller runs when and how long each job waits (:mod:`.schedule`,
with the pipeline's stage constants), and the exact cycle count that follows (:mod:`.cycles`).
The hardware generator (:mod:`pcforge.hdl`) builds from these, and the tests hold it to them."""
