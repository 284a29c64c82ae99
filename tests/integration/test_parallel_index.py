"""A jina_multivector index built in parallel (issue 22): created empty by
compute_similarity(..., embeddings=False), filled by shard processes
(scripts/embed_shard.py --brain-key) that start at the same moment."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import MODEL_NAME, REPO_ROOT, slow_shard_script

import fiftyone as fo
import fiftyone.brain as fob

from jina_embeddings_v4.index import shards
from jina_embeddings_v4.scoring import late_interaction as li
from jina_embeddings_v4.testing import documents

N = 12
KWARGS = {"task": "retrieval", "dtype": "float32"}
SCRIPT = os.path.join(REPO_ROOT, "scripts", "embed_shard.py")
# a shard process whose batches can be made slower (conftest.py)
SLOW_SHARD = slow_shard_script("embed_images_with_multivectors")
QUERIES = ["quarterly revenue table", "signature of the contract", "invoice total"]


@pytest.fixture(scope="module")
def pages_ds(zoo_source, tmp_root):
    pages = documents.write_dataset_images(
        os.path.join(tmp_root, "parallel-pages"), n=N, seed=23, scale=0.4
    )
    ds = fo.Dataset("jina-parallel-index", overwrite=True)
    ds.persistent = True
    ds.add_samples([fo.Sample(filepath=p["filepath"]) for p in pages])
    yield ds
    ds.delete()


def _create_empty(ds, key, uri, **kwargs):
    return fob.compute_similarity(
        ds,
        model=MODEL_NAME,
        model_kwargs=KWARGS,
        backend="jina_multivector",
        brain_key=key,
        embeddings=False,
        uri=uri,
        **kwargs,
    )


def _args(ds, key, shard, *extra):
    return [
        "--dataset", ds.name, "--brain-key", key, "--shard", shard,
        "--batch-size", "3", "--device", "cpu", "--num-workers", "0",
    ] + list(extra)


def _embedded(out):
    return int(out.split("embedded ")[1].split()[0])


def _exhaustive(ds, index, query, k):
    """Exhaustive MaxSim over every page the index holds, by hand."""
    model = index.get_model()
    q = model.embed_prompts_with_multivectors([query])[1]
    rows = index.get_multivectors(ds.values("id"))
    scores = li.maxsim_scores(
        [np.asarray(m, np.float32) for m in q],
        [np.asarray(m, np.float32) for m in rows.multis],
        normalize="sum",
    )[0].numpy()
    order = np.argsort(-scores, kind="stable")[:k]
    return [rows.ids[i] for i in order]


def test_two_concurrent_shards_fill_an_index_created_empty(pages_ds, tmp_root):
    ds = pages_ds
    uri = os.path.join(tmp_root, "parallel-lance")
    one = fob.compute_similarity(
        ds,
        model=MODEL_NAME,
        model_kwargs=KWARGS,
        backend="jina_multivector",
        brain_key="one_process",
        batch_size=3,
        uri=uri,
    )
    empty = _create_empty(ds, "parallel", uri)
    assert empty.total_index_size == 0
    assert ds.get_brain_info("parallel").config.build_state == "complete"

    # both shards load the model, then write their first batch at the same
    # moment into a table that does not exist yet
    ready = [os.path.join(tmp_root, "par-ready-%d" % i) for i in range(2)]
    go = os.path.join(tmp_root, "par-go")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SLOW_SHARD, ready[i], go, "0"]
            + _args(ds, "parallel", "%d/2" % i),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 600
    while not all(os.path.exists(r) for r in ready):
        assert time.monotonic() < deadline
        assert all(p.poll() is None for p in procs), procs[0].stderr.read()
        time.sleep(0.05)
    open(go, "w").close()
    counts = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        counts.append(_embedded(out))
    assert sum(counts) == N and min(counts) > 0

    index = ds.load_brain_results("parallel")
    assert index.total_index_size == N
    assert sorted(index.store.ids()) == sorted(ds.values("id"))
    # the multi vectors of a one-process build (other batches: float32
    # sums in another order, then stored as float16)
    ids = ds.values("id")
    ours, theirs = index.get_multivectors(ids), one.get_multivectors(ids)
    assert ours.ids == theirs.ids == ids
    assert ours.grids == theirs.grids
    for a, b in zip(ours.multis, theirs.multis):
        assert a.shape == b.shape
        np.testing.assert_allclose(
            np.asarray(a, np.float32), np.asarray(b, np.float32), atol=2e-3
        )
    # sort_by_similarity (oversample 4) equals exhaustive MaxSim here
    for query in QUERIES:
        got = ds.sort_by_similarity(query, k=5, brain_key="parallel").values("id")
        assert got == _exhaustive(ds, index, query, 5)

    # run again: nothing is missing, nothing is embedded
    again = subprocess.run(
        [sys.executable, SCRIPT] + _args(ds, "parallel", "0/2"),
        capture_output=True, text=True, timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert _embedded(again.stdout) == 0
    ds.delete_brain_run("one_process")


def test_a_killed_shard_resumes_and_other_options_are_refused(pages_ds, tmp_root):
    ds = pages_ds
    uri = os.path.join(tmp_root, "parallel-lance")
    _create_empty(ds, "killed", uri)
    # one shard of one, slowed down: killed once some batches are written
    ready, go = (os.path.join(tmp_root, "kill-%s" % n) for n in ("ready", "go"))
    open(go, "w").close()
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SHARD, ready, go, "1.0"]
        + _args(ds, "killed", "0/1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    index = ds.load_brain_results("killed")
    deadline = time.monotonic() + 600
    while index.store.count() < 3:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.kill()
    proc.communicate()
    held = index.store.count()
    assert 3 <= held < N

    # other vector-space options: refused, with the fix, nothing written
    bad = subprocess.run(
        [sys.executable, SCRIPT] + _args(ds, "killed", "0/1", "--task", "code"),
        capture_output=True, text=True, timeout=600,
    )
    assert bad.returncode == 2
    assert "task='retrieval'" in bad.stderr and "--task retrieval" in bad.stderr
    assert index.store.count() == held

    # the same shard again: only the missing pages
    rerun = subprocess.run(
        [sys.executable, SCRIPT] + _args(ds, "killed", "0/1"),
        capture_output=True, text=True, timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert _embedded(rerun.stdout) == N - held
    assert sorted(index.store.ids()) == sorted(ds.values("id"))
    ds.delete_brain_run("killed")


def test_shards_fill_a_qdrant_index_one_after_the_other(pages_ds, tmp_root):
    # qdrant-client's local mode is one process at a time: the shards run
    # in turn here (on a server they run at once)
    ds = pages_ds
    fob.compute_similarity(
        ds,
        model=MODEL_NAME,
        model_kwargs=KWARGS,
        backend="jina_multivector",
        brain_key="parallel_qdrant",
        embeddings=False,
        store="qdrant",
        path=os.path.join(tmp_root, "parallel-qdrant"),
    )
    counts = []
    for shard in ("0/2", "1/2"):
        run = subprocess.run(
            [sys.executable, SCRIPT] + _args(ds, "parallel_qdrant", shard),
            capture_output=True, text=True, timeout=600,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        counts.append(_embedded(run.stdout))
    assert sum(counts) == N and min(counts) > 0
    index = ds.load_brain_results("parallel_qdrant")
    assert sorted(index.store.ids()) == sorted(ds.values("id"))
    for query in QUERIES:
        got = ds.sort_by_similarity(query, k=5, brain_key="parallel_qdrant")
        assert got.values("id") == _exhaustive(ds, index, query, 5)
    ds.delete_brain_run("parallel_qdrant")


def test_shards_name_a_missing_or_foreign_index(pages_ds, tmp_root):
    ds = pages_ds
    with pytest.raises(ValueError, match="embeddings=False"):
        shards.embed_index_shard(ds, "nope", 0, 1)
    fob.compute_similarity(
        ds, embeddings=False, backend="sklearn", brain_key="plain",
        model=MODEL_NAME, model_kwargs=KWARGS,
    )
    with pytest.raises(ValueError, match="'sklearn' index"):
        shards.embed_index_shard(ds, "plain", 0, 1)
    ds.delete_brain_run("plain")
    # the shard's options: the index's, with device/dtype on top
    kwargs, ours, theirs, diff = shards.shard_model_kwargs(
        {"task": "retrieval", "dtype": "float32"}, {"device": "cpu", "task": None}
    )
    assert kwargs == {"task": "retrieval", "dtype": "float32", "device": "cpu"}
    assert diff == []
    _, _, _, diff = shards.shard_model_kwargs({}, {"truncate_dim": 128})
    assert diff == ["truncate_dim"]
