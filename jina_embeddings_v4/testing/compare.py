"""Cosine distances between embeddings, for the exactness checks of the
tests and benchmarks. Computed in float64, so the comparison adds no
rounding of its own to what it measures."""

import numpy as np


def cosine_distance(a, b):
    """``1 - cos(a, b)`` along the last axis, in float64.

    Args:
        a: an array of vectors (the last axis is the vector)
        b: an array of the same shape, or one that broadcasts to it

    Returns:
        an array of distances, one per vector: 0 for the same direction,
        1 for orthogonal vectors, 2 for opposite ones
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        # a zero vector gives NaN, which worst_distance reports
        return 1.0 - np.sum(a * b, -1) / (
            np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
        )


def worst_distance(out, ref):
    """The largest cosine distance between two embeddings of the same
    pages, over the single vectors and every multi vector.

    Args:
        out: an object with ``single`` (pages x dim) and ``multi`` (one
            tokens x dim array a page), such as the encoder's Embeddings
        ref: the same for the reference

    Returns:
        the largest distance, or ``inf`` when the two do not hold the same
        pages and tokens (a page count or a page's multi-vector shape
        differs, or only one of them has single or multi vectors) or a
        distance is not a number (NaN values, or all-zero vectors)
    """
    inf = float("inf")
    if (out.single is None) != (ref.single is None):
        return inf
    if (out.multi is None) != (ref.multi is None):
        return inf
    if out.single is None and out.multi is None:
        return inf

    worst = 0.0
    if out.single is not None:
        if np.shape(out.single) != np.shape(ref.single):
            return inf
        worst = _largest(out.single, ref.single)
    if out.multi is not None:
        if len(out.multi) != len(ref.multi):
            return inf
        for a, b in zip(out.multi, ref.multi):
            if np.shape(a) != np.shape(b):
                return inf
            worst = max(worst, _largest(a, b))
    return worst


def _largest(a, b):
    # NaN compares false both ways, so max() would drop it: inf instead
    d = cosine_distance(a, b)
    if d.size == 0:
        return 0.0
    if np.isnan(d).any():
        return float("inf")
    return float(np.max(d))
