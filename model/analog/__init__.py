"""Analog co-design: the continuous-time PC network that the discrete relaxation discretises,
and PC on PCM-like crossbars with device non-idealities (:mod:`.config`, :mod:`.pcm`,
:mod:`.crossbar`, :mod:`.pcn`), Monte Carlo sweeps (:mod:`.sweep`) and their plots
(:mod:`.plots`). ``docs/analog.md`` explains the physics and the numbers."""
