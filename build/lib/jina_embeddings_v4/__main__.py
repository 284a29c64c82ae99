"""``python -m jina_embeddings_v4``: the ``jina-v4`` command."""

import sys

from .cli import main

sys.exit(main())
