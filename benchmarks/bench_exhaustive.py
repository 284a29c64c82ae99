#!/usr/bin/env python
"""Exhaustive MaxSim (``oversample=None``) over a LanceDB index: latency,
memory, and what int8 multi vectors cost in exactness.

20,000 synthetic pages (default) of ``--tokens`` unit-length 128-d tokens
(1030: a page at Jina v4's default pixel budget, with the template's
tokens) are written once into a float16 and an int8 table. Pages belong to
one of 64 topics (tokens near the topic's directions), queries of
``--query-tokens`` tokens to a topic, so a query has real best pages as
well as near ties. While writing, exact float32 MaxSim of every query over
every page is computed from the unrounded vectors: the reference.

Printed, per multivector_dtype: bytes per page on disk (the whole table,
and its multi vectors: less what a one-token page of that dtype costs;
int8 tables keep their single vectors in float16), search p50/p95
(k 10, the store read in batches and scored as it streams), the RSS
growth above the level before the searches (sampled every 5 ms), the
worst error of a returned score against float32 and the top-10 agreement
with float32 (the share of float32's top 10 that the search returns);
then the same per dtype with ``scan_cache=True`` (rows ``+scan``: the
flat copy's bytes per page beside the table's, the time of the first
search, which makes the copy, apart).
With the ``maxsim-cpu`` package importable, its ``maxsim_scores_variable``
runs on the same pages (float32, as it takes them) against our kernel.

    python benchmarks/bench_exhaustive.py [--pages 20000] [--tokens 1030]
"""

import argparse
import datetime
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings

import numpy as np
import torch

from _common import add_threads_option, busy_warning, set_threads

from jina_embeddings_v4.index import store as st
from jina_embeddings_v4.index.lancedb_store import LanceDBStore
from jina_embeddings_v4.scoring import flat_maxsim, quantize

DIM = 128
SINGLE_DIM = 2048
TOPICS = 64
DIRECTIONS = 32
WRITE_CHUNK = 250
ONE = "one-token-"


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class Corpus(object):
    """Topic directions, and pages drawn near them, chunk by chunk."""

    def __init__(self, seed, tokens):
        rng = np.random.default_rng(seed)
        self.centres = _unit(rng.standard_normal((TOPICS, DIRECTIONS, DIM)))
        self.centres = self.centres.astype(np.float32)
        self.tokens = tokens
        self.seed = seed

    def pages(self, start, stop):
        rng = np.random.default_rng((self.seed, start))
        n = stop - start
        topic = np.arange(start, stop) % TOPICS
        which = rng.integers(0, DIRECTIONS, size=(n, self.tokens))
        noise = rng.standard_normal((n, self.tokens, DIM), dtype=np.float32)
        x = self.centres[topic[:, None], which] + noise * (1.2 / DIM**0.5)
        return _unit(x).astype(np.float32)

    def queries(self, n, n_tokens):
        rng = np.random.default_rng(self.seed + 1)
        out = []
        for i in range(n):
            which = rng.integers(0, DIRECTIONS, size=n_tokens)
            noise = rng.standard_normal((n_tokens, DIM), dtype=np.float32)
            q = self.centres[(7 * i) % TOPICS, which] + noise * (1.5 / DIM**0.5)
            out.append(_unit(q).astype(np.float32))
        return out


def folder_size(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def build(tmp, corpus, n_pages, queries):
    """Writes both tables; returns the stores and the float32 reference
    scores ``[n_queries, n_pages]``."""
    stores = {
        d: LanceDBStore(os.path.join(tmp, d), "pages", multivector_dtype=d)
        for d in quantize.MULTIVECTOR_DTYPES
    }
    # pages of one token: what a page costs besides its multi vectors
    # (the single vector, in the table and in its IVF index, the id, ...):
    # per dtype, as int8 tables keep their single vectors in float16
    for d in quantize.MULTIVECTOR_DTYPES:
        stores[ONE + d] = LanceDBStore(
            os.path.join(tmp, ONE + d), "pages", multivector_dtype=d
        )
    reference = np.empty((len(queries), n_pages), np.float32)
    offsets = np.arange(WRITE_CHUNK + 1) * corpus.tokens
    rng = np.random.default_rng(5)
    for start in range(0, n_pages, WRITE_CHUNK):
        stop = min(start + WRITE_CHUNK, n_pages)
        pages = corpus.pages(start, stop)
        flat = pages.reshape(-1, DIM)
        reference[:, start:stop] = flat_maxsim.maxsim_flat(
            queries, flat, offsets[: stop - start + 1]
        )
        singles = _unit(rng.standard_normal((stop - start, SINGLE_DIM)))
        rows = st.PageRows(
            ids=["%024x" % i for i in range(start, stop)],
            singles=singles.astype(np.float32),
            multis=list(pages),
            grids=[(32, 32, 4)] * (stop - start),
        )
        for name, s in stores.items():
            if name.startswith(ONE):
                s.upsert(
                    st.PageRows(
                        ids=rows.ids,
                        singles=rows.singles,
                        multis=[m[:1] for m in rows.multis],
                        grids=rows.grids,
                    )
                )
            else:
                s.upsert(rows)
    for s in stores.values():
        s.finalize()
        # the folder as a user's looks once the cleanup grace is over: the
        # latest version only (no other process reads these tables)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*cleanup_older_than")
            s.table.optimize(
                cleanup_older_than=datetime.timedelta(0),
                delete_unverified=True,
            )
    return stores, reference


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS(object):
    """The highest RSS seen while in the ``with`` block (every 5 ms)."""

    def __enter__(self):
        self.start = rss_bytes()
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    @property
    def growth(self):
        return self.peak - self.start


def measure(store, queries, reference, n_pages):
    """Latency of k 10 searches and RSS growth while they run; against
    the float32 reference: the worst error of a returned score and the
    share of float32's top 10 returned."""
    position = {"%024x" % i: i for i in range(n_pages)}
    searches = [
        st.Query(singles=np.zeros((1, SINGLE_DIM), np.float32), multis=[q])
        for q in queries
    ]
    store.search(searches[0], k=10)  # the table's files in the page cache
    times, worst, agreement = [], 0.0, []
    with PeakRSS() as peak:
        for q, ref in zip(searches, reference):
            start = time.perf_counter()
            ids, scores = store.search(q, k=10)
            times.append(time.perf_counter() - start)
            rows = [position[i] for i in ids]
            worst = max(worst, float(np.abs(np.asarray(scores) - ref[rows]).max()))
            truth = set(np.argsort(-ref, kind="stable")[:10].tolist())
            agreement.append(len(truth & set(rows)) / 10)
    return {
        "p50": float(np.percentile(times, 50)),
        "p95": float(np.percentile(times, 95)),
        "rss": peak.growth,
        "worst": worst,
        "top10": float(np.mean(agreement)),
    }


def compare_maxsim_cpu(corpus, queries, n_pages, repeats=3):
    """Our kernel against maxsim-cpu on the same pages (float16 tokens for
    ours, float32 for maxsim-cpu, as each takes them)."""
    try:
        import maxsim_cpu
    except ImportError:
        print("\nmaxsim-cpu: not importable (pip install maxsim-cpu); skipped")
        return
    pages = corpus.pages(0, n_pages)
    f16 = pages.reshape(-1, DIM).astype(np.float16)
    f32_from_f16 = f16.astype(np.float32)
    offsets = np.arange(n_pages + 1) * corpus.tokens
    docs = list(f32_from_f16.reshape(n_pages, corpus.tokens, DIM))
    q = queries[0]
    exact = (
        np.einsum("qd,ptd->pqt", q.astype(np.float64), f32_from_f16.reshape(n_pages, corpus.tokens, DIM).astype(np.float64))
        .max(axis=2)
        .sum(axis=1)
    )

    def best(fn):
        out, t = None, float("inf")
        for _ in range(repeats):
            s = time.perf_counter()
            out = fn()
            t = min(t, time.perf_counter() - s)
        return t, np.asarray(out, np.float64)

    ours_t, ours = best(lambda: flat_maxsim.maxsim_flat([q], f16, offsets)[0])
    theirs_t, theirs = best(lambda: maxsim_cpu.maxsim_scores_variable(q, docs))
    conv_t, _ = best(lambda: f16.astype(np.float32))
    print(
        "\nmaxsim-cpu vs ours, %d pages x %d tokens, %d query tokens "
        "(best of %d)" % (n_pages, corpus.tokens, len(q), repeats)
    )
    print("%-44s %10s %14s" % ("", "seconds", "max |err| f64"))
    print("%-44s %10.3f %14.2e" % ("ours (float16 tokens, flat_maxsim)", ours_t, np.abs(ours - exact).max()))
    print("%-44s %10.3f %14.2e" % ("maxsim-cpu (float32 tokens given)", theirs_t, np.abs(theirs - exact).max()))
    print("%-44s %10.3f" % ("  + float16 -> float32 it would need", theirs_t + conv_t))
    print("same order: %s" % (np.argsort(-ours, kind="stable").tolist() == np.argsort(-theirs, kind="stable").tolist()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=20000)
    parser.add_argument("--tokens", type=int, default=1030)
    parser.add_argument("--query-tokens", type=int, default=20)
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--compare-pages", type=int, default=500)
    add_threads_option(parser)
    args = parser.parse_args(argv)
    set_threads(parser, args)

    warning = busy_warning()
    corpus = Corpus(22, args.tokens)
    queries = corpus.queries(args.queries, args.query_tokens)
    tmp = tempfile.mkdtemp(prefix="bench-exhaustive-")
    try:
        start = time.time()
        stores, reference = build(tmp, corpus, args.pages, queries)
        print(
            "%d pages x %d tokens x 128 (synthetic, 64 topics), %d queries "
            "of %d tokens; written in %.0f s; torch threads %d"
            % (
                args.pages,
                args.tokens,
                args.queries,
                args.query_tokens,
                time.time() - start,
                torch.get_num_threads(),
            )
        )
        # a one-token page less its token (256 B float16, 132 B int8)
        token = {"float16": 256, "int8": 132}
        base = {}
        for d in quantize.MULTIVECTOR_DTYPES:
            one = stores.pop(ONE + d)
            base[d] = folder_size(os.path.join(tmp, ONE + d)) / args.pages - token[d]
            one.drop()
        sizes = {d: folder_size(os.path.join(tmp, d)) / args.pages for d in stores}
        singles = {d: stores[d].stored_single_dtype() for d in stores}
        for d, s in stores.items():
            kinds = [
                i.index_type
                for i in s.table.list_indices()
                if list(i.columns) == ["vector"]
            ]
            print(
                "%s: single vectors %s, their index: %s"
                % (d, singles[d], ", ".join(kinds) or "none (exact scan)")
            )
        print(
            "\n%-10s %12s %12s %8s %8s %10s %12s %8s"
            % ("dtype", "bytes/page", "multi B/pg", "p50 s", "p95 s", "RSS +MB", "worst err", "top-10")
        )
        for dtype, s in stores.items():
            m = measure(s, queries, reference, args.pages)
            print(
                "%-10s %12.0f %12.0f %8.3f %8.3f %10.1f %12.2e %8.3f"
                % (dtype, sizes[dtype], sizes[dtype] - base[dtype], m["p50"], m["p95"], m["rss"] / 1e6, m["worst"], m["top10"])
            )
        # the same tables read through scan_cache=True: the flat copy is
        # made by the first exhaustive search (timed apart), then read by
        # every later one
        for dtype in quantize.MULTIVECTOR_DTYPES:
            cached = LanceDBStore(
                os.path.join(tmp, dtype), "pages", multivector_dtype=dtype,
                scan_cache=True,
            )
            probe = st.Query(
                singles=np.zeros((1, SINGLE_DIM), np.float32),
                multis=[queries[0]],
            )
            start = time.perf_counter()
            cached.search(probe, k=10)
            made = time.perf_counter() - start
            m = measure(cached, queries, reference, args.pages)
            copy = os.path.getsize(cached._scan_path()) / args.pages
            print(
                "%-10s %12s %12.0f %8.3f %8.3f %10.1f %12.2e %8.3f"
                % (dtype + "+scan", "+%.0f" % copy, sizes[dtype] - base[dtype], m["p50"], m["p95"], m["rss"] / 1e6, m["worst"], m["top10"])
            )
            print(
                "  scan_cache=True: the copy (%.0f bytes a page) made by the "
                "first search in %.1f s" % (copy, made)
            )
        print(
            "int8 / float16 bytes per page on disk: %.3f (whole table), "
            "%.3f (multi vectors: the table less the rest of a page, %.0f "
            "bytes in the float16 table, single vectors %s; %.0f in the "
            "int8 one, single vectors %s)"
            % (
                sizes["int8"] / sizes["float16"],
                (sizes["int8"] - base["int8"])
                / (sizes["float16"] - base["float16"]),
                base["float16"],
                singles["float16"],
                base["int8"],
                singles["int8"],
            )
        )
        compare_maxsim_cpu(corpus, queries, min(args.compare_pages, args.pages))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if warning:
        print(warning)
    return 0


if __name__ == "__main__":
    sys.exit(main())
