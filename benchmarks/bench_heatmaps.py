#!/usr/bin/env python
"""What a text search's heatmaps cost: one jina_multivector search with
heatmap_field and heatmap_k 10 and 25 (the App's request) against none.

The tiny checkpoint embeds the query: what is measured is the rest of the
heatmap step (fetching the top pages' multi vectors, the maps, writing
fo.Heatmap labels), which does not depend on the model's size.

    python benchmarks/bench_heatmaps.py [--pages 100] [--repeats 7]
"""

import argparse
import os

from _common import best_times, busy_warning, isolate_fiftyone

from jina_embeddings_v4.testing import documents
from jina_embeddings_v4.testing.support import install_source


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    tmp = isolate_fiftyone()
    warning = busy_warning()
    import fiftyone as fo
    import fiftyone.brain as fob

    install_source(os.environ["FIFTYONE_MODEL_ZOO_DIR"])
    records = documents.write_dataset_images(
        os.path.join(tmp, "pages"), n=args.pages, seed=1, scale=0.5
    )
    ds = fo.Dataset("bench-heatmaps")
    ds.add_samples([fo.Sample(filepath=r["filepath"]) for r in records])
    kwargs = {"dtype": "float32"}
    runs = {}
    for key, field in (("plain", None), ("maps", "query_heatmap")):
        runs[key] = fob.compute_similarity(
            ds,
            model="jinaai/jina-embeddings-v4",
            model_kwargs=kwargs,
            backend="jina_multivector",
            brain_key=key,
            batch_size=8,
            heatmap_field=field,
        )

    def search(key, k_maps):
        def run():
            if k_maps is not None:
                runs[key].config.heatmap_k = k_maps
            runs[key].sort_by_similarity("invoice total due", k=25)

        return run

    search("plain", None)()  # model and store warm
    times = best_times(
        [search("plain", None), search("maps", 10), search("maps", 25)],
        args.repeats,
    )
    if warning:
        print(warning)
    print("%d pages, k=25, best of %d:" % (args.pages, args.repeats))
    for label, t in zip(("no heatmaps", "heatmap_k=10", "heatmap_k=25"), times):
        print("  %-14s %7.1f ms  (+%.1f ms)" % (label, t * 1e3, (t - times[0]) * 1e3))
    print("heatmap_k=25 / heatmap_k=10 extra: %.2fx"
          % ((times[2] - times[0]) / max(times[1] - times[0], 1e-9)))


if __name__ == "__main__":
    main()
