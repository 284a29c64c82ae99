"""Exact MaxSim over pages laid end to end in one token matrix.

A store reads its pages in batches as one flat ``[n_tokens, dim]`` array
(float16, float32, or int8 codes with a float32 scale per token, see
``quantize.py``) and the offsets where each page starts: that is how
Arrow hands a list column over, without a copy. This scores such a batch
without padding: the batch's tokens are taken a few thousand at a time
(so the float32 copy and the similarity tile stay in the CPU's cache),
multiplied by every query token in one matmul, and each page's maximum
per query token is a segment maximum over its rows. Only real tokens are
ever compared, so the result equals a per-pair computation.
"""

import warnings

import numpy as np
import torch

# tokens converted and multiplied at once: measured fastest on a 2-core
# CPU among 2**13..2**17 (the tile stays in cache)
CHUNK_TOKENS = 8192


def maxsim_flat(query_items, tokens, offsets, scales=None, chunk=CHUNK_TOKENS):
    """MaxSim sums of each query item against each page of a flat batch.

    Args:
        query_items: list of ``[n_i, dim]`` query multi vectors
        tokens: ``[n_tokens, dim]`` numpy array: the pages' tokens, end to
            end (float16, float32, or int8 codes)
        offsets: ``[n_pages + 1]`` integers: page ``p`` is
            ``tokens[offsets[p] - offsets[0] : offsets[p + 1] - offsets[0]]``
        scales (None): float32 ``[n_tokens]``: each token's scale (int8
            codes); None for float tokens
        chunk (8192): about how many tokens are scored at once

    Returns:
        float32 numpy ``[len(query_items), n_pages]``: ``sum_i max_j
        <q_i, d_j>`` per item and page
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    offsets = offsets - offsets[0]
    n_pages = len(offsets) - 1
    if n_pages < 0 or offsets[-1] != len(tokens):
        raise ValueError(
            "offsets must run from the first token to the last (%d tokens)"
            % len(tokens)
        )
    if n_pages and np.any(np.diff(offsets) < 1):
        raise ValueError("every page needs at least one token")

    items = [np.asarray(q, dtype=np.float32) for q in query_items]
    if not n_pages:
        return np.zeros((len(items), 0), dtype=np.float32)
    bounds = np.cumsum([0] + [len(q) for q in items])
    query = torch.from_numpy(np.ascontiguousarray(np.concatenate(items)))
    best = np.empty((n_pages, len(query)), dtype=np.float32)
    with torch.no_grad(), warnings.catch_warnings():
        # Arrow's buffers are read-only; they are only read here (the
        # float32 copy is what the matmul uses)
        warnings.filterwarnings("ignore", message="The given NumPy array")
        start = 0
        while start < n_pages:
            # whole pages, about `chunk` tokens (one page when longer)
            stop = int(
                np.searchsorted(offsets, offsets[start] + chunk, side="right")
            ) - 1
            stop = min(max(stop, start + 1), n_pages)
            lo, hi = offsets[start], offsets[stop]
            block = torch.from_numpy(np.ascontiguousarray(tokens[lo:hi]))
            sim = block.float() @ query.T
            if scales is not None:
                # <q, s * c> = s * <q, c>: scale after the matmul
                sim *= torch.from_numpy(
                    np.asarray(scales[lo:hi], dtype=np.float32)
                ).unsqueeze(1)
            best[start:stop] = np.maximum.reduceat(
                sim.numpy(), offsets[start:stop] - lo, axis=0
            )
            start = stop

    return np.stack(
        [best[:, lo:hi].sum(axis=1) for lo, hi in zip(bounds, bounds[1:])]
    )
