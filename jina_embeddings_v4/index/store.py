"""The store interface of the multi-vector index, and what stores share.

A store keeps, per sample id, the page's single vector (float32; float16
in a LanceDB table of int8 multi vectors), its multi
vectors (``[n_tokens, 128]``, in the index's ``multivector_dtype``: float16,
or int8 codes with a float32 scale per token, see
``scoring/quantize.py``) and where its image tokens lie (the
grid of merged 28x28 patches and the offset of the first image token). It
knows nothing of FiftyOne. A store has a handful of methods:

- ``count()``, ``ids()``, ``has(ids)``: what it holds
- ``upsert(rows)``: add or replace :class:`PageRows`
- ``delete(ids)``
- ``fetch(ids, multi=True)``: :class:`PageRows` of the ids it holds
- ``search(query, k, candidates, allowed_ids, reverse)``: the ids and
  MaxSim scores of the best ``k`` (best first; worst first when
  ``reverse``), ranked by exact MaxSim over the single-vector first stage's
  ``candidates`` best (all rows when ``candidates`` is None: then the
  store is read in batches and scored by :func:`stream_maxsim`, so memory
  holds one batch and the ``k`` best)
- ``close()``, ``drop()``
- for hybrid search: ``text_search(terms, limit, allowed_ids)``, the ids
  and lexical scores (BM25 or the engine's equivalent) of the pages that
  hold any of ``terms``, best first; ``update_texts(ids, texts)``

Scores are MaxSim sums over the query's tokens (higher is more similar);
a query of several items scores each page by the mean of their MaxSims.
"""

import importlib
import re
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from ..scoring import flat_maxsim
from ..scoring import late_interaction as li

STORES = ("lancedb", "qdrant")

# Jina v4 multi vectors are 128-d
MULTI_DIM = 128

# pip install lines, named in the ImportError when an engine is missing
PIP_INSTALL = {
    "lancedb": "pip install 'lancedb==0.40.0'",
    "qdrant": "pip install 'qdrant-client==1.20.0'",
}
_ENGINE_MODULES = {"lancedb": "lancedb", "qdrant": "qdrant_client"}

# an exhaustive search reads and scores this many pages at a time, which
# bounds the multi vectors held in memory (256 pages of 1030 tokens: 67 MB
# in float16, 34 MB in int8)
RERANK_CHUNK = 256


@dataclass
class PageRows:
    """Rows of a store, in one order.

    Attributes:
        ids: sample ids
        singles: float32 ``[n, dim]`` single vectors (or None): read
            back as float32 whatever the store holds
        multis: ``[n_tokens_i, 128]`` arrays (or None): written as float
            (float32 or float16); read back as float16 from a float16
            store, as float32 (dequantized) from an int8 store
        grids: ``(rows, cols, offset)`` per page: its image tokens are
            ``multi[offset : offset + rows * cols]`` in row-major order
        texts: the pages' lexical terms joined by spaces
            (:func:`jina_embeddings_v4.scoring.lexical.engine_text`), for
            an index with a text field (None otherwise)
    """

    ids: List[str]
    singles: Optional[np.ndarray] = None
    multis: Optional[list] = None
    grids: Optional[list] = field(default=None)
    texts: Optional[list] = None

    def __len__(self):
        return len(self.ids)


@dataclass
class Query:
    """What the index searches with.

    Attributes:
        singles: float32 ``[n, dim]``: the first stage averages them
        multis: list of float32 ``[n_tokens_i, 128]`` arrays, or None to
            rank by single-vector similarity only (vector queries)
        prompts: the query texts, for text queries
    """

    singles: np.ndarray
    multis: Optional[list] = None
    prompts: Optional[list] = None

    def mean_single(self):
        vector = np.asarray(self.singles, dtype=np.float32).mean(axis=0)
        return vector


def check_store(store):
    """Raises a ValueError naming the valid stores unless ``store`` is one."""
    if store not in STORES:
        raise ValueError(
            "Unknown store %r; choose one of %s"
            % (store, ", ".join(repr(s) for s in STORES))
        )


# LanceDB's table names: ASCII letters, digits, "_", "-", "." (long names
# fail later, as file names); Qdrant's collection names: what its server
# refuses on creation
_LANCEDB_NAME = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,199}$")
_QDRANT_BAD_CHARS = '<>:"/\\|?*\0'


def check_table_name(store, name):
    """Raises a ValueError saying what is accepted unless ``name`` can name
    a LanceDB table (1-200 ASCII letters, digits, ``_``, ``-`` and ``.``,
    not starting with ``.``) or a Qdrant collection (1-255 characters,
    none of ``<>:"/\\|?*``)."""
    if store == "lancedb":
        ok = isinstance(name, str) and bool(_LANCEDB_NAME.match(name))
        accepted = (
            "1-200 ASCII letters, digits, '_', '-' and '.', not starting "
            "with '.'"
        )
    else:
        ok = (
            isinstance(name, str)
            and 0 < len(name) <= 255
            and name not in (".", "..")
            and not any(c in name for c in _QDRANT_BAD_CHARS)
        )
        accepted = "1-255 characters, none of <>:\"/\\|?* "
    if not ok:
        raise ValueError(
            "Invalid table_name %r for the %s store: use %s"
            % (name, store, accepted)
        )


def dtype_mismatch(where, stored, wanted):
    """The ValueError of a write in ``wanted`` multi vectors to a table or
    collection that holds ``stored`` ones."""
    return ValueError(
        "The %s holds %s multi vectors, but this index writes %s: use "
        "multivector_dtype=%r (as it was built) for this table, or build "
        "the index again under another brain key or table_name to store "
        "%s" % (where, stored, wanted, stored, wanted)
    )


def import_engine(store):
    """Imports the engine's client package, or raises an ImportError that
    names the pip command to install it."""
    check_store(store)
    try:
        return importlib.import_module(_ENGINE_MODULES[store])
    except ImportError as e:
        raise ImportError(
            "The %r store of the jina_multivector index needs the %s "
            "package, which is not installed. Run: %s"
            % (store, _ENGINE_MODULES[store], PIP_INSTALL[store])
        ) from e


def maxsim_rank(query, rows, k, reverse=False):
    """Ranks ``rows`` (with multi vectors) by exact MaxSim to ``query``.

    Args:
        query: a :class:`Query` with multi vectors
        rows: :class:`PageRows` with ``multis``
        k: how many to return, or None for all
        reverse (False): worst first

    Returns:
        ``(ids, scores)``: lists, best first (worst first when reversed)
    """
    if not len(rows):
        return [], []

    scores = maxsim_scores(query, rows.multis)
    return top_k(rows.ids, scores, k, reverse)


def maxsim_scores(query, multis):
    """Mean over the query's items of their MaxSim sums, per page."""
    per_query = li.maxsim_scores(query.multis, multis, normalize="sum")
    return per_query.mean(dim=0).numpy()


def single_scores(query, singles):
    """Dot products of the mean query vector with each single vector."""
    return np.asarray(singles, dtype=np.float32) @ query.mean_single()


def top_k(ids, scores, k, reverse=False):
    """The ``k`` best ``(ids, scores)`` (all when ``k`` is None); ties keep
    the input order."""
    scores = np.asarray(scores, dtype=np.float32)
    order = np.argsort(scores if reverse else -scores, kind="stable")
    if k is not None:
        order = order[:k]

    return [ids[i] for i in order], [float(scores[i]) for i in order]


class RunningTopK(object):
    """The best ``k`` of ``(id, score)`` pairs fed batch by batch (all of
    them when ``k`` is None), so an exhaustive search holds one batch and
    ``k`` results at a time; ties keep the order fed."""

    def __init__(self, k, reverse=False):
        self.k = k
        self.reverse = reverse
        self._ids = []
        self._scores = np.zeros(0, dtype=np.float32)

    def add(self, ids, scores):
        ids = self._ids + list(ids)
        scores = np.concatenate(
            [self._scores, np.asarray(scores, dtype=np.float32)]
        )
        order = np.argsort(scores if self.reverse else -scores, kind="stable")
        if self.k is not None:
            order = order[: self.k]
        self._ids = [ids[i] for i in order]
        self._scores = scores[order]

    def result(self):
        """``(ids, scores)``: lists, best first (worst first when
        reversed)."""
        return list(self._ids), [float(s) for s in self._scores]


def stream_maxsim(query, batches, k, reverse=False):
    """Exhaustive MaxSim over a store read in batches.

    Args:
        query: a :class:`Query` with multi vectors
        batches: iterable of ``(ids, tokens, offsets, scales)``: a batch's
            pages end to end, as :func:`flat_maxsim.maxsim_flat` takes them
        k: how many to return, or None for all
        reverse (False): worst first

    Returns:
        ``(ids, scores)``: lists, best first (worst first when reversed)
    """
    best = RunningTopK(k, reverse)
    for ids, tokens, offsets, scales in batches:
        if len(ids):
            per_item = flat_maxsim.maxsim_flat(
                query.multis, tokens, offsets, scales
            )
            best.add(ids, per_item.mean(axis=0))
    return best.result()
