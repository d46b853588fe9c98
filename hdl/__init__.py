"""Amaranth 0.5 generators for the predictive coding core (value/error node arrays, weight
memories, MAC lanes, controller). Built from a :class:`pcforge.model.PCSpec`."""
