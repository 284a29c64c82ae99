#!/usr/bin/env python
"""Embeds one shard of a dataset: one process per device, any number of
devices and machines sharing one FiftyOne database.

    python scripts/embed_shard.py --dataset NAME --field FIELD --shard I/N \\
        [--task retrieval] [--dtype auto] [--batch-size 8] [--device cuda:0]

Shards are numbered from 0. Each embeds the samples that lack FIELD and
whose id hashes to I; run it again after a crash to finish the rest. The
zoo source must be registered in this Python environment (as for
``foz.load_zoo_model``), and every machine must reach the same database
(``FIFTYONE_DATABASE_URI``) and the images.
"""

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _checkout  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Embed one shard of a FiftyOne dataset with Jina v4"
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--field", required=True, help="embeddings field")
    parser.add_argument(
        "--shard", required=True, help="I/N: this process's shard (from 0)"
    )
    parser.add_argument(
        "--task",
        default="retrieval",
        choices=("retrieval", "text-matching", "code"),
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float32", "bfloat16", "float16"),
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--device", default=None, help="e.g. cuda:0 (default: CUDA if any)"
    )
    parser.add_argument(
        "--num-workers", type=int, default=None, help="data loader workers"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    sharding = _checkout.submodule("sharding")
    try:
        shard, num_shards = sharding.parse_shard(args.shard)
    except ValueError as e:
        parser.error(str(e))

    kwargs = {"task": args.task, "dtype": args.dtype}
    if args.device:
        kwargs["device"] = args.device
    try:
        n = sharding.embed_shard(
            args.dataset,
            args.field,
            shard,
            num_shards,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            **kwargs,
        )
    except ValueError as e:
        parser.exit(2, "embed_shard.py: error: %s\n" % e)
    print(
        "shard %d/%d: embedded %d samples into '%s'"
        % (shard, num_shards, n, args.field)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
