"""Benchmarks compute_embeddings through FiftyOne against the bare encoder.

Installs the zoo source with the tiny checkpoint as its weights in a
temporary FiftyOne zoo folder (with a private temporary database), loads
it with ``foz.load_zoo_model`` and times, in one process and on the same
images and batch size:

(a) ``model.encoder.encode_images(filepaths, batch_size=B)``, and
(b) ``dataset.compute_embeddings(model, batch_size=B)``, with FiftyOne's
    default data loader workers and with ``num_workers=0``.

All are warmed up first, then run alternately; the best of the repeats
counts. It prints the throughput ratio (b)/(a) against the 0.9 target,
and the forward passes a ``compute_embeddings`` call makes for batch sizes
1, 4 and 8 next to the ``ceil(n / B)`` that honouring batch_size means.

Usage::

    python benchmarks/bench_fiftyone.py            # 48 pages, batch 8
    python benchmarks/bench_fiftyone.py --quick    # smoke test
"""

import argparse
import math
import os
import sys

import numpy as np
import torch

from _common import (
    add_threads_option,
    best_times,
    busy_warning,
    isolate_fiftyone,
    set_threads,
)
from jina_embeddings_v4.testing import documents
from jina_embeddings_v4.testing.support import TINY_SNAPSHOT, install_source
from jina_embeddings_v4.testing.tiny_checkpoint import write_checkpoint

MODEL_NAME = "jinaai/jina-embeddings-v4"
TARGET_RATIO = 0.9
BATCH_SIZES = (1, 4, 8)


def tiny_snapshot(tmp):
    """The tiny checkpoint of the tests, or a fresh one when it is absent."""
    if os.path.isfile(os.path.join(TINY_SNAPSHOT, "config.json")):
        return TINY_SNAPSHOT

    return write_checkpoint(os.path.join(tmp, "tiny"), seed=0)


def _verdict(ok):
    return "PASS" if ok else "FAIL"


def run(args, tmp):
    warning = busy_warning()  # before any work of our own

    import fiftyone as fo
    import fiftyone.utils.torch as fout
    import fiftyone.zoo as foz

    n = args.n
    batch = args.batch_size
    repeats = args.repeats
    default_workers = fout.recommend_num_workers(None)

    install_source(
        os.environ["FIFTYONE_MODEL_ZOO_DIR"], snapshot=tiny_snapshot(tmp)
    )
    records = documents.write_dataset_images(
        os.path.join(tmp, "pages"), n=n, seed=0, scale=0.5
    )
    dataset = fo.Dataset("bench-fiftyone-%d" % os.getpid())
    dataset.add_samples([fo.Sample(filepath=r["filepath"]) for r in records])
    filepaths = dataset.values("filepath")

    load_options = {}
    if args.dtype:
        load_options["dtype"] = args.dtype
    model = foz.load_zoo_model(MODEL_NAME, **load_options)
    encoder = model.encoder
    config = model.config
    tokens = [
        encoder.count_image_tokens(
            (r["width"], r["height"]), config.max_pixels, config.min_pixels
        )
        for r in records
    ]

    print(
        "fiftyone %s, torch %s, %d CPU threads, load average %.2f"
        % (
            fo.__version__,
            torch.__version__,
            torch.get_num_threads(),
            os.getloadavg()[0],
        )
    )
    print(
        "model %s from the zoo folder (%s), %s on %s, tiny checkpoint"
        % (
            type(model).__name__,
            type(model).__module__,
            str(encoder.dtype).replace("torch.", ""),
            encoder.device,
        )
    )
    print(
        "%d pages at scale 0.5 (%d-%d image tokens), batch_size %d, "
        "default num_workers here %d, best of %d"
        % (n, min(tokens), max(tokens), batch, default_workers, repeats)
    )
    if warning:
        print(warning)

    def encode(paths):
        return encoder.encode_images(
            paths,
            task=config.task,
            batch_size=batch,
            truncate_dim=config.truncate_dim,
            max_pixels=config.max_pixels,
            min_pixels=config.min_pixels,
        ).single

    def direct():
        return encode(filepaths)

    def direct_fiftyone_batches():
        # the batches FiftyOne forms: dataset order, so not length-sorted
        return np.concatenate(
            [encode(filepaths[i : i + batch]) for i in range(0, n, batch)]
        )

    def through_fiftyone(num_workers, field="bench_emb", batch_size=batch):
        dataset.compute_embeddings(
            model,
            embeddings_field=field,
            batch_size=batch_size,
            num_workers=num_workers,
        )

    paths = [
        ("(a) encoder.encode_images(filepaths)", direct),
        ("    encoder, FiftyOne's batches", direct_fiftyone_batches),
        (
            "(b) compute_embeddings, workers %d" % default_workers,
            lambda: through_fiftyone(None),
        ),
        ("(b) compute_embeddings, workers 0", lambda: through_fiftyone(0)),
    ]
    forwards = []
    for _, fn in paths:  # warm-up, and forward passes per run
        before = encoder.forward_calls
        fn()
        forwards.append(encoder.forward_calls - before)
    times = best_times([fn for _, fn in paths], repeats)

    print()
    print("throughput")
    print(
        "  %-38s %7s %9s %8s %9s %6s"
        % ("path", "s", "images/s", "extra s", "forwards", "ratio")
    )
    for (name, _), seconds, calls in zip(paths, times, forwards):
        print(
            "  %-38s %7.3f %9.1f %8.3f %9d %6.2f"
            % (
                name,
                seconds,
                n / seconds,
                seconds - times[0],
                calls,
                times[0] / seconds,
            )
        )

    stored = np.stack(dataset.values("bench_emb"))
    reference = direct()
    agreement = float(np.min(np.sum(stored * reference, axis=1)))

    print()
    print("ratio (b)/(a), images/s through FiftyOne / encoder's own")
    verdicts = []
    for k, label in (
        (2, "num_workers default (%d)" % default_workers),
        (3, "num_workers 0"),
    ):
        ratio = times[0] / times[k]
        verdicts.append(ratio >= TARGET_RATIO)
        print(
            "  %-34s %5.2f  %s (target >= %.1f)"
            % (label, ratio, _verdict(ratio >= TARGET_RATIO), TARGET_RATIO)
        )
    print(
        "  %-34s %5.2f  (FiftyOne overhead only)"
        % ("default vs encoder, same batches", times[1] / times[2])
    )
    print(
        "  %-34s %.5f (min cosine, stored vs encoder)"
        % ("stored embeddings agree", agreement)
    )

    print()
    print("batch_size honoured: forward passes of one compute_embeddings")
    print(
        "  %-10s %10s %16s %16s %7s"
        % (
            "batch_size",
            "expected",
            "workers %d" % default_workers,
            "workers 0",
            "",
        )
    )
    honoured = True
    for size in BATCH_SIZES:
        expected = math.ceil(n / size)
        counts = []
        for workers in (None, 0):
            before = encoder.forward_calls
            through_fiftyone(
                workers, field="bench_b%d" % size, batch_size=size
            )
            counts.append(encoder.forward_calls - before)
        ok = all(c == expected for c in counts)
        honoured = honoured and ok
        print(
            "  %-10d %10d %16d %16d %7s"
            % (size, expected, counts[0], counts[1], "OK" if ok else "WRONG")
        )

    print()
    print(
        "summary: ratio %s (default workers), %s (workers 0); batch_size "
        "honoured %s"
        % (
            _verdict(verdicts[0]),
            _verdict(verdicts[1]),
            _verdict(honoured),
        )
    )
    dataset.delete()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, default=None, help="pages (default 48, 16 quick)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="batch size (default 8)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed runs of each path, best kept (default 3, 1 quick)",
    )
    parser.add_argument(
        "--dtype",
        default=None,
        choices=("auto", "float32", "bfloat16", "float16"),
        help="passed to load_zoo_model (default: the model's own, auto)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer pages, one repeat"
    )
    add_threads_option(parser)
    args = parser.parse_args(argv)
    set_threads(parser, args)
    if args.n is None:
        args.n = 16 if args.quick else 48
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    for name in ("n", "batch_size", "repeats"):
        if getattr(args, name) < 1:
            parser.error("--%s must be >= 1" % name.replace("_", "-"))

    tmp = isolate_fiftyone()
    return run(args, tmp)


if __name__ == "__main__":
    sys.exit(main())
