"""multivector_dtype="int8": the jina_multivector index with int8 multi
vectors, through real FiftyOne, on both stores and the tiny checkpoint.

Exhaustive search (``oversample=None``) must rank the pages as exact
MaxSim over the encoder's float32 vectors does, and the dtype must travel
with the run: a fresh process reads the int8 index as int8, and a write
in float16 to it is refused with the fix in the message. In LanceDB the
single vectors of an int8 index are float16 too.
"""

import os
import shutil

import numpy as np
import pytest

from conftest import (
    MODEL_NAME,
    new_dataset,
    ranking,
    run_python,
    store_kwargs,
)

from jina_embeddings_v4.testing import documents

import fiftyone.brain as fob  # noqa: E402
import fiftyone.zoo as foz  # noqa: E402

N = 12
KWARGS = {"task": "retrieval", "dtype": "float32"}
QUERIES = ["invoice total due 2024", "shipping address and phone"]


@pytest.fixture(scope="module")
def model(zoo_source):
    return foz.load_zoo_model(MODEL_NAME, **KWARGS)


@pytest.fixture(scope="module")
def pages(tmp_root):
    return documents.write_dataset_images(
        os.path.join(tmp_root, "dtype-pages"), n=N, seed=22, scale=0.4
    )


@pytest.fixture(scope="module", params=["lancedb", "qdrant"])
def built(request, pages, model, tmp_root):
    store = request.param
    folder = os.path.join(tmp_root, "dtype-" + store)
    shutil.rmtree(folder, ignore_errors=True)
    ds = new_dataset(pages, "jina-dtype-" + store)
    index = fob.compute_similarity(
        ds,
        model=MODEL_NAME,
        model_kwargs=KWARGS,
        backend="jina_multivector",
        brain_key="i8",
        oversample=None,
        multivector_dtype="int8",
        batch_size=4,
        **store_kwargs(store, folder),
    )
    yield ds, index
    ds.delete()


def _float32_scores(model, ds, text):
    """Exact MaxSim of the query over each page's float32 multi vectors."""
    query = model.encoder.encode_texts(
        [text],
        task="retrieval",
        prompt_name="query",
        return_single=False,
        return_multi=True,
    ).multi[0]
    out = {}
    for sample_id, path in zip(*ds.values(["id", "filepath"])):
        page = model.encoder.encode_images(
            [path], task="retrieval", return_single=False, return_multi=True
        ).multi[0]
        out[sample_id] = float((query @ page.T).max(axis=1).sum())
    return out


def test_int8_ranks_as_float32_exhaustive_maxsim(built, model):
    ds, index = built
    assert index.config.multivector_dtype == "int8"
    assert index.store.stored_dtype() == "int8"
    for text in QUERIES:
        scores = _float32_scores(model, ds, text)
        view = ds.sort_by_similarity(
            text, k=None, brain_key="i8", dist_field="maxsim"
        )
        assert view.values("id") == ranking(scores)
        got = dict(zip(*view.values(["id", "maxsim"])))
        # a query of ~10 tokens, each off by at most half a step per entry
        errors = [abs(got[i] - scores[i]) for i in scores]
        assert max(errors) < 0.05
        least = index.sort_by_similarity(text, k=3, reverse=True)
        assert least.values("id") == ranking(scores, reverse=True)[:3]

    # stored multi vectors come back dequantized, close to float32
    first = ds.first()
    rows = index.get_multivectors([first.id])
    page = model.encoder.encode_images(
        [first.filepath], task="retrieval", return_single=False,
        return_multi=True,
    ).multi[0]
    assert rows.multis[0].dtype == np.float32
    assert np.abs(rows.multis[0] - page).max() <= 0.5 / 127 + 1e-6


def test_single_vectors_are_float16_in_an_int8_lancedb_table(built, model):
    ds, index = built
    first = ds.first()
    single = model.encoder.encode_images(
        [first.filepath], task="retrieval", return_multi=False
    ).single[0]
    vectors, ids, _ = index.get_embeddings(sample_ids=[first.id])
    assert list(ids) == [first.id] and vectors.dtype == np.float32
    if index.config.store == "qdrant":
        # qdrant-client's local mode keeps float32 whatever the datatype
        assert index.store.stored_dtype() == "int8"
        assert np.allclose(vectors[0], single, atol=1e-5)
        return

    vector = index.store.table.schema.field("vector").type
    assert str(vector.value_type) == "halffloat"
    assert vector.list_size == single.shape[0]
    assert index.store.stored_single_dtype() == "float16"
    # float16 values, the encoder's up to float16 rounding
    got = vectors[0]
    assert np.array_equal(got.astype(np.float16).astype(np.float32), got)
    assert np.allclose(got, single, rtol=2.0**-11, atol=1e-5)


def test_the_dtype_travels_with_the_run(built):
    ds, index = built
    expected = ds.sort_by_similarity(QUERIES[0], k=5, brain_key="i8")
    script = """
        import fiftyone as fo
        ds = fo.load_dataset(%r)
        results = ds.load_brain_results("i8")
        print("DTYPE", results.config.multivector_dtype,
              results.store.stored_dtype())
        view = ds.sort_by_similarity(%r, k=5, brain_key="i8")
        print("IDS", ",".join(view.values("id")))
    """ % (ds.name, QUERIES[0])
    out = run_python(script)
    assert "DTYPE int8 int8" in out
    ids = out.split("IDS ")[1].split()[0].split(",")
    assert ids == expected.values("id")


def test_a_float16_write_to_an_int8_index_is_refused(built):
    ds, index = built
    config = index.config
    config.multivector_dtype = "float16"
    index._store = None
    try:
        with pytest.raises(
            ValueError,
            match="holds int8 multi vectors, but this index writes float16: "
            "use multivector_dtype='int8'",
        ):
            index.add_to_index(None, [ds.first().id])
    finally:
        config.multivector_dtype = "int8"
        index._store = None
        # the failed write is recorded to fail a build; this is no build
        index._write_error = None
        index._unwritten = set()
    assert index.total_index_size == N


def test_an_unknown_dtype_is_refused_before_anything(built):
    ds, _ = built
    runs = ds.list_brain_runs()
    with pytest.raises(ValueError, match="'float16', 'int8'.*'int4'"):
        fob.compute_similarity(
            ds,
            model=MODEL_NAME,
            model_kwargs=KWARGS,
            backend="jina_multivector",
            brain_key="bad",
            multivector_dtype="int4",
        )
    assert ds.list_brain_runs() == runs


def test_scan_cache_ranks_as_the_table_and_follows_its_changes(
    built, tmp_root
):
    ds, index = built
    if index.config.store != "lancedb":
        runs = ds.list_brain_runs()
        with pytest.raises(ValueError, match="scan_cache=True is for store="):
            fob.compute_similarity(
                ds,
                model=MODEL_NAME,
                model_kwargs=KWARGS,
                backend="jina_multivector",
                brain_key="scan",
                scan_cache=True,
                **store_kwargs("qdrant", os.path.join(tmp_root, "scan-q")),
            )
        assert ds.list_brain_runs() == runs
        return

    folder = os.path.join(tmp_root, "dtype-scan")
    shutil.rmtree(folder, ignore_errors=True)
    cached = fob.compute_similarity(
        ds,
        model=MODEL_NAME,
        model_kwargs=KWARGS,
        backend="jina_multivector",
        brain_key="i8scan",
        oversample=None,
        multivector_dtype="int8",
        scan_cache=True,
        batch_size=4,
        store="lancedb",
        uri=folder,
    )
    path = os.path.join(folder, cached.config.table_name + ".jina-scan")
    # made by the first exhaustive search, not by the build
    assert not os.path.exists(path)
    for text in QUERIES:
        want = ds.sort_by_similarity(
            text, k=None, brain_key="i8", dist_field="table_scan"
        )
        got = ds.sort_by_similarity(
            text, k=None, brain_key="i8scan", dist_field="file_scan"
        )
        assert got.values("id") == want.values("id")
        assert np.allclose(
            got.values("file_scan"), want.values("table_scan"), atol=1e-6
        )
    first = os.stat(path)
    # the table did not change: the same file serves the next search
    ds.sort_by_similarity(QUERIES[0], k=3, brain_key="i8scan")
    again = os.stat(path)
    assert (again.st_ino, again.st_mtime_ns) == (
        first.st_ino,
        first.st_mtime_ns,
    )

    # a page removed: the next search makes the file again, without it
    gone = ds.first().id
    cached.remove_from_index(sample_ids=[gone])
    view = ds.sort_by_similarity(QUERIES[0], k=None, brain_key="i8scan")
    assert len(view) == N - 1 and gone not in view.values("id")
    assert os.stat(path).st_ino != first.st_ino
    # a view of over a quarter of the pages reads the file too
    half = ds.skip(1).limit(N // 2)
    want = half.sort_by_similarity(QUERIES[1], k=3, brain_key="i8")
    got = half.sort_by_similarity(QUERIES[1], k=3, brain_key="i8scan")
    assert got.values("id") == want.values("id")

    ds.delete_brain_run("i8scan")
    assert not os.path.exists(path)
