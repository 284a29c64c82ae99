"""The token budgets of forward passes, by hand."""

import pytest

from jina_embeddings_v4.model import batching


def test_cpu_budget_caps_whatever_the_caller_asks():
    assert batching.CPU_MAX_BATCH_TOKENS == 1024
    assert batching.device_batch_tokens(65536, "cpu") == 1024
    assert batching.device_batch_tokens(None, "cpu") == 1024
    assert batching.device_batch_tokens(512, "cpu") == 512
    assert batching.device_batch_tokens(65536, "cpu", 2048) == 2048
    assert batching.device_batch_tokens(65536, "cpu", None) == 65536
    assert batching.device_batch_tokens(None, "cpu", None) is None


def test_other_devices_keep_the_callers_budget():
    assert batching.device_batch_tokens(65536, "cuda") == 65536
    assert batching.device_batch_tokens(None, "cuda") is None
    assert batching.device_batch_tokens(300, "mps", 1024) == 300


def test_full_pages_go_one_by_one_on_a_cpu_small_ones_together():
    budget = batching.device_batch_tokens(65536, "cpu")
    # eight full pages (784 tokens each): one per pass
    assert batching.plan_batches([784] * 8, 8, budget) == [[i] for i in range(8)]
    # eight 200-token pages: five fit in 1024 padded tokens
    assert batching.plan_batches([200] * 8, 8, budget) == [
        [0, 1, 2, 3, 4],
        [5, 6, 7],
    ]
    # longest first; a batch is padded to its first (longest) item
    assert batching.plan_batches([100, 600, 300, 400], 8, budget) == [
        [1],
        [3, 2],
        [0],
    ]


def test_bad_cpu_budget_is_named():
    with pytest.raises(ValueError, match="cpu_max_batch_tokens"):
        batching.validate_cpu_max_batch_tokens(0)
    batching.validate_cpu_max_batch_tokens(None)
