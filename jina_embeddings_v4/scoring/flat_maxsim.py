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

int8 codes (with their scales) are multiplied in integers: each query
value is written as two int8 digits, ``q = s1 * c1 + s2 * c2`` with
power-of-two scales per query token (:func:`query_digits`), and
``torch._int_mm`` multiplies the codes by both digits at once with exact
int32 sums. That reads a token's 128 bytes once, with no float copy, and
is several times faster than converting the codes to float32 on a 2-core
CPU (``benchmarks/bench_exhaustive.py``). The two digits are within
``max|q| / 127**2`` of each query value: on unit-length tokens a score
moves by about 5e-6 per query token against float64 on the same codes
(``tests/unit/test_quantize.py``), some 100x under the codes' own
rounding (``quantize.py``).
"""

import warnings

import numpy as np
import torch

# tokens converted and multiplied at once: measured fastest on a 2-core
# CPU among 2**13..2**17 (the tile stays in cache)
CHUNK_TOKENS = 8192

INT8_MAX = 127


def query_digits(query):
    """Two int8 digits per value of float ``[n, dim]`` query tokens.

    Row ``i`` is ``s1[i] * c1[i] + s2[i] * c2[i]`` up to
    ``max|query[i]| / 127**2`` per value: ``s1`` is the smallest power of
    two with ``max|q| / s1 <= 127``, ``c1 = round(q / s1)``, and the
    remainder is written the same way in ``(s2, c2)``. Powers of two keep
    ``s * c`` exact in float32 (a query of small integers or halves comes
    back exactly).

    Returns:
        ``(digits, scales)``: int8 ``[2 * n, dim]`` (``c1`` rows, then
        ``c2`` rows) and float32 ``[2 * n]`` (``s1``, then ``s2``); a zero
        row (or remainder) gets digits 0 and scale 0
    """
    q = np.asarray(query, dtype=np.float64)
    digits, scales = [], []
    for _ in range(2):
        peak = np.abs(q).max(axis=1)
        step = np.zeros_like(peak)
        nz = peak > 0
        step[nz] = np.exp2(np.ceil(np.log2(peak[nz] / INT8_MAX)))
        safe = np.where(nz, step, 1.0)[:, None]
        codes = np.clip(np.rint(q / safe), -INT8_MAX, INT8_MAX)
        digits.append(codes.astype(np.int8))
        scales.append(step.astype(np.float32))
        q = q - codes * np.where(nz, step, 0.0)[:, None]
    return np.concatenate(digits), np.concatenate(scales)


def _int8_block_scores(block, digits, digit_scales, token_scales):
    """``[n, m]`` float32 similarities (query tokens by rows) of int8
    ``block`` ``[m, dim]`` (its rows scaled by ``token_scales``) with the
    query whose two digits are ``digits`` ``[2n, dim]`` (see
    :func:`query_digits`). Laid out query by token, every step after the
    integer product runs over contiguous rows: fewer passes than token by
    query (``benchmarks/bench_exhaustive.py``)."""
    n = digits.shape[0] // 2
    acc = torch._int_mm(digits, block.T).float()
    acc *= digit_scales.unsqueeze(1)
    sim = acc[:n]
    sim += acc[n:]
    sim *= token_scales
    return sim


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
    integer = scales is not None and np.asarray(tokens[:0]).dtype == np.int8
    if integer:
        digits, digit_scales = query_digits(query.numpy())
        digits = torch.from_numpy(np.ascontiguousarray(digits))
        digit_scales = torch.from_numpy(digit_scales)
    best = np.empty((n_pages, len(query)), dtype=np.float32)
    with torch.no_grad(), warnings.catch_warnings():
        # Arrow's buffers are read-only; they are only read here
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
            token_scales = None
            if scales is not None:
                token_scales = torch.from_numpy(
                    np.asarray(scales[lo:hi], dtype=np.float32)
                )
            if integer:
                sim = _int8_block_scores(
                    block, digits, digit_scales, token_scales
                )
                best[start:stop] = np.maximum.reduceat(
                    sim.numpy(), offsets[start:stop] - lo, axis=1
                ).T
                start = stop
                continue
            sim = block.float() @ query.T
            if token_scales is not None:
                # <q, s * c> = s * <q, c>: scale after the matmul
                sim *= token_scales.unsqueeze(1)
            best[start:stop] = np.maximum.reduceat(
                sim.numpy(), offsets[start:stop] - lo, axis=0
            )
            start = stop

    return np.stack(
        [best[:, lo:hi].sum(axis=1) for lo, hi in zip(bounds, bounds[1:])]
    )
