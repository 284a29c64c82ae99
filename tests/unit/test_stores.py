"""The two stores of the multi-vector index, on the real engines.

LanceDB embedded and qdrant-client's local mode, each with float16 and
int8 multi vectors, with random pages whose exact MaxSim ranking (over the
values the store holds) is computed here one pair at a time.
"""

import os

import numpy as np
import pytest

from jina_embeddings_v4.index import lancedb_store
from jina_embeddings_v4.index import store as st
from jina_embeddings_v4.index.lancedb_store import LanceDBStore
from jina_embeddings_v4.index.qdrant_store import QdrantStore, point_id
from jina_embeddings_v4.scoring import quantize

N = 40
DIM = 32


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def pages():
    rng = np.random.default_rng(0)
    ids = ["%024x" % (0xABC000 + i) for i in range(N)]
    singles = _unit(rng.normal(size=(N, DIM))).astype(np.float32)
    multis = [
        _unit(rng.normal(size=(int(rng.integers(5, 30)), 128))).astype(
            np.float16
        )
        for _ in range(N)
    ]
    grids = [(2, 2, 1)] * N
    return st.PageRows(ids=ids, singles=singles, multis=multis, grids=grids)


def _query(seed, n_items=1):
    rng = np.random.default_rng(seed)
    return st.Query(
        singles=_unit(rng.normal(size=(n_items, DIM))).astype(np.float32),
        multis=[
            _unit(rng.normal(size=(6, 128))).astype(np.float32)
            for _ in range(n_items)
        ],
    )


def _held(dtype, multi):
    """The values a store of ``dtype`` holds for ``multi``."""
    if dtype == "int8":
        return quantize.dequantize_int8(*quantize.quantize_int8(multi))
    return np.asarray(multi, np.float16)


def _brute_force(pages, query, ids=None, dtype="float16"):
    """MaxSim one pair at a time, mean over the query items."""
    out = {}
    for sample_id, multi in zip(pages.ids, pages.multis):
        if ids is not None and sample_id not in ids:
            continue
        page = _held(dtype, multi).astype(np.float32)
        out[sample_id] = float(
            np.mean([(q @ page.T).max(axis=1).sum() for q in query.multis])
        )
    return out


def _single_rounding(store):
    """The single vectors' type in ``store``, and so the query's in its
    first stage: LanceDB keeps an int8 index's single vectors in float16
    and rounds the query to the column's type."""
    if isinstance(store, LanceDBStore) and store.multivector_dtype == "int8":
        return np.float16
    return np.float32


def _held_singles(store, singles):
    """The values ``store`` holds for ``singles``, as float32."""
    return np.asarray(singles, _single_rounding(store)).astype(np.float32)


def _first_stage_dots(store, pages, query):
    vector = _held_singles(store, query.mean_single())
    return _held_singles(store, pages.singles) @ vector


def _first_stage(store, pages, query, n, reverse=False, ids=None):
    dots = _first_stage_dots(store, pages, query)
    order = np.argsort(dots if reverse else -dots, kind="stable")
    chosen = [pages.ids[i] for i in order if ids is None or pages.ids[i] in ids]
    return set(chosen[:n])


def _open(engine, tmp_path, dtype):
    if engine == "lancedb":
        return LanceDBStore(
            str(tmp_path / "lance"), "pages", multivector_dtype=dtype
        )
    return QdrantStore(
        "pages", path=str(tmp_path / "qdrant"), multivector_dtype=dtype
    )


@pytest.fixture(
    params=[
        ("lancedb", "float16"),
        ("lancedb", "int8"),
        ("qdrant", "float16"),
        ("qdrant", "int8"),
    ],
    ids=lambda p: "-".join(p),
)
def store(request, pages, tmp_path):
    s = _open(request.param[0], tmp_path, request.param[1])
    s.upsert(pages)
    s.finalize()
    yield s
    s.close()


def _assert_ranking(got_ids, got_scores, expected, k, reverse=False):
    ranked = sorted(expected, key=lambda i: expected[i], reverse=not reverse)
    assert got_ids == ranked[:k]
    assert np.allclose(got_scores, [expected[i] for i in got_ids], atol=1e-4)


def test_holds_what_was_written(store, pages):
    assert store.count() == N
    assert sorted(store.ids()) == sorted(pages.ids)
    assert store.has(pages.ids[:3] + ["%024x" % 1]) == set(pages.ids[:3])


def test_fetch_returns_rows_in_the_order_asked(store, pages):
    ids = [pages.ids[7], "%024x" % 1, pages.ids[2]]
    rows = store.fetch(ids)
    assert rows.ids == [pages.ids[7], pages.ids[2]]
    assert rows.singles.dtype == np.float32
    assert np.array_equal(rows.singles[0], _held_singles(store, pages.singles[7]))
    dtype = store.multivector_dtype
    assert store.stored_dtype() == dtype
    assert rows.multis[1].dtype == (
        np.float16 if dtype == "float16" else np.float32
    )
    assert np.array_equal(rows.multis[1], _held(dtype, pages.multis[2]))
    assert [tuple(g) for g in rows.grids] == [(2, 2, 1), (2, 2, 1)]


def test_exhaustive_search_is_exact_maxsim(store, pages, monkeypatch):
    dtype = store.multivector_dtype
    query = _query(1)
    ids, scores = store.search(query, k=7)
    _assert_ranking(ids, scores, _brute_force(pages, query, dtype=dtype), 7)
    all_ids, _ = store.search(query, k=None)
    assert len(all_ids) == N
    # read in batches of 7 pages: the same top k, kept as it streams
    monkeypatch.setattr(st, "RERANK_CHUNK", 7)
    both = _query(7, n_items=2)
    expected = _brute_force(pages, both, dtype=dtype)
    ids, scores = store.search(both, k=9)
    _assert_ranking(ids, scores, expected, 9)
    ids, scores = store.search(both, k=5, reverse=True)
    _assert_ranking(ids, scores, expected, 5, reverse=True)


def test_two_stage_search_ranks_the_first_stage_candidates(store, pages):
    query = _query(2)
    candidates = _first_stage(store, pages, query, 12)
    ids, scores = store.search(query, k=5, candidates=12)
    expected = _brute_force(
        pages, query, candidates, dtype=store.multivector_dtype
    )
    _assert_ranking(ids, scores, expected, 5)


def test_within_allowed_ids_reverse_and_several_queries(store, pages):
    dtype = store.multivector_dtype
    allowed = set(pages.ids[::2])
    query = _query(3)
    ids, scores = store.search(query, k=4, allowed_ids=allowed)
    expected = _brute_force(pages, query, allowed, dtype=dtype)
    _assert_ranking(ids, scores, expected, 4)

    ids, scores = store.search(query, k=4, reverse=True)
    expected = _brute_force(pages, query, dtype=dtype)
    _assert_ranking(ids, scores, expected, 4, reverse=True)

    both = _query(4, n_items=2)
    candidates = _first_stage(store, pages, both, 15)
    ids, scores = store.search(both, k=3, candidates=15)
    expected = _brute_force(pages, both, candidates, dtype=dtype)
    _assert_ranking(ids, scores, expected, 3)

    assert store.search(query, k=3, allowed_ids=set()) == ([], [])


def test_vector_queries_rank_by_single_vectors(store, pages):
    query = _query(5)
    query.multis = None
    ids, scores = store.search(query, k=5)
    dots = _first_stage_dots(store, pages, query)
    order = np.argsort(-dots)[:5]
    assert ids == [pages.ids[i] for i in order]
    assert np.allclose(scores, dots[order], atol=1e-5)


def test_upsert_replaces_and_delete_removes(store, pages):
    replaced = st.PageRows(
        ids=[pages.ids[0]],
        singles=pages.singles[1:2],
        multis=[pages.multis[1]],
        grids=[(1, 3, 2)],
    )
    store.upsert(replaced)
    assert store.count() == N
    row = store.fetch([pages.ids[0]])
    held = _held(store.multivector_dtype, pages.multis[1])
    assert np.array_equal(row.multis[0], held)
    assert tuple(row.grids[0]) == (1, 3, 2)

    store.delete(pages.ids[:5])
    assert store.count() == N - 5
    assert not store.has(pages.ids[:5])
    store.drop()
    assert store.count() == 0 and store.ids() == []


def test_point_ids_are_reversible_uuids():
    assert point_id("0123456789abcdef01234567") == (
        "01234567-89ab-cdef-0123-456700000000"
    )


def test_qdrant_local_mode_is_released_between_calls(pages, tmp_path):
    a = QdrantStore("pages", path=str(tmp_path / "shared"))
    b = QdrantStore("pages", path=str(tmp_path / "shared"))
    a.upsert(pages)
    # a second client on the same folder works once a's call is over
    assert b.count() == N
    assert a.search(_query(6), k=2)[0] == b.search(_query(6), k=2)[0]


def test_unknown_store_and_bad_qdrant_arguments():
    with pytest.raises(ValueError, match="'lancedb', 'qdrant'"):
        st.check_store("milvus")
    with pytest.raises(ValueError, match="exactly one of url="):
        QdrantStore("x")


@pytest.mark.parametrize("engine", ["lancedb", "qdrant"])
def test_a_write_in_the_other_dtype_is_refused(engine, pages, tmp_path):
    _open(engine, tmp_path, "float16").upsert(pages)
    other = _open(engine, tmp_path, "int8")
    assert other.stored_dtype() == "float16"
    with pytest.raises(
        ValueError, match="holds float16.*multivector_dtype='float16'"
    ):
        other.upsert(pages)
    # reads follow the table, whatever the store was opened with
    ids, _ = other.search(_query(8), k=3)
    assert ids == _open(engine, tmp_path, "float16").search(_query(8), k=3)[0]
    with pytest.raises(ValueError, match="'float16', 'int8'"):
        _open(engine, tmp_path, "int4")


def _folder_bytes(path):
    return sum(
        os.path.getsize(os.path.join(root, f))
        for root, _, files in os.walk(path)
        for f in files
    )


def test_int8_pages_take_about_half_the_bytes_on_disk(tmp_path):
    rng = np.random.default_rng(9)
    # Jina v4's 2048-d single vectors: float16 in an int8 table
    n, tokens, single_dim = 30, 300, 2048
    rows = st.PageRows(
        ids=["%024x" % (0xDEF000 + i) for i in range(n)],
        singles=_unit(rng.normal(size=(n, single_dim))).astype(np.float32),
        multis=[
            _unit(rng.normal(size=(tokens, 128))).astype(np.float32)
            for _ in range(n)
        ],
        grids=[(2, 2, 1)] * n,
    )
    sizes = {}
    for dtype in quantize.MULTIVECTOR_DTYPES:
        s = LanceDBStore(str(tmp_path / dtype), "pages", multivector_dtype=dtype)
        s.upsert(rows)
        s.finalize()
        sizes[dtype] = _folder_bytes(str(tmp_path / dtype))
    # float16: 256 bytes a token and 8 KB of float32 single vector; int8:
    # 128 + a 4-byte scale, and 4 KB of float16 single vector
    assert sizes["float16"] / n > 256 * tokens + 4 * single_dim
    assert sizes["int8"] <= 0.55 * sizes["float16"]


def test_single_vectors_are_float16_in_int8_tables_only(pages, tmp_path):
    for dtype, single in (("float16", "float32"), ("int8", "float16")):
        s = LanceDBStore(str(tmp_path / dtype), "pages", multivector_dtype=dtype)
        assert s.stored_single_dtype() is None
        s.upsert(pages)
        assert s.stored_single_dtype() == single
        assert lancedb_store.SINGLE_DTYPES[dtype] == single


def test_an_int8_table_with_float32_singles_keeps_them(
    pages, tmp_path, monkeypatch
):
    # as int8 tables were made before their single vectors were float16
    monkeypatch.setitem(lancedb_store.SINGLE_DTYPES, "int8", "float32")
    old = LanceDBStore(str(tmp_path), "pages", multivector_dtype="int8")
    old.upsert(st.PageRows(
        ids=pages.ids[:20],
        singles=pages.singles[:20],
        multis=pages.multis[:20],
        grids=pages.grids[:20],
    ))
    monkeypatch.undo()

    s = LanceDBStore(str(tmp_path), "pages", multivector_dtype="int8")
    assert s.stored_dtype() == "int8"
    assert s.stored_single_dtype() == "float32"
    s.upsert(pages)
    s.finalize()
    assert s.count() == N
    assert s.stored_single_dtype() == "float32"
    rows = s.fetch(pages.ids)
    assert np.array_equal(rows.singles, pages.singles)
    query = _query(10)
    ids, scores = s.search(query, k=5, candidates=12)
    candidates = _first_stage(None, pages, query, 12)
    _assert_ranking(
        ids, scores, _brute_force(pages, query, candidates, dtype="int8"), 5
    )


def test_int8_tables_index_their_float16_single_vectors(
    pages, tmp_path, monkeypatch
):
    monkeypatch.setattr(lancedb_store, "ANN_MIN_ROWS", N)
    s = LanceDBStore(str(tmp_path), "pages", multivector_dtype="int8")
    s.upsert(pages)
    s.finalize()
    indexed = {tuple(i.columns) for i in s.table.list_indices()}
    assert ("vector",) in indexed
    assert s.stored_single_dtype() == "float16"
    # the IVF index probes half its 16 partitions: a page's own single
    # vector finds the page
    for i in (3, 17, 31):
        query = st.Query(singles=pages.singles[i : i + 1], multis=None)
        ids, scores = s.search(query, k=1)
        assert ids == [pages.ids[i]]
        assert abs(scores[0] - 1.0) < 1e-3
    ids, scores = s.search(_query(11), k=6)
    _assert_ranking(ids, scores, _brute_force(pages, _query(11), dtype="int8"), 6)
