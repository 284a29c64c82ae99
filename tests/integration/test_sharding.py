"""Sharded embedding: concurrent shard processes against one database."""

import datetime
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import MODEL_NAME, REPO_ROOT, slow_shard_script

from jina_embeddings_v4.testing import documents  # noqa: E402

import fiftyone as fo  # noqa: E402
import fiftyone.zoo as foz  # noqa: E402

from jina_embeddings_v4 import options  # noqa: E402
from jina_embeddings_v4.fiftyone import locks, sharding  # noqa: E402

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


# -- one field, one vector space ---------------------------------------------
#
# A shard records its vector-space options in the field before its first
# write and checks the record before it writes: a shard killed half way
# and run again with another task, or two shards started together with
# different tasks, never put two vector spaces into one field.

M = 12  # samples of the datasets below

# a shard process whose batches can be made slower (conftest.py)
SLOW_SHARD = slow_shard_script("embed_all")

# Claims fields f0, f1, ... for one task, each at the moment the test says
# go, and prints what happened to each.
CLAIMER = r"""
import json, os, sys, time

folder, name, task, rounds = sys.argv[1:4] + [int(sys.argv[4])]

import fiftyone as fo
from jina_embeddings_v4.fiftyone import locks, sharding

dataset = fo.load_dataset(name)
for r in range(rounds):
    open(os.path.join(folder, "ready.%d.%d" % (r, os.getpid())), "w").close()
    while not os.path.exists(os.path.join(folder, "go.%d" % r)):
        time.sleep(0.001)
    try:
        sharding.claim_field(dataset, "f%d" % r, {"task": task})
        print(json.dumps([r, "ok"]), flush=True)
    except sharding.FieldSpaceMismatch as e:
        print(json.dumps([r, "refused", e.differences]), flush=True)
"""


@pytest.fixture(scope="module")
def space_pages(tmp_root):
    return documents.write_dataset_images(
        os.path.join(tmp_root, "space-pages"), n=M, seed=23, scale=0.4
    )


_REFERENCES = {}


def _reference(filepaths, task):
    """{filepath: vector} of the pages embedded in this process."""
    if task not in _REFERENCES:
        ds = fo.Dataset()
        ds.add_samples([fo.Sample(filepath=p) for p in sorted(set(filepaths))])
        model = foz.load_zoo_model(
            MODEL_NAME, task=task, dtype="float32", device="cpu"
        )
        vectors = ds.compute_embeddings(model, batch_size=4, num_workers=0)
        _REFERENCES[task] = dict(zip(ds.values("filepath"), vectors))
        ds.delete()
    return _REFERENCES[task]


def _space_dataset(name, pages):
    ds = fo.Dataset(name, overwrite=True)
    ds.persistent = True
    ds.add_samples([fo.Sample(filepath=p["filepath"]) for p in pages])
    return ds


def _stored(ds, field="emb"):
    """{sample id: (vector, last_modified_at)} of the samples that have
    ``field``, as the database holds them now."""
    ds.reload()
    if not ds.has_field(field):
        return {}
    view = ds.exists(field)
    ids, vectors = view.values("id"), view.values(field)
    return dict(zip(ids, zip(vectors, view.values("last_modified_at"))))


def _assert_vectors_of(ds, task, field="emb"):
    ds.reload()
    view = ds.exists(field)
    reference = _reference(ds.values("filepath"), task)
    for path, vector in zip(view.values("filepath"), view.values(field)):
        assert float(np.dot(vector, reference[path])) >= 0.9999, path


def _start_slow(dataset, shard, task, folder, delay, go=True):
    tag = "%s-%s" % (task, shard.replace("/", "of"))
    ready = os.path.join(str(folder), "ready-" + tag)
    go_file = os.path.join(str(folder), "go")
    if go:
        open(go_file, "w").close()
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SHARD, ready, go_file, str(delay),
         "--dataset", dataset, "--field", "emb", "--shard", shard,
         "--task", task, "--dtype", "float32", "--batch-size", "1",
         "--device", "cpu", "--num-workers", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    proc.ready = ready
    return proc


def _wait_for(condition, procs, timeout=300):
    deadline = time.monotonic() + timeout
    while not condition():
        for proc in procs:
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(
                    "exited early (%s):\n%s" % (proc.returncode, err[-3000:])
                )
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _run_shard(dataset, shard, *args):
    return subprocess.run(
        [sys.executable, SCRIPT, "--dataset", dataset, "--field", "emb",
         "--shard", shard, "--dtype", "float32", "--batch-size", "4",
         "--device", "cpu", "--num-workers", "0"] + list(args),
        capture_output=True, text=True, timeout=600,
    )


def test_a_killed_shard_rerun_with_another_task_writes_nothing(
    zoo_source, space_pages, tmp_path
):
    ds = _space_dataset("jina-shard-killed", space_pages)

    # a retrieval shard, killed (SIGKILL) after its first few samples
    proc = _start_slow(ds.name, "0/1", "retrieval", tmp_path, delay=0.5)
    _wait_for(lambda: len(_stored(ds)) >= 3, [proc])
    proc.kill()
    proc.wait()
    before = _stored(ds)
    assert 3 <= len(before) < M

    # run again with another task: refused before anything is written
    bad = _run_shard(ds.name, "0/1", "--task", "code")
    assert bad.returncode == 2, bad.stdout + bad.stderr[-3000:]
    message = bad.stderr
    assert "Field 'emb'" in message
    assert "task='retrieval'" in message and "task='code'" in message
    assert "--task retrieval" in message and "delete_sample_field" in message
    after = _stored(ds)
    assert sorted(after) == sorted(before)
    for i, (vector, modified) in before.items():
        assert np.array_equal(after[i][0], vector) and after[i][1] == modified
    _assert_vectors_of(ds, "retrieval")
    assert ds.get_field("emb").info["jina_v4"]["task"] == "retrieval"

    # with its own task it resumes where it was killed
    ok = _run_shard(ds.name, "0/1", "--task", "retrieval")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "embedded %d samples" % (M - len(before)) in ok.stdout
    assert len(_stored(ds)) == M
    _assert_vectors_of(ds, "retrieval")
    ds.delete()


def test_two_shards_started_together_with_other_tasks_one_refuses(
    zoo_source, space_pages, tmp_path
):
    ds = _space_dataset("jina-shard-race", space_pages)
    shards = {"retrieval": "0/2", "code": "1/2"}
    procs = {
        task: _start_slow(ds.name, shard, task, tmp_path, delay=0.3, go=False)
        for task, shard in shards.items()
    }
    # both models loaded: both go for their first write at once
    _wait_for(
        lambda: all(os.path.exists(p.ready) for p in procs.values()),
        procs.values(),
    )
    open(os.path.join(str(tmp_path), "go"), "w").close()
    results = {task: p.communicate(timeout=600) for task, p in procs.items()}
    codes = {task: p.returncode for task, p in procs.items()}

    assert sorted(codes.values()) == [0, 2], results
    winner = min(codes, key=codes.get)
    loser = max(codes, key=codes.get)
    message = results[loser][1]
    assert "task=%r" % winner in message and "task=%r" % loser in message
    assert "--task %s" % winner in message

    # the field holds the winner's shard, in the winner's space, and
    # nothing from the loser
    stored = _stored(ds)
    winner_shard = int(shards[winner].split("/")[0])
    mine = {
        i for i in ds.values("id") if sharding.shard_of(i, 2) == winner_shard
    }
    assert set(stored) == mine
    assert "embedded %d samples" % len(mine) in results[winner][0]
    assert ds.get_field("emb").info["jina_v4"]["task"] == winner
    _assert_vectors_of(ds, winner)
    ds.delete()


def test_fields_claimed_at_the_same_moment_record_one_space(tmp_path):
    ds = fo.Dataset("jina-shard-claims", overwrite=True)
    ds.persistent = True
    ds.add_sample(fo.Sample(filepath="/nonexistent/page.png"))
    tasks = ["retrieval", "retrieval", "code", "text-matching"]
    rounds = 6
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(tmp_path), ds.name, task,
             str(rounds)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for task in tasks
    ]
    for r in range(rounds):
        prefix = "ready.%d." % r
        _wait_for(
            lambda: sum(
                f.startswith(prefix) for f in os.listdir(str(tmp_path))
            ) == len(procs),
            procs,
            timeout=120,
        )
        open(os.path.join(str(tmp_path), "go.%d" % r), "w").close()

    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        outcomes.append(
            {r: rest for r, *rest in map(json.loads, out.splitlines())}
        )

    ds.reload()
    for r in range(rounds):
        recorded = ds.get_field("f%d" % r).info["jina_v4"]
        assert recorded["owner"] == "jina_embeddings_v4"
        for task, outcome in zip(tasks, outcomes):
            if task == recorded["task"]:
                assert outcome[r] == ["ok"], (r, task, outcome)
            else:
                assert outcome[r] == ["refused", ["task"]], (r, task, outcome)
    ds.delete()


def test_fields_from_before_records_and_other_fields(zoo_source, space_pages):
    ds = _space_dataset("jina-shard-legacy", space_pages)
    ids = ds.values("id")
    kwargs = dict(batch_size=4, num_workers=0, dtype="float32", device="cpu")

    # written by compute_embeddings (or a shard killed before this
    # release): no record; the next shard records its options
    model = foz.load_zoo_model(
        MODEL_NAME, task="retrieval", dtype="float32", device="cpu"
    )
    ds.compute_embeddings(
        model, embeddings_field="plain", batch_size=4, num_workers=0
    )
    ds.select(ids[:4]).set_field("plain", None).save()
    n = sharding.embed_shard(ds, "plain", 0, 1, task="retrieval", **kwargs)
    assert n == 4
    assert ds.get_field("plain").info["jina_v4"]["task"] == "retrieval"
    _assert_vectors_of(ds, "retrieval", "plain")
    ds.select(ids[:2]).set_field("plain", None).save()
    with pytest.raises(sharding.FieldSpaceMismatch, match="task='retrieval'"):
        sharding.embed_shard(ds, "plain", 0, 1, task="code", **kwargs)
    assert len(_stored(ds, "plain")) == M - 2

    # recorded at the end of a run by an earlier release: the bare space,
    # and an option it lacks counts as its default
    ds.compute_embeddings(
        model, embeddings_field="old", batch_size=4, num_workers=0
    )
    ds.select(ids[:3]).set_field("old", None).save()
    old = options.vector_space({"task": "retrieval"})
    del old["min_pixels"]
    field = ds.get_field("old")
    field.info = {"jina_v4": old}
    field.save()
    with pytest.raises(sharding.FieldSpaceMismatch) as refused:
        sharding.embed_shard(ds, "old", 0, 1, task="text-matching", **kwargs)
    assert refused.value.differences == ["task"]
    assert "task='text-matching'" in str(refused.value)
    assert len(_stored(ds, "old")) == M - 3
    n = sharding.embed_shard(ds, "old", 0, 1, task="retrieval", **kwargs)
    assert n == 3
    _assert_vectors_of(ds, "retrieval", "old")

    # a field that is no field of vectors is left as it is
    ds.set_values(
        "ground_truth", [fo.Classification(label="a") for _ in range(M)]
    )
    for name in ("filepath", "ground_truth"):
        with pytest.raises(ValueError, match="Field '%s'.*cannot hold" % name):
            sharding.embed_shard(ds, name, 0, 1, task="retrieval", **kwargs)
    assert ds.values("ground_truth.label") == ["a"] * M
    ds.delete()


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    ds = fo.Dataset("jina-shard-mutex", overwrite=True)
    held = locks._collection()

    # killed while it held the field's lock, on this host
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    name = "field:%s:%s" % (ds._doc.id, "emb")
    held.insert_one({
        "_id": name, "token": "dead", "host": socket.gethostname(),
        "pid_namespace": locks.pid_namespace(), "pid": dead.pid,
        "beat": locks._now(),
    })
    start = time.monotonic()
    sharding.claim_field(ds, "emb", {"task": "code"})
    assert time.monotonic() - start < 10
    assert held.find_one({"_id": name}) is None
    assert ds.get_field("emb").info["jina_v4"]["task"] == "code"

    # on another machine: taken over once its heartbeat is stale_after old
    old = locks._now() - datetime.timedelta(seconds=5)
    held.insert_one(
        {"_id": "elsewhere", "token": "t", "host": "elsewhere", "pid": 1,
         "beat": old}
    )
    with locks.Lock("elsewhere", stale_after=2):
        assert held.find_one({"_id": "elsewhere"})["token"] != "t"
    assert held.find_one({"_id": "elsewhere"}) is None
    held.insert_one(
        {"_id": "fresh", "token": "t", "host": "elsewhere", "pid": 1,
         "beat": locks._now()}
    )
    with pytest.raises(locks.LockHeld, match="pid 1 on host elsewhere"):
        locks.Lock("fresh", stale_after=60).acquire(wait=0.3)
    held.delete_one({"_id": "fresh"})

    # a live holder on this host: a clear error after `wait`
    held.insert_one({
        "_id": name, "token": "t", "host": socket.gethostname(),
        "pid_namespace": locks.pid_namespace(), "pid": os.getppid(),
        "beat": locks._now(),
    })
    with pytest.raises(TimeoutError, match="being claimed by pid %d" % os.getppid()):
        sharding.claim_field(ds, "emb", {"task": "code"}, wait=0.3)
    held.delete_one({"_id": name})
    ds.delete()
