"""Layer 'decoding': turning a model's next-token distributions into sequences."""

from rnnkit.decoding.beam import beam_search
from rnnkit.decoding.greedy import Hypothesis, LanguageModelStepper, greedy_decode, normalize_score
from rnnkit.decoding.sampling import filter_logits, generate, sample_next

__all__ = ["filter_logits", "sample_next", "generate", "greedy_decode", "beam_search",
           "Hypothesis", "LanguageModelStepper", "normalize_score"]
