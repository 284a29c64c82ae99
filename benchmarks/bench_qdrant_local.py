#!/usr/bin/env python
"""What one search costs in qdrant-client's local mode (``path=``) against
LanceDB, on the same synthetic pages: seconds and peak memory per search.

Local mode keeps no server: each call opens the folder (which loads the
whole collection into the process) and closes it, so that the App's
server and a Python session can take turns. This measures that cost.

    python benchmarks/bench_qdrant_local.py [--pages 400] [--tokens 620]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np

from jina_embeddings_v4.index import store as st

# one search in a fresh process: its peak memory is the search's
SEARCH = """
import os, sys, threading, time
import numpy as np
from jina_embeddings_v4.index import store as st
kind, where, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "qdrant":
    from jina_embeddings_v4.index.qdrant_store import QdrantStore
    s = QdrantStore("pages", path=where)
else:
    from jina_embeddings_v4.index.lancedb_store import LanceDBStore
    s = LanceDBStore(where, "pages")
rng = np.random.default_rng(1)
q = st.Query(singles=rng.standard_normal((1, dim)).astype(np.float32),
             multis=[rng.standard_normal((20, 128)).astype(np.float32)])
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


peak = [0]
running = [True]


def sample():
    while running[0]:
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)


s.exists()  # the engine's first-call setup is not the search's
base = rss()
thread = threading.Thread(target=sample, daemon=True)
thread.start()
times = []
for _ in range(3):
    t = time.perf_counter()
    s.search(q, 10, candidates=40)
    times.append(time.perf_counter() - t)
running[0] = False
thread.join()
after = (peak[0] - base) / 2.0**30 * 1024
print(min(times), after)
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=400)
    parser.add_argument("--tokens", type=int, default=620)
    parser.add_argument("--dim", type=int, default=2048)
    args = parser.parse_args(argv)

    from jina_embeddings_v4.index.lancedb_store import LanceDBStore
    from jina_embeddings_v4.index.qdrant_store import QdrantStore

    tmp = tempfile.mkdtemp(prefix="bench-qdrant-local-")
    rng = np.random.default_rng(0)
    where = {
        "qdrant": os.path.join(tmp, "qdrant"),
        "lancedb": os.path.join(tmp, "lance"),
    }
    stores = {
        "qdrant": QdrantStore("pages", path=where["qdrant"]),
        "lancedb": LanceDBStore(where["lancedb"], "pages"),
    }
    for start in range(0, args.pages, 50):
        n = min(50, args.pages - start)
        singles = rng.standard_normal((n, args.dim)).astype(np.float32)
        singles /= np.linalg.norm(singles, axis=1, keepdims=True)
        rows = st.PageRows(
            ids=["%024x" % (start + i + 1) for i in range(n)],
            singles=singles,
            multis=[
                rng.standard_normal((args.tokens, 128)).astype(np.float16)
                for _ in range(n)
            ],
            grids=[(1, args.tokens - 1, 1)] * n,
        )
        for s in stores.values():
            s.upsert(rows)
    for s in stores.values():
        s.finalize()

    print(
        "%d pages x %d tokens (float16 multi vectors: %.0f MB)"
        % (args.pages, args.tokens, args.pages * args.tokens * 256 / 1e6)
    )
    print("%-22s %12s %22s" % ("store", "s/search", "peak MB over the search"))
    for kind in ("lancedb", "qdrant"):
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(SEARCH), kind, where[kind],
             str(args.dim)],
            capture_output=True, text=True, check=True,
        ).stdout.split()
        seconds, peak = float(out[-2]), float(out[-1])
        label = "qdrant local mode" if kind == "qdrant" else "lancedb"
        print("%-22s %12.3f %22.0f" % (label, seconds, peak))
    return 0


if __name__ == "__main__":
    sys.exit(main())
