"""Sharded embedding: concurrent shard processes against one database."""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import MODEL_NAME, REPO_ROOT

from jina_embeddings_v4.testing import documents  # noqa: E402

import fiftyone as fo  # noqa: E402
import fiftyone.zoo as foz  # noqa: E402

from jina_embeddings_v4.fiftyone import sharding  # noqa: E402

N = 10
SCRIPT = os.path.join(REPO_ROOT, "scripts", "embed_shard.py")


def test_parse_shard_and_shard_of():
    assert sharding.parse_shard("0/4") == (0, 4)
    assert sharding.parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "-1/4", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="I/N|0 <= I < N"):
            sharding.parse_shard(bad)
    ids = ["%024x" % i for i in range(1000)]
    counts = np.bincount([sharding.shard_of(i, 4) for i in ids], minlength=4)
    assert counts.sum() == 1000 and counts.min() > 200
    assert sharding.shard_of(ids[7], 4) == sharding.shard_of(ids[7], 4)


def _start(dataset, shard):
    return subprocess.Popen(
        [
            sys.executable,
            SCRIPT,
            "--dataset",
            dataset,
            "--field",
            "emb",
            "--shard",
            shard,
            "--dtype",
            "float32",
            "--batch-size",
            "3",
            "--device",
            "cpu",
            "--num-workers",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(procs):
    counts = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        counts.append(int(out.split("embedded ")[1].split()[0]))
    return counts


def test_two_concurrent_shards_equal_one_run(zoo_source, tmp_root):
    pages = documents.write_dataset_images(
        os.path.join(tmp_root, "shard-pages"), n=N, seed=17, scale=0.4
    )
    ds = fo.Dataset("jina-shards", overwrite=True)
    ds.persistent = True
    ds.add_samples([fo.Sample(filepath=p["filepath"]) for p in pages])

    counts = _finish([_start(ds.name, "0/2"), _start(ds.name, "1/2")])
    assert sum(counts) == N and min(counts) > 0
    ds.reload()
    stored = np.stack(ds.values("emb"))

    model = foz.load_zoo_model(MODEL_NAME, dtype="float32")
    ds.compute_embeddings(model, embeddings_field="one_run", batch_size=4)
    reference = np.stack(ds.values("one_run"))
    assert np.min(np.sum(stored * reference, axis=1)) >= 0.9999
    assert ds.get_field("emb").info["jina_v4"]["task"] == "retrieval"

    # three samples lose their field: a re-run writes only those
    lost = ds.values("id")[:3]
    ds.select(lost).set_field("emb", None).save()
    before = dict(zip(ds.values("id"), ds.values("last_modified_at")))
    counts = _finish([_start(ds.name, "0/2"), _start(ds.name, "1/2")])
    assert sum(counts) == 3
    ds.reload()
    after = dict(zip(ds.values("id"), ds.values("last_modified_at")))
    changed = {i for i in after if after[i] != before[i]}
    assert changed == set(lost)
    again = np.stack(ds.select(lost, ordered=True).values("emb"))
    assert np.min(np.sum(again * stored[:3], axis=1)) >= 0.9999

    # a shard with other options refuses the field
    bad = subprocess.run(
        [sys.executable, SCRIPT, "--dataset", ds.name, "--field", "emb",
         "--shard", "0/2", "--task", "code", "--device", "cpu"],
        capture_output=True, text=True, timeout=600,
    )
    assert bad.returncode != 0 and "task='retrieval'" in bad.stderr
    ds.delete()
