"""Layer 'decoding': turning a model's next-token distributions into sequences."""

from rnnkit.decoding.sampling import filter_logits, generate, sample_next

__all__ = ["filter_logits", "sample_next", "generate"]
