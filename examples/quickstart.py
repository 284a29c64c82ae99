#!/usr/bin/env python
"""Quickstart: Jina Embeddings v4 in FiftyOne, end to end.

The same as ``jina-v4 demo`` (see ``jina_embeddings_v4/demo.py`` for what
it does and ``--help`` for its options); ``make demo`` runs it with
``--auto-tiny``.
"""

import sys

from jina_embeddings_v4.demo import main

if __name__ == "__main__":
    sys.exit(main())
