"""Alignment heads on cached features: losses, projection heads, training, retrieval."""
