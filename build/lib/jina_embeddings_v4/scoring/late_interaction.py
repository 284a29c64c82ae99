"""Late-interaction (ColBERT-style MaxSim) scoring and multi-vector pooling.

Jina Embeddings v4 can emit one embedding per token ("multi-vector" output).
Two multi-vectors are compared with MaxSim: every query token is matched to
its most similar document token and those best matches are summed. This
module holds the tensor maths for that, kept free of any model or FiftyOne
code so it can be tested and benchmarked on its own.

Only ``torch`` is required. NumPy arrays are accepted wherever tensors are,
because they are converted with :func:`torch.as_tensor`.
"""

import math
from typing import Any, List, Sequence, Tuple, Union

import torch

from ..options import POOLING_STRATEGIES as POOLING_CHOICES

NORMALIZE_CHOICES = ("sum", "mean")

# Documents scored per block. 16 documents of 800 tokens at 128-d are only
# ~6.5 MB once upcast to float32, so memory is bounded by the block rather
# than the corpus, and on CPU the small similarity tiles stay cache- and
# allocator-friendly, which measured faster than larger blocks.
DEFAULT_BLOCK_SIZE = 16

# Cap on float32 elements in one similarity tile (2**22 -> 16 MiB). When a
# document block is long or there are many query tokens, the queries are
# processed in chunks so that this cap, not the query count, bounds memory.
# Tiles below glibc's mmap threshold are reused instead of page-faulted in
# afresh for every block.
_MAX_BLOCK_ELEMENTS = 2**22

# Avoids division by zero when L2-normalising an all-zero pooled vector.
_NORM_EPS = 1e-12

ArrayLike = Union[torch.Tensor, Any]
DeviceLike = Union[str, torch.device, None]


def maxsim_scores(
    queries: Sequence[ArrayLike],
    documents: Sequence[ArrayLike],
    normalize: str = "sum",
    block_size: int = DEFAULT_BLOCK_SIZE,
    device: DeviceLike = None,
) -> torch.Tensor:
    """Computes exact late-interaction (MaxSim) scores for all pairs.

    For a query ``q`` with tokens ``q_i`` and a document ``d`` with tokens
    ``d_j`` the score is ``sum_i max_j <q_i, d_j>``. With
    ``normalize="mean"`` it is divided by the number of query tokens, which
    makes scores of queries of different lengths comparable.

    Documents are scored in blocks of ``block_size`` documents, each padded
    to the longest document of its block. Padded slots are masked with
    ``-inf`` so they can never be a maximum, and padded query tokens are
    excluded from the sum, so the result equals a per-pair computation.
    Peak temporary memory is bounded by the block, not the corpus.

    Args:
        queries: sequence of query multi-vectors, each a 2-D tensor or array
            of shape ``[n_tokens_i, dim]``. Token counts may differ.
        documents: sequence of document multi-vectors, each of shape
            ``[n_tokens_j, dim]``, with the same ``dim`` as the queries.
        normalize: ``"sum"`` for the plain MaxSim sum, or ``"mean"`` to
            divide each query's scores by its token count.
        block_size: number of documents scored at once. Lower it to save
            memory, raise it for slightly better throughput.
        device: device to compute on, e.g. ``"cuda"``. Defaults to the device
            of the first query. The result is always returned on the CPU.

    Returns:
        A float32 CPU tensor of shape ``[len(queries), len(documents)]``,
        in input order.

    Raises:
        ValueError: if either input is empty, a multi-vector is not 2-D or
            has no tokens, the embedding dimensions disagree, ``normalize``
            is unknown, or ``block_size`` is smaller than 1.
    """
    if normalize not in NORMALIZE_CHOICES:
        raise ValueError(
            "normalize must be one of %s; got %r"
            % (", ".join(repr(c) for c in NORMALIZE_CHOICES), normalize)
        )
    # __index__ accepts NumPy integers too, but not floats or bools.
    if isinstance(block_size, bool) or not hasattr(block_size, "__index__"):
        raise ValueError(
            "block_size must be an integer >= 1; got %r" % (block_size,)
        )
    block_size = block_size.__index__()
    if block_size < 1:
        raise ValueError(
            "block_size must be an integer >= 1; got %r" % (block_size,)
        )

    query_list = _as_multivectors(queries, "queries", "query")
    doc_list = _as_multivectors(documents, "documents", "document")
    query_dim = query_list[0].shape[1]
    doc_dim = doc_list[0].shape[1]
    if query_dim != doc_dim:
        raise ValueError(
            "dimension mismatch: queries have dim %d but documents have "
            "dim %d" % (query_dim, doc_dim)
        )

    if device is None:
        device = query_list[0].device
    device = torch.device(device)

    n_queries = len(query_list)
    n_docs = len(doc_list)
    scores = torch.empty((n_queries, n_docs), dtype=torch.float32)

    # Inference only: autograd bookkeeping would keep every block alive.
    with torch.no_grad():
        query_order, query_pad, query_mask, query_lens = _pad_sorted(
            query_list, device
        )
        doc_lens = torch.tensor([d.shape[0] for d in doc_list])
        # Longest first, so each block holds similar lengths and wastes
        # little padding; the stable sort keeps ties in input order.
        doc_order = torch.argsort(doc_lens, descending=True, stable=True)

        for start in range(0, n_docs, block_size):
            block_idx = doc_order[start : start + block_size]
            block = [doc_list[i] for i in block_idx.tolist()]
            block_scores = _score_doc_block(
                query_pad, query_mask, query_lens, block, device
            )
            scores[query_order.unsqueeze(1), block_idx.unsqueeze(0)] = (
                block_scores.to("cpu", torch.float32)
            )

    if normalize == "mean":
        counts = torch.tensor(
            [q.shape[0] for q in query_list], dtype=torch.float32
        )
        scores /= counts.unsqueeze(1)
    return scores


def pool_multivector(
    vectors: ArrayLike, strategy: str = "mean"
) -> torch.Tensor:
    """Pools one multi-vector into a single L2-normalised vector.

    Useful where a single embedding is needed (nearest-neighbour indexes,
    UMAP plots) but only the multi-vector output is at hand.

    Args:
        vectors: tensor or array of shape ``[n_tokens, dim]``.
        strategy: ``"mean"`` averages the tokens, ``"max"`` takes the
            elementwise maximum over tokens.

    Returns:
        A float32 tensor of shape ``[dim]`` with unit L2 norm (or all zeros
        if the pooled vector is zero), on the input's device.

    Raises:
        ValueError: if ``strategy`` is unknown or ``vectors`` is not a
            non-empty 2-D multi-vector.
    """
    _check_strategy(strategy)
    tensor = _as_multivector(vectors, "multi-vector")
    return _pool(tensor, strategy)


def pool_multivectors(
    multivectors: Sequence[ArrayLike], strategy: str = "mean"
) -> torch.Tensor:
    """Pools each of several multi-vectors, see :func:`pool_multivector`.

    Args:
        multivectors: sequence of ``[n_tokens_i, dim]`` tensors or arrays
            sharing the same ``dim``. Token counts may differ.
        strategy: ``"mean"`` or ``"max"``.

    Returns:
        A float32 tensor of shape ``[len(multivectors), dim]`` whose rows are
        L2-normalised, on the device of the first multi-vector.

    Raises:
        ValueError: if ``strategy`` is unknown, the sequence is empty, any
            entry is not a non-empty 2-D multi-vector, or dims disagree.
    """
    _check_strategy(strategy)
    tensors = _as_multivectors(multivectors, "multivectors", "multi-vector")
    device = tensors[0].device
    return torch.stack([_pool(t, strategy).to(device) for t in tensors])


def _check_strategy(strategy: str) -> None:
    if strategy not in POOLING_CHOICES:
        raise ValueError(
            "strategy must be one of %s; got %r"
            % (", ".join(repr(c) for c in POOLING_CHOICES), strategy)
        )


def _pool(tensor: torch.Tensor, strategy: str) -> torch.Tensor:
    tensor = tensor.to(torch.float32)
    if strategy == "mean":
        pooled = tensor.mean(dim=0)
    else:
        pooled = tensor.amax(dim=0)
    norm = torch.linalg.vector_norm(pooled).clamp_min(_NORM_EPS)
    return pooled / norm


def _as_multivector(value: ArrayLike, label: str) -> torch.Tensor:
    if getattr(value, "flags", None) is not None and not value.flags.writeable:
        # read-only arrays (e.g. views of Arrow buffers) are only read
        # here, but torch warns about them; a copy is cheap next to MaxSim
        value = value.copy()
    tensor = torch.as_tensor(value)
    if tensor.ndim != 2:
        raise ValueError(
            "%s must be 2-D [n_tokens, dim]; got shape %s"
            % (label, tuple(tensor.shape))
        )
    if tensor.shape[0] == 0:
        raise ValueError(
            "%s has zero tokens; each multi-vector needs at least one" % label
        )
    if tensor.shape[1] == 0:
        raise ValueError("%s has zero embedding dimensions" % label)
    return tensor


def _as_multivectors(
    values: Sequence[ArrayLike], name: str, item: str
) -> List[torch.Tensor]:
    if values is None:
        raise ValueError("%s is None; expected a sequence" % name)
    # A plain list keeps indexing cheap and accepts generators too.
    values = list(values)
    if not values:
        raise ValueError(
            "%s is empty; expected at least one %s" % (name, item)
        )
    tensors = [
        _as_multivector(v, "%s %d" % (item, i)) for i, v in enumerate(values)
    ]
    dim = tensors[0].shape[1]
    for i, t in enumerate(tensors):
        if t.shape[1] != dim:
            raise ValueError(
                "dimension mismatch within %s: %s 0 has dim %d but %s %d "
                "has dim %d" % (name, item, dim, item, i, t.shape[1])
            )
    return tensors


def _pad_sorted(
    tensors: List[torch.Tensor], device: torch.device
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stacks multi-vectors longest first into a zero-padded float32 batch.

    Sorting lets a chunk of consecutive rows be trimmed to the length of its
    first row, so query chunks carry almost no padding.

    Returns:
        ``(order, padded, mask, lengths)`` where ``padded[k]`` is
        ``tensors[order[k]]``, ``mask`` marks real tokens and ``lengths``
        is a CPU tensor of token counts in sorted order.
    """
    lengths = torch.tensor([t.shape[0] for t in tensors])
    order = torch.argsort(lengths, descending=True, stable=True)
    lengths = lengths[order]
    max_len = int(lengths[0])
    dim = tensors[0].shape[1]
    padded = torch.zeros(
        (len(tensors), max_len, dim), dtype=torch.float32, device=device
    )
    for row, idx in enumerate(order.tolist()):
        # copy_ upcasts half precision and moves across devices in one go.
        padded[row, : tensors[idx].shape[0]].copy_(tensors[idx])
    positions = torch.arange(max_len, device=device)
    mask = positions.unsqueeze(0) < lengths.to(device).unsqueeze(1)
    return order, padded, mask, lengths


def _score_doc_block(
    query_pad: torch.Tensor,
    query_mask: torch.Tensor,
    query_lens: torch.Tensor,
    block: List[torch.Tensor],
    device: torch.device,
) -> torch.Tensor:
    """Scores all (length-sorted) queries against one block of documents.

    Returns:
        Unnormalised MaxSim sums of shape ``[n_queries, len(block)]`` in the
        sorted query order and the block's document order.
    """
    block_lens = [d.shape[0] for d in block]
    doc_len = max(block_lens)
    n_block = len(block)
    dim = query_pad.shape[2]
    doc_pad = torch.zeros(
        (n_block, doc_len, dim), dtype=torch.float32, device=device
    )
    for row, doc in enumerate(block):
        doc_pad[row, : doc.shape[0]].copy_(doc)
    doc_flat = doc_pad.view(n_block * doc_len, dim)
    has_padding = min(block_lens) != doc_len
    if has_padding:
        lens = torch.tensor(block_lens, device=device).unsqueeze(1)
        positions = torch.arange(doc_len, device=device).unsqueeze(0)
        doc_pad_mask = positions >= lens

    n_queries, max_q_len = query_pad.shape[:2]
    per_query = max_q_len * n_block * doc_len
    chunk = max(1, _MAX_BLOCK_ELEMENTS // per_query)
    out = torch.empty((n_queries, n_block), dtype=torch.float32, device=device)
    for q_start in range(0, n_queries, chunk):
        q_stop = min(q_start + chunk, n_queries)
        # Queries are sorted longest first, so the chunk's first query
        # fixes how much of the padded width this chunk really needs.
        q_len = int(query_lens[q_start])
        q = query_pad[q_start:q_stop, :q_len]
        n_q = q.shape[0]
        # One flat matmul is the fastest way to get every token pair:
        # [n_q * q_len, dim] x [dim, n_block * doc_len].
        sim = torch.matmul(q.reshape(n_q * q_len, dim), doc_flat.T)
        sim = sim.view(n_q * q_len, n_block, doc_len)
        if has_padding:
            # -inf rather than 0: when every real similarity of a query
            # token is negative, a zero in a padded slot would win the max.
            sim.masked_fill_(doc_pad_mask.unsqueeze(0), -math.inf)
        best = sim.amax(dim=2).view(n_q, q_len, n_block)
        del sim
        # Padded query tokens have a finite max (0) against real document
        # tokens, so zeroing them removes their contribution exactly.
        best = best * query_mask[q_start:q_stop, :q_len].unsqueeze(2)
        out[q_start:q_stop] = best.sum(dim=1)
    return out
