"""Layer 'models': task models built on the sequence layers, one per classic configuration."""

from rnnkit.models.attention import Attention
from rnnkit.models.classifier import SequenceClassifier
from rnnkit.models.conditional import ConditionalGenerator
from rnnkit.models.conditional_roll import ConditionalPianoRoll
from rnnkit.models.factory import BACKENDS, CELLS, make_rnn
from rnnkit.models.forecaster import Forecaster
from rnnkit.models.language_model import LanguageModel
from rnnkit.models.piano_roll import PianoRollModel
from rnnkit.models.seq2seq import DecoderState, Seq2Seq
from rnnkit.models.tagger import SequenceTagger

__all__ = ["LanguageModel", "Seq2Seq", "DecoderState", "Attention", "SequenceClassifier",
           "SequenceTagger", "ConditionalGenerator", "Forecaster", "PianoRollModel",
           "ConditionalPianoRoll", "make_rnn", "CELLS", "BACKENDS"]
