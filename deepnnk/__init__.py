"""DeepNNK: neural networks explained by non-negative kernel regression."""
