"""liverec: a real-time, multi-objective session recommender (the composition root: CLI, wiring)."""

import os

# A serving process runs small numpy products per event (a sequence model's forward pass);
# OpenBLAS threads for them spin between calls and took twice the CPU for less than half
# the gain (docs/sequence.md). One thread unless the environment says otherwise; set before
# anything imports numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
