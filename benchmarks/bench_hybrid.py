#!/usr/bin/env python
"""Hybrid search: does a phrase copied from a page find that page, by
MaxSim alone, by the words alone and fused; and what the words cost.

1. Real PDFs (Debian's, imported by ``add_pdfs`` with their text layer),
   phrases of 4 words sampled from single pages (holding a term no other
   page has): the rank of the source page for ``text_weight`` 0 (MaxSim
   alone), 0.3, 0.5, 0.7 (default) and 1 (the words alone, MaxSim breaking
   ties). The visual side is the tiny random checkpoint (the hub is
   unreachable here), so MaxSim alone is chance: the figures show what the
   words add and that fusion keeps them, not how good real MaxSim is.
2. 20,000 pages of synthetic vectors with real text (the PDF pages'
   text, each with a distinct reference number): query latency with and
   without ``text_field`` (same vectors, k 25), and the table's size.

    python benchmarks/bench_hybrid.py [--pages 20000] [--phrases 30]
"""

import argparse
import os
import sys
import time

import numpy as np

from _common import best_times, busy_warning, isolate_fiftyone

from jina_embeddings_v4.index import store as st
from jina_embeddings_v4.testing.phrases import rare_phrases
from jina_embeddings_v4.testing.support import debian_pdfs, install_source

MODEL = "jinaai/jina-embeddings-v4"
WEIGHTS = (0.0, 0.3, 0.5, 0.7, 1.0)


def folder_size(path):
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def ranks_on_pdfs(tmp, n_phrases):
    import fiftyone as fo
    import fiftyone.brain as fob
    from jina_embeddings_v4.fiftyone.pdfs import add_pdfs

    ds = fo.Dataset("bench-hybrid-pdfs")
    add_pdfs(ds, debian_pdfs(), os.path.join(tmp, "pdf-pages"))
    texts = dict(zip(*ds.values(["id", "pdf_text"])))
    with_text = sum(1 for t in texts.values() if t and t.strip())
    phrases = rare_phrases(texts, n_phrases, step=11)
    index = fob.compute_similarity(
        ds,
        model=MODEL,
        model_kwargs={"dtype": "float32"},
        backend="jina_multivector",
        brain_key="pdfs",
        uri=os.path.join(tmp, "lance-pdfs"),
        text_field="pdf_text",
        oversample=None,
        batch_size=8,
    )
    print(
        "\n1. %d pages of %d Debian PDFs (%d with text), %d phrases of 4 "
        "words, each from one page" % (len(ds), len(debian_pdfs()), with_text, len(phrases))
    )
    print("%-30s %8s %8s %8s %8s" % ("text_weight", "hit@1", "hit@5", "MRR", "worst"))
    for weight in WEIGHTS:
        index.config.text_weight = weight
        ranks = []
        for sample_id, phrase in phrases:
            ids, _ = index._kneighbors(query=phrase, k=len(ds))
            ranks.append(ids.index(sample_id) + 1)
        ranks = np.asarray(ranks)
        label = {0.0: "0 (MaxSim alone)", 1.0: "1 (words alone)", 0.7: "0.7 (default)"}.get(
            weight, str(weight)
        )
        print(
            "%-30s %8.2f %8.2f %8.3f %8d"
            % (label, np.mean(ranks == 1), np.mean(ranks <= 5), np.mean(1.0 / ranks), ranks.max())
        )
    return texts


def latency(tmp, texts, pages, repeats):
    import fiftyone as fo
    import fiftyone.brain as fob
    import fiftyone.zoo as foz

    model = foz.load_zoo_model(MODEL, dtype="float32")
    dim = model.embed_prompts_with_multivectors(["x"])[0].shape[1]
    real = [t for t in texts.values() if t and t.strip()]
    rng = np.random.default_rng(0)
    ds = fo.Dataset("bench-hybrid-%d" % pages)
    ds.add_samples(
        [
            fo.Sample(
                filepath=os.path.join(tmp, "none-%d.png" % i),
                pdf_text=real[i % len(real)] + " Reference DOC-%06d" % i,
            )
            for i in range(pages)
        ]
    )
    ids = ds.values("id")
    indexes = {}
    for key, field in (("plain", None), ("words", "pdf_text")):
        indexes[key] = fob.compute_similarity(
            ds,
            model=MODEL,
            model_kwargs={"dtype": "float32"},
            backend="jina_multivector",
            brain_key=key,
            uri=os.path.join(tmp, "lance-" + key),
            text_field=field,
            embeddings=False,
        )
    start = time.time()
    for lo in range(0, pages, 500):
        chunk = ids[lo : lo + 500]
        singles = rng.standard_normal((len(chunk), dim)).astype(np.float32)
        singles /= np.linalg.norm(singles, axis=1, keepdims=True)
        multis = [rng.standard_normal((64, 128)).astype(np.float16) for _ in chunk]
        grids = [(7, 9, 1)] * len(chunk)
        for index in indexes.values():
            index.write(chunk, singles, multis, grids)
    for index in indexes.values():
        index.store.finalize()
    built = time.time() - start

    texts_q = ["delimiter specification", "Reference DOC-004242", "mime type glob pattern"]
    # embedded once: what is timed is the search (the query's forward pass
    # is the same with or without text)
    singles, multis = model.embed_prompts_with_multivectors(texts_q)
    queries = [
        st.Query(singles=singles[i : i + 1], multis=[multis[i]], prompts=[q])
        for i, q in enumerate(texts_q)
    ]

    def run(key):
        def go():
            for q in queries:
                indexes[key]._kneighbors(query=q, k=25)

        return go

    run("plain")()
    run("words")()
    plain, words = best_times([run("plain"), run("words")], repeats)
    hit = indexes["words"].sort_by_similarity("Reference DOC-004242", k=1)
    sizes = {k: folder_size(os.path.join(tmp, "lance-" + k)) for k in indexes}
    print(
        "\n2. %d pages, synthetic vectors (64 tokens x 128, %d-d single), "
        "real text; both tables written in %.0f s" % (pages, dim, built)
    )
    print("%-30s %14s %14s" % ("", "MaxSim only", "text_field"))
    print(
        "%-30s %14.1f %14.1f"
        % ("search, ms (best of %d, k 25)" % repeats, plain / len(queries) * 1e3, words / len(queries) * 1e3)
    )
    print(
        "%-30s %14.1f %14.1f"
        % ("table, MB", sizes["plain"] / 1e6, sizes["words"] / 1e6)
    )
    print(
        "text adds %.2fx query time, %.1f%% size; 'Reference DOC-004242' "
        "finds page 4242: %s"
        % (
            words / plain,
            100.0 * (sizes["words"] - sizes["plain"]) / sizes["plain"],
            hit.first().id == ids[4242] if pages > 4242 else "n/a",
        )
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=20000)
    parser.add_argument("--phrases", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    if len(debian_pdfs()) < 2:
        print("Debian's PDFs are missing: run scripts/setup_test_system.sh")
        return 1
    tmp = isolate_fiftyone()
    warning = busy_warning()
    install_source(os.environ["FIFTYONE_MODEL_ZOO_DIR"])
    texts = ranks_on_pdfs(tmp, args.phrases)
    latency(tmp, texts, args.pages, args.repeats)
    if warning:
        print(warning)
    return 0


if __name__ == "__main__":
    sys.exit(main())
