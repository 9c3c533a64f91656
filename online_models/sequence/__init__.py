"""Learned session models over item-id sequences: GRU4Rec and SASRec.

* :mod:`~online_models.sequence.config`: what a model is and how it trains;
* :mod:`~online_models.sequence.data`: the item vocabulary and the training windows;
* :mod:`~online_models.sequence.network`: the forward pass, written once against an array
  module, so that training runs it on JAX and serving on numpy (tests hold them equal);
* :mod:`~online_models.sequence.model`: a trained model as the stream serves it (numpy only,
  loaded from one ``.npz`` file);
* :mod:`~online_models.sequence.train`: training on the CPU with JAX and optax, the optional
  ``train`` extra (``pip install liverec[train]``).

Serving never imports JAX.
"""

from online_models.sequence.config import MODEL_KINDS, SequenceConfig
from online_models.sequence.model import SequenceModel

__all__ = ["MODEL_KINDS", "SequenceConfig", "SequenceModel"]
