"""Benchmarks the jina_multivector index on its default store (LanceDB).

(a) Synthetic pages (300-800 float16 tokens of 128-d each, plus a 2048-d
    float32 single vector; single vectors drawn around 64 topics, as real
    page embeddings cluster) are written the way a build writes them, one
    batch at a time, then finalized: build time, disk bytes per page and
    disk over the raw bytes of the vectors, p50/p95 latency of a query
    (k 10, oversample 4; query encoding excluded) through the store and
    through the FiftyOne index, and the first stage's recall of the exact
    single-vector top 40. At 5,000 and 20,000 pages, to show growth.
(b) The App's grid query (``paginate_samples``, what the grid requests)
    for a page of 100 samples, on 500 samples: not indexed, indexed
    (nothing added to the samples), and with multi vectors in a sample
    field (the old layout), interleaved.

(c) Scale (``--scale N``, 100,000 pages by default when given): per
    ``multivector_dtype``, the index built by 2 writer processes at once
    (each writes every other batch, as two shards of a parallel build
    would), compaction (``finalize``), disk per page, query p50/p95 for
    oversample 4, 16 and None (exhaustive MaxSim), and peak memory of the
    writers and of the searching process; at N/4, N/2 and N, so that the
    10^6-page figures are projected from the measured growth (linear fit).

Usage::

    python benchmarks/bench_index.py            # 5,000 and 20,000 pages
    python benchmarks/bench_index.py --quick    # 500 and 2,000 pages
    python benchmarks/bench_index.py --scale 100000   # (c) only
"""

import argparse
import asyncio
import datetime
import os
import shutil
import sys
import tempfile
import time
import warnings

import _common
from jina_embeddings_v4.testing import support

import numpy as np

P50_TARGET_S = 0.150
GRID_RATIO_TARGET = 1.2
DISK_RATIO_TARGET = 1.2
DIM = 2048
TOPICS = 64
WRITE_BATCH = 32
GRID_SAMPLES = 500
GRID_PAGE = 100
GRID_REPEATS = 15


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--keep", action="store_true", help="keep the data")
    parser.add_argument(
        "--scale",
        type=int,
        default=None,
        help="run (c) only, up to this many pages (e.g. 100000)",
    )
    parser.add_argument(
        "--dtypes",
        default="float16,int8",
        help="multivector_dtype values of (c), comma-separated",
    )
    args = parser.parse_args()
    if args.scale is not None:
        return bench_scale(args.scale, args.dtypes.split(","), args.queries)

    tmp = tempfile.mkdtemp(prefix="bench-index-")
    os.environ.update(support.fiftyone_env(tmp))
    os.environ["FIFTYONE_DATABASE_URI"] = support.start_private_mongod(
        os.environ["FIFTYONE_DATABASE_DIR"]
    )
    import jina_embeddings_v4 as src
    sizes = (500, 2000) if args.quick else (5000, 20000)
    try:
        rows = [bench_size(src, n, tmp, args.queries) for n in sizes]
        print_sizes(rows)
        print_grid(bench_grid(src, tmp))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


# -- (a) the index ---------------------------------------------------------


def synthetic_pages(n, seed, start=0):
    """Yields batches of :class:`store.PageRows` of pages ``[start, n)``
    (each batch drawn from its own seed, so a range gives the same pages
    whoever writes it)."""
    from jina_embeddings_v4.index import store as st

    topics = _unit(
        np.random.default_rng(seed).normal(size=(TOPICS, DIM)).astype(np.float32)
    )
    for start in range(start, n, WRITE_BATCH):
        rng = np.random.default_rng([seed, start])
        m = min(WRITE_BATCH, n - start)
        ids = ["%024x" % (start + i + 1) for i in range(m)]
        centers = topics[rng.integers(0, TOPICS, m)]
        # cosine about 0.6 to the page's topic
        noise = rng.normal(size=(m, DIM)) * (1.3 / np.sqrt(DIM))
        singles = _unit(centers + noise)
        lengths = rng.integers(300, 801, m)
        multis = [
            _unit(rng.normal(size=(int(t), 128)).astype(np.float32)).astype(
                np.float16
            )
            for t in lengths
        ]
        grids = [(int(t) - 14, 1, 14) for t in lengths]
        yield st.PageRows(
            ids=ids,
            singles=singles.astype(np.float32),
            multis=multis,
            grids=grids,
        )


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def bench_size(src, n, tmp, n_queries):
    import fiftyone as fo
    import fiftyone.brain as fob

    from jina_embeddings_v4.index import store as st
    from jina_embeddings_v4.index.lancedb_store import LanceDBStore

    uri = os.path.join(tmp, "lance-%d" % n)
    store = LanceDBStore(uri, "pages")
    raw = 0
    start = time.perf_counter()
    for rows in synthetic_pages(n, seed=n):
        store.upsert(rows)
        raw += rows.singles.nbytes + sum(m.nbytes for m in rows.multis)
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    store.finalize()
    finalize_s = time.perf_counter() - start
    disk = _folder_bytes(uri)

    rng = np.random.default_rng(1)
    all_singles = np.concatenate(
        [r.singles for r in synthetic_pages(n, seed=n)]
    )
    all_ids = ["%024x" % (i + 1) for i in range(n)]
    queries = []
    for q in range(n_queries):
        target = all_singles[rng.integers(0, n)]
        single = _unit(target + rng.normal(size=DIM) * (1.0 / np.sqrt(DIM)))
        multi = _unit(rng.normal(size=(20, 128))).astype(np.float32)
        queries.append(
            st.Query(singles=single[None].astype(np.float32), multis=[multi])
        )

    # recall of the first stage against the exact single-vector top 40
    recalls = []
    for query in queries[:10]:
        exact = np.argsort(-(all_singles @ query.singles[0]))[:40]
        got, _ = store._first_stage(query, 40, None, False)
        recalls.append(len(set(got) & {all_ids[i] for i in exact}) / 40)

    store_times = _latencies(lambda q: store.search(q, 10, candidates=40), queries)

    # the same through FiftyOne: a dataset whose sample ids are the rows'
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath="/page/%d.png" % i) for i in range(n)])
    real_ids = ds.values("id")
    mapping = dict(zip(all_ids, real_ids))
    uri2 = os.path.join(tmp, "lance-fo-%d" % n)
    fo_store = LanceDBStore(uri2, "pages")
    for rows in synthetic_pages(n, seed=n):
        rows.ids = [mapping[i] for i in rows.ids]
        fo_store.upsert(rows)
    fo_store.finalize()
    from jina_embeddings_v4.index import backend

    config = backend.JinaMultivectorSimilarityConfig(
        model="jinaai/jina-embeddings-v4", uri=uri2, table_name="pages"
    )
    index = backend.JinaMultivectorSimilarityIndex(
        ds, config, None, backend=config.build()
    )
    index_times = _latencies(
        lambda q: index.sort_by_similarity(q, k=10).values("id"), queries
    )
    ds.delete()
    del fob
    return {
        "n": n,
        "write_s": write_s,
        "finalize_s": finalize_s,
        "disk_per_page": disk / n,
        "disk_ratio": disk / raw,
        "store": store_times,
        "index": index_times,
        "recall": float(np.mean(recalls)),
    }


def _latencies(fn, queries):
    fn(queries[0])  # warm up
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - start)
    return np.percentile(times, 50), np.percentile(times, 95)


def _folder_bytes(path):
    return sum(
        os.path.getsize(os.path.join(root, f))
        for root, _, files in os.walk(path)
        for f in files
    )


def print_sizes(rows):
    print()
    print("(a) jina_multivector index, LanceDB on local disk")
    print(
        "%8s %9s %10s %12s %10s %17s %17s %8s"
        % (
            "pages",
            "write s",
            "finalize s",
            "disk/page",
            "disk/raw",
            "store p50/p95 ms",
            "index p50/p95 ms",
            "recall",
        )
    )
    for r in rows:
        print(
            "%8d %9.1f %10.1f %9.1f KB %10.3f %8.1f/%-8.1f %8.1f/%-8.1f %8.3f"
            % (
                r["n"],
                r["write_s"],
                r["finalize_s"],
                r["disk_per_page"] / 1000,
                r["disk_ratio"],
                r["store"][0] * 1000,
                r["store"][1] * 1000,
                r["index"][0] * 1000,
                r["index"][1] * 1000,
                r["recall"],
            )
        )
    last = rows[-1]
    p50 = max(last["store"][0], last["index"][0])
    print(
        "p50 at %d pages: %.1f ms (target <= %.0f ms): %s"
        % (
            last["n"],
            p50 * 1000,
            P50_TARGET_S * 1000,
            "PASS" if p50 <= P50_TARGET_S else "FAIL",
        )
    )
    print(
        "disk / raw vector bytes: %.3f (target <= %.1f): %s"
        % (
            last["disk_ratio"],
            DISK_RATIO_TARGET,
            "PASS" if last["disk_ratio"] <= DISK_RATIO_TARGET else "FAIL",
        )
    )


# -- (c) scale: a parallel build, per dtype, projected to 10^6 pages --------

SCALE_WRITERS = 2
PROJECTED = 1_000_000


def _store(uri, dtype):
    from jina_embeddings_v4.index.lancedb_store import LanceDBStore

    if dtype == "float16":
        return LanceDBStore(uri, "pages")
    return LanceDBStore(uri, "pages", multivector_dtype=dtype)


def _writer(uri, dtype, start, stop, seed, worker, workers, peaks):
    """One writer process: every ``workers``-th batch of pages
    ``[start, stop)`` from ``worker`` on."""
    store = _store(uri, dtype)
    for k, rows in enumerate(synthetic_pages(stop, seed, start=start)):
        if k % workers == worker:
            store.upsert(rows)
    peaks.put(_own_peak_rss())


def _own_peak_rss():
    """This process's own peak RSS (VmHWM: ru_maxrss of a spawned process
    can carry its parent's peak over the exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _peak_rss():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def bench_scale(n, dtypes, n_queries):
    import multiprocessing

    from jina_embeddings_v4.index import store as st

    warning = _common.busy_warning()
    tmp = tempfile.mkdtemp(prefix="bench-index-scale-")
    steps = sorted({max(n // 4, 1), max(n // 2, 1), n})
    print(
        "(c) scale: LanceDB on local disk, %d writer processes, synthetic "
        "pages of 300-800 tokens (mean 550), k 10, %d queries, load average "
        "%.2f" % (SCALE_WRITERS, n_queries, os.getloadavg()[0])
    )
    if warning:
        print(warning)
    rng = np.random.default_rng(5)
    queries = [
        st.Query(
            singles=_unit(rng.normal(size=(1, DIM))).astype(np.float32),
            multis=[_unit(rng.normal(size=(20, 128))).astype(np.float32)],
        )
        for _ in range(n_queries)
    ]
    context = multiprocessing.get_context("spawn")
    results = []
    try:
        for dtype in dtypes:
            uri = os.path.join(tmp, dtype)
            done = 0
            build_s = 0.0
            for step in steps:
                peaks = context.Queue()
                start = time.perf_counter()
                procs = [
                    context.Process(
                        target=_writer,
                        args=(uri, dtype, done, step, 11, w, SCALE_WRITERS, peaks),
                    )
                    for w in range(SCALE_WRITERS)
                ]
                for p in procs:
                    p.start()
                writer_peak = max(peaks.get() for _ in procs)
                for p in procs:
                    p.join()
                    assert p.exitcode == 0, "a writer failed"
                build_s += time.perf_counter() - start
                start = time.perf_counter()
                store = _store(uri, dtype)
                store.finalize()
                finalize_s = time.perf_counter() - start
                # the disk of the latest version: finalize keeps superseded
                # versions for CLEANUP_GRACE (readers of them), a bench has none
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    store.table.optimize(
                        cleanup_older_than=datetime.timedelta(0),
                        delete_unverified=True,
                    )
                assert store.count() == step, (store.count(), step)
                done = step
                row = {
                    "dtype": dtype,
                    "n": step,
                    "build_s": build_s,
                    "finalize_s": finalize_s,
                    "disk_per_page": _folder_bytes(uri) / step,
                    "writer_peak": writer_peak,
                }
                for name, oversample in (("o4", 4), ("o16", 16), ("all", None)):
                    candidates = None if oversample is None else 10 * oversample
                    row[name] = _latencies(
                        lambda q: store.search(q, 10, candidates=candidates),
                        queries,
                    )
                row["search_peak"] = _peak_rss()
                results.append(row)
                print(_scale_line(row), flush=True)
                store.close()
            shutil.rmtree(uri, ignore_errors=True)
        _print_projection(results)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _scale_line(r):
    return (
        "%-8s %8d pages: build %7.1f s (%5.0f pages/s) + finalize %6.1f s, "
        "disk %6.1f KB/page, p50/p95 ms: oversample 4 %.0f/%.0f, 16 "
        "%.0f/%.0f, None %.0f/%.0f; peak RSS writer %.2f GB, search %.2f GB"
        % (
            r["dtype"], r["n"], r["build_s"], r["n"] / r["build_s"],
            r["finalize_s"], r["disk_per_page"] / 1000,
            r["o4"][0] * 1000, r["o4"][1] * 1000,
            r["o16"][0] * 1000, r["o16"][1] * 1000,
            r["all"][0] * 1000, r["all"][1] * 1000,
            r["writer_peak"] / 1e9, r["search_peak"] / 1e9,
        )
    )


def _print_projection(results):
    print()
    print(
        "projected to %d pages from the largest size measured: build at its "
        "rate, disk at its bytes per page, exhaustive search linear in pages "
        "(oversample searches read k * oversample pages whatever the size: "
        "see their growth above)" % PROJECTED
    )
    for dtype in dict.fromkeys(r["dtype"] for r in results):
        last = [r for r in results if r["dtype"] == dtype][-1]
        scale = PROJECTED / last["n"]
        print(
            "%-8s build %.1f h with %d writers, disk %.0f GB, exhaustive "
            "search p50 %.0f s"
            % (
                dtype,
                last["build_s"] * scale / 3600,
                SCALE_WRITERS,
                last["disk_per_page"] * PROJECTED / 1e9,
                last["all"][0] * scale,
            )
        )


# -- (b) the App's grid ------------------------------------------------------


def bench_grid(src, tmp):
    import fiftyone as fo
    from fiftyone.server.samples import paginate_samples

    from jina_embeddings_v4.index import store as st
    from jina_embeddings_v4.index.lancedb_store import LanceDBStore

    def make(name):
        ds = fo.Dataset(name, overwrite=True)
        ds.add_samples(
            [
                fo.Sample(filepath="/page/%d.png" % i, kind="page")
                for i in range(GRID_SAMPLES)
            ]
        )
        return ds

    plain = make("grid-plain")
    indexed = make("grid-indexed")
    in_samples = make("grid-in-samples")
    rows = list(synthetic_pages(GRID_SAMPLES, seed=7))
    ids = indexed.values("id")
    store = LanceDBStore(os.path.join(tmp, "lance-grid"), "pages")
    k = 0
    for r in rows:
        r.ids = ids[k : k + len(r.ids)]
        k += len(r.ids)
        store.upsert(r)
    store.finalize()
    multis = [m for r in rows for m in r.multis]
    in_samples.set_values("jina_multivectors", multis)

    def grid(ds):
        def run():
            result = asyncio.run(
                paginate_samples(
                    ds.name, [], {}, GRID_PAGE, pagination_data=True
                )
            )
            assert len(result.edges) == GRID_PAGE

        return run

    times = _common.best_times(
        [grid(plain), grid(indexed), grid(in_samples)], repeats=GRID_REPEATS
    )
    del st
    return times


def print_grid(times):
    plain, indexed, in_samples = times
    ratio = indexed / plain
    print()
    print(
        "(b) App grid query, %d of %d samples (best of %d)"
        % (GRID_PAGE, GRID_SAMPLES, GRID_REPEATS)
    )
    print("  not indexed                     %8.1f ms" % (plain * 1000))
    print("  jina_multivector index          %8.1f ms" % (indexed * 1000))
    print("  multi vectors in a sample field %8.1f ms" % (in_samples * 1000))
    print(
        "  indexed / not indexed: %.2f (target <= %.1f): %s"
        % (ratio, GRID_RATIO_TARGET, "PASS" if ratio <= GRID_RATIO_TARGET else "FAIL")
    )
    print("  field / not indexed:   %.2f" % (in_samples / plain))


if __name__ == "__main__":
    sys.exit(main())
