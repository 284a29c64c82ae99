#!/usr/bin/env python
"""Concurrency and faults: rows lost, duplicated or mixed (all should be 0).

Four runs, each against real processes, a real FiftyOne database and
LanceDB, with the tiny checkpoint:

1. a ``compute_similarity`` build killed (SIGKILL) at random points and
   run again until it finishes, compared with a build that ran once;
2. two builds of one brain key started together;
3. writers of disjoint pages into one LanceDB table, killed at random
   points and restarted, beside readers searching all the while;
4. two processes searching at the same moment, with ``heatmap_field``:
   after each round, the maps of how many queries the field holds.

    python benchmarks/bench_faults.py [--pages 48] [--kills 4] [--seed 0]
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from _common import isolate_fiftyone

from jina_embeddings_v4.testing import documents
from jina_embeddings_v4.testing.support import install_source

MODEL = "jinaai/jina-embeddings-v4"

BUILD = """
import sys
import fiftyone as fo, fiftyone.brain as fob
ds = fo.load_dataset(sys.argv[1])
try:
    fob.compute_similarity(
        ds, model=%r, model_kwargs={"dtype": "float32"},
        backend="jina_multivector", brain_key=sys.argv[2], uri=sys.argv[3],
        batch_size=2,
    )
    print("BUILT")
except Exception as e:
    print("REFUSED", type(e).__name__, str(e)[:200])
""" % MODEL

WRITER = """
import sys
import numpy as np
from jina_embeddings_v4.index import lancedb_store, store as st
uri, first, n, batch = sys.argv[1], *map(int, sys.argv[2:5])
s = lancedb_store.LanceDBStore(uri, "pages")
ids = ["%024x" % (first + i) for i in range(n)]
todo = [i for i in ids if i not in s.has(ids)]
for start in range(0, len(todo), batch):
    chunk = todo[start:start + batch]
    rows = [np.random.default_rng(int(i, 16)) for i in chunk]
    s.upsert(st.PageRows(
        ids=chunk,
        singles=np.stack([r.standard_normal(16) for r in rows]).astype(np.float32),
        multis=[r.standard_normal((6, 128)).astype(np.float16) for r in rows],
        grids=[(2, 2, 1)] * len(chunk)))
s.finalize()
print("WROTE")
"""

READER = """
import sys, time
import numpy as np
from jina_embeddings_v4.index import lancedb_store, store as st
s = lancedb_store.LanceDBStore(sys.argv[1], "pages")
q = st.Query(singles=np.ones((1, 16), np.float32),
             multis=[np.ones((3, 128), np.float32)])
ok = failed = 0
end = time.time() + float(sys.argv[2])
while time.time() < end:
    try:
        if s.exists():
            s.search(q, 5, candidates=20)
        ok += 1
    except Exception as e:
        failed += 1
        print(str(e)[:200], file=sys.stderr)
print("%d %d" % (ok, failed))
"""

SEARCH = """
import json, os, sys, time
import fiftyone as fo
name, query, rounds, folder, me, other = sys.argv[1:7]
ds = fo.load_dataset(name)


def meet(step):
    open(os.path.join(folder, "%s_%s" % (step, me)), "w").close()
    while not os.path.exists(os.path.join(folder, "%s_%s" % (step, other))):
        time.sleep(0.005)


for r in range(int(rounds)):
    meet("go%d" % r)
    ds.sort_by_similarity("%s %d" % (query, r), k=4, brain_key="maps")
    meet("done%d" % r)
    maps = [m for m in ds.values("query_heatmap") if m is not None]
    print("ROUND", json.dumps([len(maps), len({m["query"] for m in maps})]))
    meet("checked%d" % r)
"""


def _python(code, *args):
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)] + [str(a) for a in args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _row(name, expected, ids, mixed, errors):
    lost = len(set(expected) - set(ids))
    duplicated = len(ids) - len(set(ids))
    stray = len(set(ids) - set(expected))
    print(
        "%-44s %6d %6d %5d %10d %6d %6s"
        % (name, len(expected), len(ids), lost + stray, duplicated, mixed, errors)
    )
    return lost + stray + duplicated + mixed


def killed_build(ds, uri, kills, rng):
    """A build killed at random points, then run until it finishes."""
    import fiftyone.brain as fob

    reference = fob.compute_similarity(
        ds,
        model=MODEL,
        model_kwargs={"dtype": "float32"},
        backend="jina_multivector",
        brain_key="reference",
        uri=uri,
        batch_size=2,
    )
    from jina_embeddings_v4.index.backend import default_table_name
    from jina_embeddings_v4.index.lancedb_store import LanceDBStore

    store = LanceDBStore(uri, default_table_name(ds, "killed"))
    total = len(ds)
    done_kills = 0
    for attempt in range(kills + 5):
        proc = _python(BUILD, ds.name, "killed", uri)
        stored = store.count()
        if done_kills < kills and stored < total - 1:
            # kill once the build has stored a random number more pages
            target = rng.randint(stored + 1, total - 1)
            while proc.poll() is None and store.count() < target:
                time.sleep(0.02)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                done_kills += 1
        out, err = proc.communicate(timeout=900)
        if proc.returncode == 0 and "BUILT" in out:
            break
    ds.reload()
    index = ds.load_brain_results("killed")
    ids = list(index.sample_ids)
    ref = dict(zip(*reversed(reference.get_embeddings()[:2])))
    got = index.get_embeddings()
    mixed = sum(
        1
        for vector, sample_id in zip(got[0], got[1])
        if not np.allclose(vector, ref[sample_id], atol=1e-5)
    )
    name = "build killed %d times mid-way, then finished" % done_kills
    return _row(name, ds.values("id"), ids, mixed, 0)


def racing_builds(ds, uri):
    procs = [_python(BUILD, ds.name, "race", uri) for _ in range(2)]
    outs = [p.communicate(timeout=900)[0].strip().splitlines()[-1] for p in procs]
    refused = sum(o.startswith("REFUSED") for o in outs)
    ds.reload()
    ids = list(ds.load_brain_results("race").sample_ids)
    name = "2 builds of one key at once (%d refused)" % refused
    return _row(name, ds.values("id"), ids, 0, 0)


def writers_and_readers(uri, pages, kills, rng):
    from jina_embeddings_v4.index import lancedb_store

    per = pages // 2
    firsts = [10**6, 2 * 10**6]
    readers = [_python(READER, uri, 30) for _ in range(2)]
    writers = [_python(WRITER, uri, f, per, 4) for f in firsts]
    done_kills = 0
    deadline = time.time() + 25
    while time.time() < deadline:
        time.sleep(rng.uniform(0.5, 2.0))
        w = rng.randrange(2)
        if done_kills < kills and writers[w].poll() is None:
            writers[w].send_signal(signal.SIGKILL)
            writers[w].wait()
            done_kills += 1
            writers[w] = _python(WRITER, uri, firsts[w], per, 4)
        if all(w.poll() is not None for w in writers) and done_kills >= kills:
            break
    errors = 0
    for w in writers:
        out, err = w.communicate(timeout=300)
        if "WROTE" not in out:
            errors += 1
            print(err[-1000:], file=sys.stderr)
    failed_reads = 0
    for r in readers:
        out, _ = r.communicate(timeout=300)
        failed_reads += int(out.split()[-1])

    store = lancedb_store.LanceDBStore(uri, "pages")
    ids = store.ids()
    rows = store.fetch(ids)
    mixed = 0
    for sample_id, single, multi in zip(rows.ids, rows.singles, rows.multis):
        r = np.random.default_rng(int(sample_id, 16))
        expected_single = r.standard_normal(16).astype(np.float32)
        expected_multi = r.standard_normal((6, 128)).astype(np.float16)
        if not (
            np.array_equal(single, expected_single)
            and np.array_equal(multi, expected_multi)
        ):
            mixed += 1
    expected = ["%024x" % (f + i) for f in firsts for i in range(per)]
    name = "2 writers killed %d times, 2 readers" % done_kills
    return _row(name, expected, ids, mixed, "%d/%d" % (errors, failed_reads))


def racing_searches(ds, uri, folder, rounds):
    import fiftyone.brain as fob

    fob.compute_similarity(
        ds,
        model=MODEL,
        model_kwargs={"dtype": "float32"},
        backend="jina_multivector",
        brain_key="maps",
        uri=uri,
        heatmap_field="query_heatmap",
        heatmap_k=4,
    )
    os.makedirs(folder, exist_ok=True)
    procs = [
        _python(SEARCH, ds.name, q, rounds, folder, me, other)
        for q, me, other in (("invoice total", "a", "b"), ("ship to", "b", "a"))
    ]
    seen = []
    for p in procs:
        out, _ = p.communicate(timeout=900)
        seen += [json.loads(l[6:]) for l in out.splitlines() if l.startswith("ROUND ")]
    mixed = sum(1 for n, queries in seen if n != 4 or queries != 1)
    print(
        "%-44s %6d %6d %5s %10s %6d %6s"
        % ("2 searches at once x %d, heatmap_field" % rounds,
           2 * rounds, len(seen), "-", "-", mixed, "-")
    )
    return mixed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=48)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    tmp = isolate_fiftyone()
    import fiftyone as fo

    install_source(os.environ["FIFTYONE_MODEL_ZOO_DIR"])
    records = documents.write_dataset_images(
        os.path.join(tmp, "pages"), n=args.pages, seed=3, scale=0.4
    )
    ds = fo.Dataset("bench-faults")
    ds.add_samples([fo.Sample(filepath=r["filepath"]) for r in records])

    print(
        "%-44s %6s %6s %5s %10s %6s %6s"
        % ("run", "rows", "found", "lost", "duplicated", "mixed", "errors")
    )
    bad = 0
    bad += killed_build(ds, os.path.join(tmp, "lance-build"), args.kills, rng)
    bad += racing_builds(ds, os.path.join(tmp, "lance-race"))
    bad += writers_and_readers(
        os.path.join(tmp, "lance-rw"), args.pages * 10, args.kills, rng
    )
    bad += racing_searches(
        ds, os.path.join(tmp, "lance-maps"), os.path.join(tmp, "meet"), args.rounds
    )
    print("rows lost, duplicated or mixed in all runs: %d" % bad)
    print("(errors: writers that failed / reads that failed)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
