"""int8 multi vectors and the flat MaxSim kernel that scores them.

Tiny arrays whose expected values are worked out in the comments.
"""

import numpy as np
import pytest

from jina_embeddings_v4.index import store as st
from jina_embeddings_v4.scoring import flat_maxsim
from jina_embeddings_v4.scoring import quantize


def test_quantize_one_scale_per_row():
    codes, scales = quantize.quantize_int8(
        [[1.27, -0.64, 0.01], [0.0, 0.0, 0.0], [-0.254, 0.127, 0.0]]
    )
    # row 0: max|x| 1.27 -> scale 0.01; 1.27/0.01 = 127, -64, 1
    # row 1: all zero -> scale 0, codes 0
    # row 2: max|x| 0.254 -> scale 0.002; -127, 63.5 rounds to even 64, 0
    assert codes.dtype == np.int8 and scales.dtype == np.float32
    assert codes.tolist() == [[127, -64, 1], [0, 0, 0], [-127, 64, 0]]
    assert scales == pytest.approx([0.01, 0.0, 0.002])


def test_dequantize_inverts_within_half_a_step():
    x = np.array([[1.27, -0.64, 0.01], [-0.254, 0.127, 0.0]], np.float32)
    back = quantize.dequantize_int8(*quantize.quantize_int8(x))
    # 0.127 / 0.002 = 63.5 -> 64 -> 0.128: off by half a step (0.001)
    assert back == pytest.approx(
        np.array([[1.27, -0.64, 0.01], [-0.254, 0.128, 0.0]]), abs=1e-6
    )
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(50, 128)).astype(np.float32)
    codes, scales = quantize.quantize_int8(tokens)
    err = np.abs(quantize.dequantize_int8(codes, scales) - tokens)
    assert np.all(err <= scales[:, None] / 2 + 1e-7)


def test_dtype_is_checked_and_shapes_too():
    assert quantize.check_multivector_dtype("int8") == "int8"
    for bad in ("float32", "INT8", None):
        with pytest.raises(ValueError, match="'float16', 'int8'"):
            quantize.check_multivector_dtype(bad)
    with pytest.raises(ValueError, match="2-D"):
        quantize.quantize_int8(np.zeros(3))
    with pytest.raises(ValueError, match="scales"):
        quantize.dequantize_int8(np.zeros((2, 3), np.int8), [1.0])


# pages end to end: d1 = [[1, 2]], d2 = [[3, 0], [0, 4], [-1, -1]]
TOKENS = np.array([[1, 2], [3, 0], [0, 4], [-1, -1]], np.float32)
Q1 = np.array([[1, 0], [0, 1]], np.float32)
Q2 = np.array([[1, 1]], np.float32)
# q1.d1 = 1 + 2 = 3; q1.d2 = max(3, 0, -1) + max(0, 4, -1) = 7
# q2.d1 = 3;         q2.d2 = max(3, 4, -2) = 4


@pytest.mark.parametrize("chunk", [1, 2, 8192])
def test_flat_maxsim_per_item_and_page(chunk):
    got = flat_maxsim.maxsim_flat([Q1, Q2], TOKENS, [0, 1, 4], chunk=chunk)
    assert got.tolist() == [[3.0, 7.0], [3.0, 4.0]]
    # offsets of a slice of a larger batch: relative to the first
    again = flat_maxsim.maxsim_flat(
        [Q1], TOKENS.astype(np.float16), [5, 6, 9], chunk=chunk
    )
    assert again.tolist() == [[3.0, 7.0]]


def test_flat_maxsim_negative_similarities_and_scales():
    q = np.array([[1, 0]], np.float32)
    tokens = np.array([[-1, 0], [-3, 0], [-2, 0], [-5, 0]], np.int8)
    # plain: max(-1) = -1; max(-3, -2, -5) = -2
    got = flat_maxsim.maxsim_flat([q], tokens, [0, 1, 4])
    assert got.tolist() == [[-1.0, -2.0]]
    # scales 1, 1, 3, 0.5: -3, -6, -2.5 -> -2.5
    scales = np.array([1, 1, 3, 0.5], np.float32)
    got = flat_maxsim.maxsim_flat([q], tokens, [0, 1, 4], scales=scales)
    assert got.tolist() == [[-1.0, -2.5]]


def test_query_digits_by_hand():
    # max|q| 1: step 2**ceil(log2(1 / 127)) = 2**-6; 1, 0.5, -0.25 are
    # 64, 32, -16 steps, nothing remains: second digits and scale 0
    digits, scales = flat_maxsim.query_digits([[1.0, 0.5, -0.25]])
    assert digits.dtype == np.int8 and scales.dtype == np.float32
    assert digits.tolist() == [[64, 32, -16], [0, 0, 0]]
    assert scales.tolist() == [2.0**-6, 0.0]
    # 0.01 is 0.64 steps -> 1 step (0.015625), remainder -0.005625:
    # step 2**ceil(log2(0.005625 / 127)) = 2**-14, -92.16 -> -92
    digits, scales = flat_maxsim.query_digits([[1.0, 0.01], [0.0, 0.0]])
    assert digits.tolist() == [[64, 1], [0, 0], [0, -92], [0, 0]]
    assert scales.tolist() == [2.0**-6, 0.0, 2.0**-14, 0.0]
    rng = np.random.default_rng(3)
    q = rng.normal(size=(20, 128))
    digits, scales = flat_maxsim.query_digits(q)
    back = (
        digits[:20] * scales[:20, None].astype(np.float64)
        + digits[20:] * scales[20:, None].astype(np.float64)
    )
    peak = np.abs(q).max(axis=1, keepdims=True)
    assert np.all(np.abs(back - q) <= peak / 127**2)


def test_flat_maxsim_int8_codes_match_float64():
    # the integer path against float64 arithmetic on the same codes
    rng = np.random.default_rng(4)
    lengths = rng.integers(1, 40, size=300)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    tokens = rng.normal(size=(offsets[-1], 128))
    tokens /= np.linalg.norm(tokens, axis=1, keepdims=True)
    codes, scales = quantize.quantize_int8(tokens)
    values = codes.astype(np.float64) * scales[:, None]
    items = [rng.normal(size=(n, 128)).astype(np.float32) for n in (3, 11)]
    items = [q / np.linalg.norm(q, axis=1, keepdims=True) for q in items]
    want = np.array(
        [
            [
                (q.astype(np.float64) @ values[a:b].T).max(axis=1).sum()
                for a, b in zip(offsets, offsets[1:])
            ]
            for q in items
        ]
    )
    # each query value is off by at most max|q_i| / 127**2, so a dot with
    # a token of length <= 1 by at most sqrt(128) times that, per token
    bound = [np.sqrt(128) * np.abs(q).max(axis=1).sum() / 127**2 for q in items]
    for chunk in (64, 8192):
        got = flat_maxsim.maxsim_flat(items, codes, offsets, scales, chunk)
        for g, w, b in zip(got, want, bound):
            assert np.abs(g - w).max() < b + 1e-6
        # in practice far under the bound
        assert np.abs(got - want).max() < 1e-4


def test_flat_maxsim_bad_offsets():
    with pytest.raises(ValueError, match="offsets"):
        flat_maxsim.maxsim_flat([Q1], TOKENS, [0, 1, 3])
    with pytest.raises(ValueError, match="at least one token"):
        flat_maxsim.maxsim_flat([Q1], TOKENS, [0, 0, 4])
    empty = flat_maxsim.maxsim_flat([Q1], TOKENS[:0], [0])
    assert empty.shape == (1, 0)


def test_running_top_k_keeps_the_best_and_ties_in_order():
    best = st.RunningTopK(3)
    best.add(["a", "b", "c"], [1.0, 5.0, 2.0])
    best.add(["d", "e"], [5.0, 0.5])
    # 5 (b, fed first), 5 (d), 2 (c)
    assert best.result() == (["b", "d", "c"], [5.0, 5.0, 2.0])
    worst = st.RunningTopK(2, reverse=True)
    worst.add(["a", "b"], [1.0, 5.0])
    worst.add(["c"], [0.5])
    assert worst.result() == (["c", "a"], [0.5, 1.0])
    every = st.RunningTopK(None)
    every.add(["a"], [1.0])
    every.add(["b"], [2.0])
    assert every.result()[0] == ["b", "a"]


def test_stream_maxsim_means_the_query_items():
    query = st.Query(singles=np.zeros((2, 4), np.float32), multis=[Q1, Q2])
    batches = [
        (["d1"], TOKENS[:1], [0, 1], None),
        (["d2"], TOKENS[1:], [1, 4], None),
    ]
    # d1: (3 + 3) / 2 = 3; d2: (7 + 4) / 2 = 5.5
    assert st.stream_maxsim(query, batches, 2) == (["d2", "d1"], [5.5, 3.0])
    assert st.stream_maxsim(query, batches, 1, reverse=True) == (["d1"], [3.0])
