"""The cosine distances the exactness checks use, checked by hand."""

from types import SimpleNamespace

import numpy as np
import pytest

from jina_embeddings_v4.testing.compare import cosine_distance, worst_distance


def test_cosine_distance_by_hand():
    a = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 4.0]])
    b = np.array([[2.0, 0.0], [0.0, 5.0], [-1.0, 0.0], [4.0, 3.0]])
    # same direction, orthogonal, opposite, cos = 24 / 25
    assert cosine_distance(a, b) == pytest.approx([0.0, 1.0, 2.0, 1 / 25])


def test_cosine_distance_is_float64_whatever_the_inputs():
    # in float16 1 - cos of two vectors 1e-4 apart would round to 0
    a = np.array([1.0, 1e-4], np.float16)
    b = np.array([1.0, 0.0], np.float16)
    d = cosine_distance(a, b)
    assert d.dtype == np.float64
    x = float(np.float16(1e-4))
    assert d == pytest.approx(1 - 1 / np.sqrt(1 + x * x), rel=1e-6)
    assert d > 0


def _emb(single, multi):
    return SimpleNamespace(single=np.asarray(single, np.float64), multi=multi)


def test_worst_distance_is_the_largest_over_single_and_multi_vectors():
    ref = _emb([[1, 0], [0, 1]], [np.array([[1, 0], [0, 1]]), np.array([[1, 1]])])
    out = _emb([[1, 0], [1, 1]], [np.array([[1, 0], [0, 1]]), np.array([[1, -1]])])
    # singles: 0 and 1 - 1/sqrt(2); the second page's token: orthogonal, 1
    assert worst_distance(out, ref) == pytest.approx(1.0)
    out.multi[1] = np.array([[1, 1]])
    assert worst_distance(out, ref) == pytest.approx(1 - 1 / np.sqrt(2))
    assert worst_distance(ref, ref) == pytest.approx(0.0, abs=1e-15)


def test_worst_distance_is_inf_when_the_pages_or_tokens_differ():
    ref = _emb([[1, 0]], [np.ones((3, 2))])
    assert worst_distance(_emb([[1, 0]], [np.ones((2, 2))]), ref) == np.inf
    assert worst_distance(_emb([[1, 0]], None), ref) == np.inf
    assert worst_distance(_emb([[1, 0]], []), ref) == np.inf
    assert worst_distance(_emb([[1, 0], [1, 0]], [np.ones((3, 2))] * 2), ref) == (
        np.inf
    )
    # singles alone compare when neither has multi vectors
    assert worst_distance(_emb([[0, 1]], None), _emb([[1, 0]], None)) == (
        pytest.approx(1.0)
    )


def test_worst_distance_is_inf_for_nan_or_zero_vectors_anywhere():
    ref = _emb([[1, 0], [0, 1]], [np.ones((2, 2)), np.ones((3, 2))])
    assert worst_distance(ref, ref) == pytest.approx(0.0, abs=1e-15)
    # a NaN token in the second page (max() alone would drop it)
    bad = np.ones((3, 2))
    bad[1, 0] = np.nan
    assert worst_distance(_emb([[1, 0], [0, 1]], [np.ones((2, 2)), bad]), ref) == (
        np.inf
    )
    # an all-zero single vector: 0 / 0
    assert worst_distance(_emb([[1, 0], [0, 0]], ref.multi), ref) == np.inf
    # single vectors on one side only
    assert worst_distance(SimpleNamespace(single=None, multi=ref.multi), ref) == (
        np.inf
    )
    # multi vectors alone compare when neither has single vectors
    alone = SimpleNamespace(single=None, multi=ref.multi)
    assert worst_distance(alone, alone) == pytest.approx(0.0, abs=1e-15)
