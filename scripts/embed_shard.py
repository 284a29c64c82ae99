#!/usr/bin/env python
"""Embeds one shard of a dataset: one process per device, any number of
devices and machines sharing one FiftyOne database.

    python scripts/embed_shard.py --dataset NAME --field FIELD --shard I/N \\
        [--task retrieval] [--dtype auto] [--batch-size 8] [--device cuda:0]

The same as ``jina-v4 embed-shard`` (``--help`` lists the options).
"""

import sys

from jina_embeddings_v4.cli import main

if __name__ == "__main__":
    sys.exit(main(["embed-shard"] + sys.argv[1:]))
