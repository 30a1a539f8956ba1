"""Layer 'models': task models built on the sequence layers (LanguageModel, ...)."""

from rnnkit.models.factory import BACKENDS, CELLS, make_rnn
from rnnkit.models.language_model import LanguageModel

__all__ = ["LanguageModel", "make_rnn", "CELLS", "BACKENDS"]
