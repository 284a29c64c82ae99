"""The jina_multivector similarity backend through real FiftyOne.

Both stores (LanceDB embedded, Qdrant local mode) are built with
``fob.compute_similarity(..., backend="jina_multivector")`` on the tiny
checkpoint, and every ranking is compared with an exhaustive MaxSim
computed here from the encoder, one page at a time.
"""

import math
import os
import shutil

import numpy as np
import pytest
from bson import BSON
from PIL import Image

from conftest import (
    MODEL_NAME,
    new_dataset,
    ranking,
    run_python,
    store_kwargs,
)

from jina_embeddings_v4.testing import documents  # noqa: E402

import fiftyone as fo  # noqa: E402
import fiftyone.brain as fob  # noqa: E402
import fiftyone.zoo as foz  # noqa: E402

N = 12
QUERY = "invoice total due 2024"
KWARGS = {"task": "retrieval", "dtype": "float32"}
STORES = ["lancedb", "qdrant"]


@pytest.fixture(scope="module")
def model(zoo_source):
    return foz.load_zoo_model(MODEL_NAME, **KWARGS)


@pytest.fixture(scope="module")
def pages(tmp_root):
    return documents.write_dataset_images(
        os.path.join(tmp_root, "mv-pages"), n=N + 3, seed=21, scale=0.4
    )


def _doc_sizes(ds):
    coll = ds._sample_collection
    return [len(BSON.encode(d)) for d in coll.find({})]


@pytest.fixture(scope="module", params=STORES)
def built(request, pages, model, tmp_root):
    store = request.param
    folder = os.path.join(tmp_root, "mv-" + store)
    shutil.rmtree(folder, ignore_errors=True)
    ds = new_dataset(pages[:N], "jina-mv-" + store)
    sizes_before = _doc_sizes(ds)
    calls = model.encoder.forward_calls
    index = fob.compute_similarity(
        ds,
        model=MODEL_NAME,
        model_kwargs=KWARGS,
        backend="jina_multivector",
        brain_key="mv",
        oversample=4,
        batch_size=4,
        **store_kwargs(store, folder),
    )
    info = {
        "store": store,
        "folder": folder,
        "forwards": model.encoder.forward_calls - calls,
        "sizes_before": sizes_before,
    }
    yield ds, index, info
    ds.delete()


def _page_multis(model, ds):
    """Each page's multi vectors from the encoder, rounded to float16 as
    the index stores them."""
    paths = dict(zip(*ds.values(["id", "filepath"])))
    out = {}
    for sample_id, path in paths.items():
        multi = model.encoder.encode_images(
            [path], task="retrieval", return_single=False, return_multi=True
        ).multi[0]
        out[sample_id] = multi.astype(np.float16).astype(np.float32)
    return out


def _page_singles(model, ds):
    paths = dict(zip(*ds.values(["id", "filepath"])))
    return {
        i: model.encoder.encode_images([p], task="retrieval").single[0]
        for i, p in paths.items()
    }


def _maxsim(query, page):
    return float((query @ page.T).max(axis=1).sum())


def _text_query_multi(model, text=QUERY):
    return model.encoder.encode_texts(
        [text],
        task="retrieval",
        prompt_name="query",
        return_single=False,
        return_multi=True,
    ).multi[0]


def test_build_one_forward_per_batch_nothing_in_samples(built):
    ds, index, info = built
    assert info["forwards"] == math.ceil(N / 4)
    assert index.total_index_size == N
    assert sorted(index.sample_ids) == sorted(ds.values("id"))
    growth = np.mean(np.array(_doc_sizes(ds)) - info["sizes_before"])
    assert growth <= 1024
    assert set(ds.get_field_schema()) == {
        "id",
        "filepath",
        "tags",
        "metadata",
        "created_at",
        "last_modified_at",
    }
    assert ds.get_brain_info("mv").config.method == "jina_multivector"


def test_text_query_equals_exhaustive_maxsim(built, model):
    ds, index, _ = built
    query = _text_query_multi(model)
    scores = {
        i: _maxsim(query, p) for i, p in _page_multis(model, ds).items()
    }
    # k * oversample covers the dataset: exact over every page
    view = ds.sort_by_similarity(
        QUERY, k=3, brain_key="mv", dist_field="maxsim"
    )
    assert view.values("id") == ranking(scores)[:3]
    got = dict(zip(*view.values(["id", "maxsim"])))
    for sample_id, score in got.items():
        assert score == pytest.approx(scores[sample_id], rel=1e-4)

    everything = index.sort_by_similarity(QUERY, k=None)
    assert everything.values("id") == ranking(scores)

    least = ds.sort_by_similarity(QUERY, k=3, brain_key="mv", reverse=True)
    assert least.values("id") == ranking(scores, reverse=True)[:3]


def test_two_stage_ranks_the_single_vector_candidates(built, model):
    ds, index, _ = built
    singles = _page_singles(model, ds)
    query_single = model.embed_prompt(QUERY)
    first = sorted(singles, key=lambda i: -float(singles[i] @ query_single))
    candidates = first[:4]
    multis = _page_multis(model, ds)
    query = _text_query_multi(model)
    scores = {i: _maxsim(query, multis[i]) for i in candidates}
    # k=2, oversample=4 would cover 8 of 12; use a narrower index view
    index.config.oversample = 2
    try:
        view = index.sort_by_similarity(QUERY, k=2)
    finally:
        index.config.oversample = 4
    assert view.values("id") == ranking(scores)[:2]


def test_first_stage_recall_against_exhaustive_maxsim(built, model):
    ds, index, _ = built
    singles = _page_singles(model, ds)
    multis = _page_multis(model, ds)
    queries = [QUERY, "shipping address and phone"]
    expected = {1: [], 2: [], 3: [], 6: []}
    for text in queries:
        query_single = model.embed_prompt(text)
        first = sorted(singles, key=lambda i: -float(singles[i] @ query_single))
        query = _text_query_multi(model, text)
        scores = {i: _maxsim(query, multis[i]) for i in singles}
        truth = set(ranking(scores)[:2])
        for o in expected:
            expected[o].append(len(truth & set(first[: 2 * o])) / 2)

    recall = index.first_stage_recall(queries, k=2, oversamples=(1, 2, 3, 6))
    assert recall == pytest.approx({o: np.mean(v) for o, v in expected.items()})
    # 2 x 6 candidates cover all 12 pages: nothing can be missed
    assert recall[6] == 1.0
    with pytest.raises(ValueError, match="oversample must be a positive"):
        index.first_stage_recall(QUERY, oversamples=(0,))


def test_image_and_sample_id_queries(built, model):
    ds, index, _ = built
    multis = _page_multis(model, ds)
    first = ds.first()

    image = Image.open(first.filepath)
    image_query = model.encoder.encode_images(
        [first.filepath], return_single=False, return_multi=True
    ).multi[0]
    scores = {i: _maxsim(image_query, p) for i, p in multis.items()}
    by_image = index.sort_by_similarity(image, k=4)
    assert by_image.values("id") == ranking(scores)[:4]

    # an id query uses the stored (float16) vectors of that page
    id_scores = {i: _maxsim(multis[first.id], p) for i, p in multis.items()}
    by_id = ds.sort_by_similarity(first.id, k=4, brain_key="mv")
    assert by_id.values("id") == ranking(id_scores)[:4]
    assert by_id.values("id")[0] == first.id

    two = [first.id, ds.last().id]
    mean = {
        i: np.mean([_maxsim(multis[q], p) for q in two])
        for i, p in multis.items()
    }
    by_ids = ds.sort_by_similarity(two, k=3, brain_key="mv")
    assert by_ids.values("id") == ranking(mean)[:3]


def test_within_a_view(built, model):
    ds, _, _ = built
    view = ds.skip(5)
    allowed = set(view.values("id"))
    query = _text_query_multi(model)
    scores = {
        i: _maxsim(query, p)
        for i, p in _page_multis(model, ds).items()
        if i in allowed
    }
    got = view.sort_by_similarity(QUERY, k=4, brain_key="mv")
    assert got.values("id") == ranking(scores)[:4]


def test_fresh_process_same_order_without_loading_the_model(built):
    ds, _, _ = built
    expected = ds.sort_by_similarity(QUERY, k=5, brain_key="mv")
    script = """
        import fiftyone as fo
        ds = fo.load_dataset(%r)
        view = ds.sort_by_similarity(%r, k=5, brain_key="mv")
        print("IDS", ",".join(view.values("id")))
        results = ds.load_brain_results("mv")
        print("CLASS", type(results).__module__, type(results).__name__)
    """ % (ds.name, QUERY)
    out = run_python(script)
    assert out.split("IDS ")[1].split()[0].split(",") == expected.values("id")
    assert (
        "CLASS jina_embeddings_v4.index.backend "
        "JinaMultivectorSimilarityIndex" in out
    )


def test_lifecycle_add_remove_get_cleanup(built, pages, model):
    ds, index, info = built
    extra = ds.add_samples([fo.Sample(filepath=p["filepath"]) for p in pages[N:]])
    try:
        calls = model.encoder.forward_calls
        embeddings, ids, _ = index.compute_embeddings(
            ds.select(extra), batch_size=3
        )
        index.add_to_index(embeddings, ids)
        # one forward pass for the 3 new pages
        assert model.encoder.forward_calls - calls == 1
        assert index.total_index_size == N + 3

        vectors, got_ids, _ = index.get_embeddings(sample_ids=extra)
        assert list(got_ids) == extra
        assert np.allclose(vectors, embeddings, atol=1e-6)
        singles = _page_singles(model, ds.select(extra))
        assert np.allclose(vectors[0], singles[extra[0]], atol=1e-5)

        index.remove_from_index(sample_ids=extra[:2])
        assert index.total_index_size == N + 1
        # add_to_index with no embeddings embeds the pages itself
        index.add_to_index(None, extra[:2])
        assert index.total_index_size == N + 3
        view = ds.sort_by_similarity(QUERY, k=N + 3, brain_key="mv")
        assert set(view.values("id")) == set(ds.values("id"))
    finally:
        index.remove_from_index(sample_ids=extra)
        ds.delete_samples(extra)
    assert index.total_index_size == N


def test_delete_brain_run_drops_the_store(pages, model, tmp_root):
    folder = os.path.join(tmp_root, "mv-cleanup")
    for store in STORES:
        ds = new_dataset(pages[:3], "jina-mv-cleanup")
        index = fob.compute_similarity(
            ds,
            model=MODEL_NAME,
            model_kwargs=KWARGS,
            backend="jina_multivector",
            brain_key="gone",
            **store_kwargs(store, folder),
        )
        store_obj = index.store
        assert store_obj.count() == 3
        ds.delete_brain_run("gone")
        assert ds.list_brain_runs() == []
        assert index.config.open_store().count() == 0
        ds.delete()


def test_interrupted_build_resumes_without_duplicates(
    pages, model, tmp_root
):
    for store in STORES:
        folder = os.path.join(tmp_root, "mv-resume-" + store)
        broken_dir = os.path.join(folder, "pages")
        os.makedirs(broken_dir, exist_ok=True)
        paths = []
        for i, p in enumerate(pages[:8]):
            dest = os.path.join(broken_dir, "%02d.png" % i)
            shutil.copy(p["filepath"], dest)
            paths.append(dest)
        # the 7th page is broken: the build stops there
        with open(paths[6], "wb") as f:
            f.write(b"not a png")
        ds = fo.Dataset()
        ds.add_samples([fo.Sample(filepath=p) for p in paths])
        kwargs = dict(
            model=MODEL_NAME,
            model_kwargs=KWARGS,
            backend="jina_multivector",
            brain_key="resume",
            batch_size=2,
            **store_kwargs(store, folder),
        )
        with pytest.raises(Exception, match="00|06|png|image"):
            fob.compute_similarity(ds, skip_failures=False, **kwargs)
        # saved as unfinished: a search says so (it used to raise
        # AttributeError: 'NoneType' object has no attribute 'view')
        unfinished = ds.load_brain_results("resume")
        assert unfinished.config.build_state == "building"
        with pytest.raises(ValueError, match="not finished.*6 pages stored"):
            ds.sort_by_similarity("invoice", k=3, brain_key="resume")

        shutil.copy(pages[6]["filepath"], paths[6])
        calls = model.encoder.forward_calls
        index = fob.compute_similarity(ds, skip_failures=False, **kwargs)
        # pages 0-5 were stored before the failure: only 6 and 7 remain
        assert model.encoder.forward_calls - calls == 1
        assert index.total_index_size == 8
        assert sorted(index.sample_ids) == sorted(ds.values("id"))
        assert ds.get_brain_info("resume").config.build_state == "complete"
        assert len(ds.sort_by_similarity("invoice", k=3, brain_key="resume")) == 3
        ds.delete_brain_run("resume")
        ds.delete()


def test_unreadable_images_are_skipped_with_a_warning(
    pages, model, tmp_root, caplog
):
    folder = os.path.join(tmp_root, "mv-unreadable")
    bad = os.path.join(tmp_root, "mv-unreadable-page.png")
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\ntruncated")
    ds = fo.Dataset()
    ds.add_samples(
        [fo.Sample(filepath=p["filepath"]) for p in pages[:3]]
        + [fo.Sample(filepath=bad)]
    )
    with caplog.at_level("WARNING"):
        index = fob.compute_similarity(
            ds,
            model=MODEL_NAME,
            model_kwargs=KWARGS,
            backend="jina_multivector",
            brain_key="skip",
            batch_size=4,
            **store_kwargs("lancedb", folder),
        )
    assert index.total_index_size == 3
    assert "mv-unreadable-page.png" in caplog.text
    ds.delete()


def test_bad_input(built, model, tmp_root):
    ds, index, _ = built
    with pytest.raises(ValueError, match="non-empty"):
        ds.sort_by_similarity("  ", k=3, brain_key="mv")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.sort_by_similarity(QUERY, k=0)
    code = foz.load_zoo_model(MODEL_NAME, task="code", dtype="float32")
    with pytest.raises(ValueError, match="task='retrieval'"):
        index.compute_embeddings(ds.limit(1), model=code)

    runs = ds.list_brain_runs()
    for kwargs, match in [
        ({"store": "milvus"}, "'lancedb', 'qdrant'"),
        ({"oversample": 0}, "oversample must be >= 1"),
        ({"strore": "qdrant"}, "Unknown option.*strore"),
        ({"store": "qdrant"}, "exactly one of url="),
        ({"embeddings": "emb"}, "computes its own"),
    ]:
        with pytest.raises(ValueError, match=match):
            fob.compute_similarity(
                ds,
                model=MODEL_NAME,
                model_kwargs=KWARGS,
                backend="jina_multivector",
                brain_key="bad",
                **kwargs,
            )
    assert ds.list_brain_runs() == runs


def test_unreachable_qdrant_url_changes_nothing(built):
    ds, _, _ = built
    runs = ds.list_brain_runs()
    url = "http://127.0.0.1:9"  # the discard port: nothing listens
    with pytest.raises(ConnectionError, match="127.0.0.1:9"):
        fob.compute_similarity(
            ds,
            model=MODEL_NAME,
            model_kwargs=KWARGS,
            backend="jina_multivector",
            brain_key="unreachable",
            store="qdrant",
            url=url,
        )
    assert ds.list_brain_runs() == runs


def test_missing_engine_names_the_pip_command(zoo_source):
    script = """
        import sys
        sys.modules["lancedb"] = None  # as if it were not installed
        import fiftyone.zoo as foz
        foz.load_zoo_model(%r)
        from jina_embeddings_v4.index import store
        try:
            store.import_engine("lancedb")
        except ImportError as e:
            print("ERROR", e)
    """ % MODEL_NAME
    out = run_python(script)
    assert "pip install 'lancedb==0.40.0'" in out
