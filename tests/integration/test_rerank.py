"""compute_multivectors and MaxSim re-ranking through real FiftyOne.

Multi vectors go into a jina_multivector index, not into the samples; a
field of multi vectors (the old layout) is still read.
"""

import os

import numpy as np
import pytest

from conftest import MODEL_NAME

from jina_embeddings_v4.testing import documents  # noqa: E402

import fiftyone as fo  # noqa: E402
import fiftyone.brain as fob  # noqa: E402
import fiftyone.zoo as foz  # noqa: E402

QUERY = "signed service agreement 2023"


@pytest.fixture(scope="module")
def setup(zoo_source, tmp_root):
    pages = documents.write_dataset_images(
        os.path.join(tmp_root, "rerank-pages"), n=12, seed=11, scale=0.4
    )
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=p["filepath"]) for p in pages])
    # float32: scores are compared to a batch-1 reference within 1e-4
    kwargs = {"task": "retrieval", "dtype": "float32"}
    model = foz.load_zoo_model(MODEL_NAME, **kwargs)
    ds.compute_embeddings(model, embeddings_field="emb", batch_size=4)
    fob.compute_similarity(
        ds,
        model=MODEL_NAME,
        model_kwargs=kwargs,
        embeddings="emb",
        brain_key="sim",
    )
    n = model.compute_multivectors(ds, batch_size=4)
    assert n == len(ds)
    yield ds, model
    ds.delete()


def _exhaustive_ranking(ds, model):
    """Brute-force MaxSim (sum over query tokens), one page at a time."""
    query = model.encoder.encode_texts(
        [QUERY],
        task="retrieval",
        prompt_name="query",
        return_single=False,
        return_multi=True,
    ).multi[0]
    scores = {}
    for sample_id, path in zip(*ds.values(["id", "filepath"])):
        page = model.encoder.encode_images(
            [path], task="retrieval", return_single=False, return_multi=True
        ).multi[0]
        page16 = page.astype(np.float16).astype(np.float32)
        scores[sample_id] = float((query @ page16.T).max(axis=1).sum())
    return sorted(scores, key=lambda i: -scores[i]), scores


def test_multivectors_indexed_not_in_samples(setup):
    ds, model = setup
    assert "jina_multivectors" not in ds.get_field_schema()
    assert ds.get_brain_info("jina_multivectors").config.method == (
        "jina_multivector"
    )
    index = ds.load_brain_results("jina_multivectors")
    sample = ds.first()
    rows = index.get_multivectors([sample.id])
    mv = rows.multis[0]
    assert mv.dtype == np.float16 and mv.shape[1] == 128
    expected = model.embed_multivectors([sample.filepath])[0]
    assert mv.shape == expected.shape
    assert np.allclose(mv.astype(np.float32), expected, atol=2e-3)
    assert index.config.task == "retrieval"

    # a second call adds nothing for samples already indexed
    calls = model.encoder.forward_calls
    assert model.compute_multivectors(ds, batch_size=4) == len(ds)
    assert model.encoder.forward_calls == calls


def test_exhaustive_rerank_equals_independent_maxsim(setup):
    ds, model = setup
    order, scores = _exhaustive_ranking(ds, model)
    view = model.rerank(ds, QUERY, k=len(ds))
    assert view.values("id") == order
    stored = dict(zip(*ds.values(["id", "maxsim_score"])))
    for sample_id, score in scores.items():
        assert stored[sample_id] == pytest.approx(score, rel=1e-4)


def test_rerank_of_single_vector_candidates(setup):
    ds, model = setup
    candidates = ds.sort_by_similarity(QUERY, k=6, brain_key="sim")
    view = model.rerank(ds, QUERY, k=3, brain_key="sim", oversample=2)
    assert len(view) == 3
    assert set(view.values("id")) <= set(candidates.values("id"))
    order, _ = _exhaustive_ranking(candidates, model)
    assert view.values("id") == order[:3]

    # covering the whole dataset equals the exhaustive ranking
    full = model.rerank(ds, QUERY, k=5, brain_key="sim", oversample=10)
    assert full.values("id") == _exhaustive_ranking(ds, model)[0][:5]


def test_rerank_with_the_multivector_index_as_candidates(setup):
    ds, model = setup
    order, _ = _exhaustive_ranking(ds, model)
    # the index's own first stage covers all 12 pages: exact
    view = model.rerank(ds, QUERY, k=3, brain_key="jina_multivectors")
    assert view.values("id") == order[:3]


def test_a_field_of_multivectors_still_works(setup):
    ds, model = setup
    n = model.compute_multivectors(
        ds, multivectors_field="old_multivectors", batch_size=6
    )
    assert n == len(ds)
    assert ds.first()["old_multivectors"].dtype == np.float16
    view = model.rerank(
        ds, QUERY, k=len(ds), multivectors_field="old_multivectors"
    )
    assert view.values("id") == _exhaustive_ranking(ds, model)[0]
    ds.delete_sample_field("old_multivectors")


def test_rerank_errors(setup):
    ds, model = setup
    with pytest.raises(ValueError, match="compute_multivectors"):
        model.rerank(ds, QUERY, multivector_key="nope")
    with pytest.raises(ValueError, match="non-empty string"):
        model.rerank(ds, "  ")
    with pytest.raises(ValueError, match="positive integer"):
        model.rerank(ds, QUERY, k=0)
    other = foz.load_zoo_model(MODEL_NAME, task="code", dtype="float32")
    with pytest.raises(ValueError, match="task='retrieval'"):
        other.rerank(ds, QUERY)
