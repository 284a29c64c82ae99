"""Unit tests for the late-interaction (MaxSim) and pooling helpers.

Most cases use tiny 2-d tensors so every expected number can be checked
by hand; the comments next to each expectation show the arithmetic.
"""

import math

import numpy as np
import pytest
import torch

from jina_embeddings_v4.scoring import late_interaction as li


def _t(rows):
    return torch.tensor(rows, dtype=torch.float32)


# Shared ragged example:
#   q1 = [[1, 0], [0, 1]]  (2 tokens)    q2 = [[1, 1]]  (1 token)
#   d1 = [[1, 2]]          (1 token)     d2 = [[3, 0], [0, 4], [-1, -1]]
Q1 = _t([[1, 0], [0, 1]])
Q2 = _t([[1, 1]])
D1 = _t([[1, 2]])
D2 = _t([[3, 0], [0, 4], [-1, -1]])
# q1.d1: max(1) + max(2)            = 3
# q1.d2: max(3, 0, -1) + max(0, 4, -1) = 3 + 4 = 7
# q2.d1: max(1 + 2)                 = 3
# q2.d2: max(3, 4, -2)              = 4
RAGGED_SUM = [[3.0, 7.0], [3.0, 4.0]]
# mean divides q1 (2 tokens) by 2 and q2 (1 token) by 1
RAGGED_MEAN = [[1.5, 3.5], [3.0, 4.0]]


def test_constants():
    assert li.NORMALIZE_CHOICES == ("sum", "mean")
    assert li.POOLING_CHOICES == ("mean", "max")
    assert isinstance(li.DEFAULT_BLOCK_SIZE, int)
    assert li.DEFAULT_BLOCK_SIZE >= 1


def test_all_negative_similarities_are_not_masked_by_zero_padding():
    # One query token [1, 0]; every document token points the other way.
    q = _t([[1, 0]])
    short = _t([[-1, 0]])  # padded to 3 slots in the shared block
    long = _t([[-3, 0], [-2, 0], [-5, 0]])
    scores = li.maxsim_scores([q], [short, long], block_size=2)
    # short: max(-1) = -1 (zero padding would wrongly give 0)
    # long:  max(-3, -2, -5) = -2
    torch.testing.assert_close(scores, _t([[-1.0, -2.0]]))


def test_ragged_lengths_sum():
    scores = li.maxsim_scores([Q1, Q2], [D1, D2])
    torch.testing.assert_close(scores, _t(RAGGED_SUM))


def test_mean_is_sum_divided_by_query_token_count():
    scores = li.maxsim_scores([Q1, Q2], [D1, D2], normalize="mean")
    torch.testing.assert_close(scores, _t(RAGGED_MEAN))


def test_mean_vs_sum_on_random_ragged_data():
    gen = torch.Generator().manual_seed(3)
    queries = [torch.randn(n, 4, generator=gen) for n in (1, 5, 2)]
    docs = [torch.randn(n, 4, generator=gen) for n in (3, 1, 7, 2)]
    total = li.maxsim_scores(queries, docs, normalize="sum")
    mean = li.maxsim_scores(queries, docs, normalize="mean")
    counts = _t([1, 5, 2]).unsqueeze(1)
    torch.testing.assert_close(mean, total / counts)


def test_results_follow_input_order():
    # Swapping inputs must swap rows / columns of the hand-computed result.
    scores = li.maxsim_scores([Q2, Q1], [D2, D1])
    torch.testing.assert_close(scores, _t([[4.0, 3.0], [7.0, 3.0]]))


def test_input_order_kept_when_lengths_force_reordering():
    # Documents given shortest first; the implementation sorts by length.
    q = _t([[1, 0]])
    docs = [_t([[k, 0]] * k) for k in (1, 2, 3, 4, 5)]
    scores = li.maxsim_scores([q], docs, block_size=2)
    # max over identical tokens [k, 0] dotted with [1, 0] is k
    torch.testing.assert_close(scores, _t([[1.0, 2.0, 3.0, 4.0, 5.0]]))


@pytest.mark.parametrize("block_size", [1, 2, 3])
def test_blocked_equals_unblocked_hand_example(block_size):
    docs = [D1, D2, D1, D2]
    scores = li.maxsim_scores([Q1, Q2], docs, block_size=block_size)
    expected = _t([[3.0, 7.0, 3.0, 7.0], [3.0, 4.0, 3.0, 4.0]])
    torch.testing.assert_close(scores, expected)


@pytest.mark.parametrize("block_size", [1, 2, 3])
def test_blocked_equals_unblocked_random(block_size):
    gen = torch.Generator().manual_seed(block_size)
    queries = [torch.randn(n, 8, generator=gen) for n in (3, 1, 6)]
    docs = [torch.randn(n, 8, generator=gen) for n in (5, 1, 9, 2, 2, 7, 4)]
    blocked = li.maxsim_scores(queries, docs, block_size=block_size)
    unblocked = li.maxsim_scores(queries, docs, block_size=1000)
    # Different matmul shapes may round the last bit differently.
    torch.testing.assert_close(blocked, unblocked, rtol=1e-6, atol=1e-5)


def test_many_queries_are_chunked_without_changing_scores(monkeypatch):
    gen = torch.Generator().manual_seed(11)
    queries = [torch.randn(n, 4, generator=gen) for n in (2, 5, 1, 3)]
    docs = [torch.randn(n, 4, generator=gen) for n in (3, 6, 1)]
    expected = li.maxsim_scores(queries, docs)
    # A tiny element budget forces one query per chunk.
    monkeypatch.setattr(li, "_MAX_BLOCK_ELEMENTS", 1)
    chunked = li.maxsim_scores(queries, docs)
    torch.testing.assert_close(chunked, expected, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_input_gives_float32_output(dtype):
    # 0.5, 0.25 and 2 are exact in half precision, so results are exact.
    q = torch.tensor([[0.5, 0.25], [2.0, 0.0]], dtype=dtype)
    d = torch.tensor([[2.0, 2.0], [0.0, -2.0]], dtype=dtype)
    scores = li.maxsim_scores([q], [d])
    assert scores.dtype == torch.float32
    assert scores.device.type == "cpu"
    # token 1: max(1 + 0.5, -0.5) = 1.5 ; token 2: max(4, 0) = 4
    torch.testing.assert_close(scores, _t([[5.5]]))


def test_half_precision_accumulates_in_float32():
    # 4096 tokens of 1 * 1 sum to 4096; float16 accumulation of this sum
    # would still be exact, but 4097 is not representable in float16.
    q = torch.ones(4097, 1, dtype=torch.float16)
    d = torch.ones(1, 1, dtype=torch.float16)
    assert li.maxsim_scores([q], [d]).item() == 4097.0


def test_numpy_and_batched_tensor_inputs():
    queries = [Q1.numpy(), Q2.numpy().astype(np.float16)]
    docs = [D1.numpy(), D2.numpy()]
    torch.testing.assert_close(li.maxsim_scores(queries, docs), _t(RAGGED_SUM))
    # A 3-D tensor is a sequence of equal-length 2-D multi-vectors.
    batch = torch.stack([Q1, Q1])
    torch.testing.assert_close(
        li.maxsim_scores(batch, [D1, D2]), _t([[3.0, 7.0], [3.0, 7.0]])
    )


def test_explicit_cpu_device():
    scores = li.maxsim_scores([Q1, Q2], [D1, D2], device="cpu")
    torch.testing.assert_close(scores, _t(RAGGED_SUM))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_returns_cpu_scores():
    scores = li.maxsim_scores([Q1, Q2], [D1, D2], device="cuda")
    assert scores.device.type == "cpu"
    torch.testing.assert_close(scores, _t(RAGGED_SUM))


def _brute_force(queries, docs, normalize):
    out = torch.empty(len(queries), len(docs), dtype=torch.float64)
    for i, q in enumerate(queries):
        for j, d in enumerate(docs):
            total = 0.0
            for q_tok in q.double():
                total += max(float(q_tok @ d_tok) for d_tok in d.double())
            if normalize == "mean":
                total /= q.shape[0]
            out[i, j] = total
    return out


@pytest.mark.parametrize("normalize", ["sum", "mean"])
def test_matches_brute_force_on_random_ragged_data(normalize):
    gen = torch.Generator().manual_seed(1234)
    q_lens = torch.randint(1, 13, (7,), generator=gen).tolist()
    d_lens = torch.randint(1, 61, (23,), generator=gen).tolist()
    queries = [torch.randn(n, 16, generator=gen) for n in q_lens]
    docs = [torch.randn(n, 16, generator=gen) for n in d_lens]
    # Shift half the documents so many similarities are all-negative.
    docs = [d - 3.0 * (k % 2) for k, d in enumerate(docs)]
    expected = _brute_force(queries, docs, normalize).float()
    for block_size in (1, 4, li.DEFAULT_BLOCK_SIZE):
        scores = li.maxsim_scores(
            queries, docs, normalize=normalize, block_size=block_size
        )
        assert scores.shape == (7, 23)
        torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)


def test_empty_queries_error():
    with pytest.raises(ValueError, match="queries is empty"):
        li.maxsim_scores([], [D1])


def test_empty_documents_error():
    with pytest.raises(ValueError, match="documents is empty"):
        li.maxsim_scores([Q1], [])


def test_zero_token_query_error():
    with pytest.raises(ValueError, match="query 1 has zero tokens"):
        li.maxsim_scores([Q1, torch.zeros(0, 2)], [D1])


def test_zero_token_document_error():
    with pytest.raises(ValueError, match="document 0 has zero tokens"):
        li.maxsim_scores([Q1], [torch.zeros(0, 2), D1])


@pytest.mark.parametrize(
    "bad", [torch.ones(2), torch.ones(1, 2, 2)], ids=["1d", "3d"]
)
def test_non_2d_error(bad):
    with pytest.raises(ValueError, match=r"document 1 must be 2-D"):
        li.maxsim_scores([Q1], [D1, bad])
    with pytest.raises(ValueError, match=r"query 0 must be 2-D"):
        li.maxsim_scores([bad], [D1])


def test_dim_mismatch_error_names_both_dims():
    with pytest.raises(
        ValueError, match="queries have dim 16 but documents have dim 8"
    ):
        li.maxsim_scores([torch.ones(2, 16)], [torch.ones(3, 8)])


def test_dim_mismatch_within_documents_error():
    with pytest.raises(ValueError, match="document 1 has dim 3"):
        li.maxsim_scores([Q1], [D1, torch.ones(2, 3)])


def test_unknown_normalize_error_lists_choices():
    with pytest.raises(ValueError, match="'sum', 'mean'.*'max'"):
        li.maxsim_scores([Q1], [D1], normalize="max")


def test_numpy_integer_block_size_is_accepted():
    scores = li.maxsim_scores([Q1, Q2], [D1, D2], block_size=np.int64(1))
    torch.testing.assert_close(scores, _t(RAGGED_SUM))


@pytest.mark.parametrize("block_size", [0, -3, 2.5, True])
def test_bad_block_size_error(block_size):
    with pytest.raises(ValueError, match="block_size must be an integer >= 1"):
        li.maxsim_scores([Q1], [D1], block_size=block_size)


# Pooling example: tokens [3, -1] and [1, 4]
#   mean = [2, 1.5], norm = sqrt(4 + 2.25) = 2.5 -> [0.8, 0.6]
#   max  = [3, 4],   norm = 5                    -> [0.6, 0.8]
POOL_INPUT = [[3.0, -1.0], [1.0, 4.0]]


def test_pool_mean_hand_computed():
    pooled = li.pool_multivector(_t(POOL_INPUT), "mean")
    torch.testing.assert_close(pooled, _t([0.8, 0.6]))


def test_pool_max_hand_computed():
    pooled = li.pool_multivector(_t(POOL_INPUT), strategy="max")
    torch.testing.assert_close(pooled, _t([0.6, 0.8]))


def test_pool_default_is_mean_and_output_is_float32_unit_norm():
    pooled = li.pool_multivector(np.array(POOL_INPUT, dtype=np.float16))
    assert pooled.dtype == torch.float32
    assert pooled.shape == (2,)
    torch.testing.assert_close(pooled, _t([0.8, 0.6]))
    assert math.isclose(pooled.norm().item(), 1.0, rel_tol=1e-6)


def test_pool_zero_vector_stays_finite():
    pooled = li.pool_multivector(torch.zeros(3, 2))
    torch.testing.assert_close(pooled, torch.zeros(2))


def test_pool_multivectors_ragged():
    # second entry: a single token [0, -2] -> mean = max = [0, -1]
    pooled = li.pool_multivectors([_t(POOL_INPUT), _t([[0, -2]])], "max")
    torch.testing.assert_close(pooled, _t([[0.6, 0.8], [0.0, -1.0]]))


def test_pool_unknown_strategy_error_lists_choices():
    with pytest.raises(ValueError, match="'mean', 'max'"):
        li.pool_multivector(_t(POOL_INPUT), "sum")
    with pytest.raises(ValueError, match="'mean', 'max'"):
        li.pool_multivectors([_t(POOL_INPUT)], "median")


def test_pool_empty_errors():
    with pytest.raises(ValueError, match="zero tokens"):
        li.pool_multivector(torch.zeros(0, 4))
    with pytest.raises(ValueError, match="multivectors is empty"):
        li.pool_multivectors([])
    with pytest.raises(ValueError, match="must be 2-D"):
        li.pool_multivector(torch.ones(4))
