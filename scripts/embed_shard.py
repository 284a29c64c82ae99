#!/usr/bin/env python
"""Embeds one shard of a dataset: one process per device, any number of
devices and machines sharing one FiftyOne database.

    python scripts/embed_shard.py --dataset NAME --field FIELD --shard I/N \\
        [--task retrieval] [--dtype auto] [--batch-size 8] [--device cuda:0]

The same as ``jina-v4 embed-shard`` (``--help`` lists the options). The
first shard records its vector-space options (task, vector mode, ...) in
the field's ``info`` before it writes anything; a shard started with other
ones, at the same moment or after a kill, exits with status 2 and a
message naming the option, both values and the fix, having written
nothing.
"""

import sys

from jina_embeddings_v4.cli import main

if __name__ == "__main__":
    sys.exit(main(["embed-shard"] + sys.argv[1:]))
