"""Pages/s of PDF import: ``add_pdfs`` into a fresh FiftyOne dataset
(render at the model's pixel budget, write PNGs, text layer, word boxes,
add samples) with 0 (this process), 1 and ``--workers`` rendering
processes, and the render alone with and without word boxes, in one
process on the same files; the word boxes' share of the samples' size in
the database.

Uses Debian's real PDFs that ``make test`` fetches (libtasn1's manual and
the shared-mime-info spec), or the PDFs given::

    python benchmarks/bench_pdfs.py
    python benchmarks/bench_pdfs.py path/to/*.pdf --workers 4
"""

import argparse
import os
import shutil
import sys
import time

from _common import busy_warning, isolate_fiftyone
from jina_embeddings_v4.testing.support import debian_pdfs

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdfs", nargs="*", help="default: Debian's PDFs")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="rendering processes of the parallel run (default: CPUs)",
    )
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    pdfs = args.pdfs or debian_pdfs()
    if not pdfs:
        parser.error("no PDFs: run `make test` once (it fetches Debian's) "
                     "or name some")
    if args.workers < 1 or args.repeats < 1:
        parser.error("--workers and --repeats must be >= 1")

    tmp = isolate_fiftyone()
    warning = busy_warning()
    import fiftyone as fo

    from jina_embeddings_v4.io import pdf_render
    from jina_embeddings_v4.fiftyone.pdfs import add_pdfs

    pages = sum(pdf_render.describe(p)["num_pages"] for p in pdfs)
    print("%d PDFs, %d pages, %d CPUs, load average %.2f"
          % (len(pdfs), pages, os.cpu_count() or 1, os.getloadavg()[0]))
    if warning:
        print(warning)

    def render_only(with_words):
        def run():
            out = os.path.join(tmp, "render-only")
            for path in pdfs:
                n = pdf_render.describe(path)["num_pages"]
                for k in range(1, n + 1):
                    pdf_render.render_page(
                        path, k, os.path.join(out, "%d.png" % k),
                        with_text=True, with_words=with_words,
                    )
            shutil.rmtree(out)

        return run

    def import_with(workers):
        def run():
            name = "bench-pdfs-%d" % os.getpid()
            images = os.path.join(tmp, "pages")
            summary = add_pdfs(name, pdfs, images, num_workers=workers,
                               progress=False)
            assert summary["added"] == pages, summary
            dataset = fo.load_dataset(name)
            sizes.update(_bson_sizes(dataset))
            dataset.delete()
            shutil.rmtree(images)

        return run

    sizes = {}
    runs = [
        ("render + text only, this process", render_only(False)),
        ("render + text + words, this process", render_only(True)),
    ]
    for workers in sorted({0, 1, args.workers}):
        label = ("add_pdfs, num_workers=%d" % workers
                 + (" (this process)" if workers == 0 else ""))
        runs.append((label, import_with(workers)))

    best = {label: float("inf") for label, _ in runs}
    for _ in range(args.repeats):
        for label, fn in runs:
            start = time.perf_counter()
            fn()
            best[label] = min(best[label], time.perf_counter() - start)

    print()
    print("%-40s %8s %8s" % ("path", "s", "pages/s"))
    for label, _ in runs:
        print("%-40s %8.2f %8.1f" % (label, best[label], pages / best[label]))
    serial = best["add_pdfs, num_workers=0 (this process)"]
    parallel = best["add_pdfs, num_workers=%d" % args.workers] if (
        args.workers) else serial
    print()
    print("parallel (%d workers) / this process: %.2fx pages/s"
          % (args.workers, serial / parallel))
    words = best["render + text + words, this process"]
    plain = best["render + text only, this process"]
    print("word boxes: render %.2fx the time without them; %.1f KB of "
          "%.1f KB per sample in the database (%.0f%%)"
          % (words / plain, sizes["words"] / pages / 1024,
             sizes["total"] / pages / 1024,
             100.0 * sizes["words"] / sizes["total"]))
    return 0


def _bson_sizes(dataset):
    """Bytes of the samples' documents, and of their pdf_words values."""
    import bson

    total = words = 0
    for doc in dataset._sample_collection.find({}):
        total += len(bson.encode(doc))
        if doc.get("pdf_words") is not None:
            words += len(bson.encode({"w": doc["pdf_words"]}))
    return {"total": total, "words": words}


if __name__ == "__main__":
    sys.exit(main())
