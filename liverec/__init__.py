"""liverec: a real-time, multi-objective session recommender (the composition root: CLI, wiring)."""

__version__ = "0.1.0"
