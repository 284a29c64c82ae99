"""Test data that ships with the package, for offline pipeline checks: a
tiny random checkpoint in the official layout (``tiny_checkpoint.py``,
``jina-v4 install-tiny``) and generated document pages with real text
(``documents.py``, used by the demo). Nothing here imports FiftyOne."""
