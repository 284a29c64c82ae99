"""The single-vector similarity backends the README names, through FiftyOne.

Each index is built by fiftyone-brain from our embeddings field with the
model's name (so text queries work), and its text, id and vector queries
must equal an exhaustive cosine ranking computed here. ``lancedb`` runs
embedded and ``milvus`` on a local milvus-lite file; Qdrant needs a server
(its fiftyone-brain backend accepts only a ``url``), which cannot be
installed here: the README says what that means.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import MODEL_NAME

from jina_embeddings_v4.testing import documents  # noqa: E402

import fiftyone as fo  # noqa: E402
import fiftyone.brain as fob  # noqa: E402
import fiftyone.zoo as foz  # noqa: E402

QUERY = "invoice from 2024"
K = 5


@pytest.fixture(scope="module")
def setup(zoo_source, tmp_root):
    pages = documents.write_dataset_images(
        os.path.join(tmp_root, "backend-pages"), n=14, seed=3, scale=0.4
    )
    ds = fo.Dataset("jina-backends", overwrite=True)
    ds.persistent = True
    ds.add_samples([fo.Sample(filepath=p["filepath"]) for p in pages])
    model = foz.load_zoo_model(MODEL_NAME, dtype="float32")
    ds.compute_embeddings(model, embeddings_field="emb", batch_size=7)
    yield ds, model
    ds.delete()


def _exhaustive(ds, vector, center=False):
    stored = np.stack(ds.values("emb")).astype(np.float64)
    if center:
        # fiftyone-brain's sklearn backend answers sample-id queries from
        # cosine distances between mean-centred embeddings
        mean = stored.mean(axis=0)
        stored, vector = stored - mean, vector - mean
        stored /= np.linalg.norm(stored, axis=1, keepdims=True)
        vector = vector / np.linalg.norm(vector)
    scores = stored @ vector
    order = np.argsort(-scores, kind="stable")
    ids = ds.values("id")
    return [ids[i] for i in order], scores[order]


def _assert_top_k(ds, ids, vector, k=K, allowed=None, center=False):
    """``ids`` is a top-``k`` ranking by cosine to ``vector``: up to float
    rounding, since the tiny random model puts many pages close together."""
    expected, scores = _exhaustive(ds, vector, center=center)
    if allowed is not None:
        keep = [i for i, e in enumerate(expected) if e in allowed]
        expected = [expected[i] for i in keep]
        scores = scores[keep]
    by_id = dict(zip(expected, scores))
    got = np.array([by_id[i] for i in ids])
    assert len(ids) == min(k, len(expected))
    assert np.allclose(got, scores[: len(ids)], atol=1e-5)
    assert np.all(np.diff(got) <= 1e-5)


def _backend_kwargs(name, tmp_root):
    if name == "lancedb":
        return {"uri": os.path.join(tmp_root, "lancedb-single")}
    if name == "milvus":
        return {"uri": os.path.join(tmp_root, "milvus-single.db")}
    return {}


@pytest.mark.parametrize("backend", ["sklearn", "lancedb", "milvus"])
def test_backend_ranks_like_exhaustive_cosine(setup, tmp_root, backend):
    ds, model = setup
    key = "single_" + backend
    fob.compute_similarity(
        ds,
        model=MODEL_NAME,
        model_kwargs={"dtype": "float32"},
        embeddings="emb",
        backend=backend,
        brain_key=key,
        **_backend_kwargs(backend, tmp_root),
    )
    query = model.embed_prompt(QUERY)

    by_text = ds.sort_by_similarity(QUERY, k=K, brain_key=key)
    _assert_top_k(ds, by_text.values("id"), query)

    by_vector = ds.sort_by_similarity(query, k=K, brain_key=key)
    _assert_top_k(ds, by_vector.values("id"), query)

    first = ds.first()
    by_id = ds.sort_by_similarity(first.id, k=K, brain_key=key)
    _assert_top_k(
        ds, by_id.values("id"), first.emb, center=backend == "sklearn"
    )

    # within a view
    view = ds.skip(4)
    in_view = view.sort_by_similarity(QUERY, k=K, brain_key=key)
    _assert_top_k(
        ds, in_view.values("id"), query, allowed=set(view.values("id"))
    )

    ds.delete_brain_run(key)


def test_lancedb_index_in_a_fresh_process(setup, tmp_root):
    """fiftyone-brain does not store LanceDB's ``uri`` with the run: a new
    process (or the App server) must get it from the brain config."""
    ds, model = setup
    uri = os.path.join(tmp_root, "lancedb-fresh")
    fob.compute_similarity(
        ds,
        model=MODEL_NAME,
        model_kwargs={"dtype": "float32"},
        embeddings="emb",
        backend="lancedb",
        brain_key="lance_fresh",
        uri=uri,
    )
    script = """
        import fiftyone as fo
        ds = fo.load_dataset(%r)
        view = ds.sort_by_similarity(%r, k=%d, brain_key="lance_fresh")
        print("IDS", ",".join(view.values("id")))
    """ % (ds.name, QUERY, K)
    env = dict(os.environ, FIFTYONE_BRAIN_SIMILARITY_LANCEDB_URI=uri)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ids = proc.stdout.split("IDS ")[1].strip().split(",")
    _assert_top_k(ds, ids, model.embed_prompt(QUERY))
    in_process = ds.sort_by_similarity(QUERY, k=K, brain_key="lance_fresh")
    assert ids == in_process.values("id")
    ds.delete_brain_run("lance_fresh")
