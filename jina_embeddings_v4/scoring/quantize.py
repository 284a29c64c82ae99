"""Compact storage of multi vectors: symmetric int8 per token vector.

Each token vector ``x`` (one row) gets its own scale ``s = max|x| / 127``
and is stored as ``round(x / s)`` in int8 (codes in ``[-127, 127]``) with
``s`` as float32 beside it: 128 + 4 bytes a token instead of float16's
256. A dot product with a stored token is ``s * <q, codes>``, so MaxSim
can score the codes directly and scale each token's similarities, without
dequantizing first (see ``flat_maxsim.py``).

The error of a value is at most ``s / 2``: for unit-length 128-d tokens,
whose largest entry is typically 0.2-0.4, about 0.001-0.002 per entry.
"""

import numpy as np

MULTIVECTOR_DTYPES = ("float16", "int8")
DEFAULT_MULTIVECTOR_DTYPE = "float16"

INT8_MAX = 127


def check_multivector_dtype(value):
    """Returns ``value`` when it is one of :data:`MULTIVECTOR_DTYPES`;
    raises a ValueError naming them otherwise."""
    if not isinstance(value, str) or value not in MULTIVECTOR_DTYPES:
        raise ValueError(
            "multivector_dtype must be one of %s; got %r"
            % (", ".join(repr(d) for d in MULTIVECTOR_DTYPES), value)
        )
    return value


def quantize_int8(tokens):
    """Quantizes token vectors, one scale per row.

    Args:
        tokens: ``[n, dim]`` array (any float dtype)

    Returns:
        ``(codes, scales)``: int8 ``[n, dim]`` and float32 ``[n]``; an
        all-zero row gets scale 0 and codes 0
    """
    x = np.asarray(tokens, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(
            "tokens must be 2-D [n_tokens, dim]; got shape %s" % (x.shape,)
        )
    scales = (np.abs(x).max(axis=1) / INT8_MAX).astype(np.float32)
    safe = np.where(scales > 0, scales, 1.0).astype(np.float32)
    codes = np.rint(x / safe[:, None])
    codes = np.clip(codes, -INT8_MAX, INT8_MAX).astype(np.int8)
    return codes, scales


def dequantize_int8(codes, scales):
    """The float32 ``[n, dim]`` values of ``codes`` with per-row
    ``scales`` (the inverse of :func:`quantize_int8`, up to rounding)."""
    codes = np.asarray(codes)
    scales = np.asarray(scales, dtype=np.float32)
    if codes.ndim != 2 or scales.shape != (codes.shape[0],):
        raise ValueError(
            "codes must be [n, dim] and scales [n]; got %s and %s"
            % (codes.shape, scales.shape)
        )
    return codes.astype(np.float32) * scales[:, None]
