"""Exact late-interaction scoring, pooling and heatmap maths: pure
functions over numpy and torch arrays. Nothing here imports FiftyOne."""
