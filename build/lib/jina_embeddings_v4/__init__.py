"""Jina Embeddings v4 for FiftyOne.

| Copyright 2026, the jina-embeddings-v4 FiftyOne integration authors.
| Apache 2.0

The layout says what each part knows:

- ``options``: names, tasks, defaults, the vector-space options (no
  torch, no FiftyOne);
- ``model/``: the native Jina v4 encoder, checkpoint loading, attention,
  batching, the shared-weights cache (torch, transformers, peft; no
  FiftyOne);
- ``scoring/``: exact MaxSim, pooling, heatmap maths (numpy, torch);
- ``io/``: image inputs and PDF rendering (no FiftyOne);
- ``fiftyone/``: the FiftyOne model (``zoo.py``), heatmap labels, PDF
  import, sharding, re-ranking;
- ``index/``: the ``jina_multivector`` similarity backend and its stores;
- ``hooks``: the zoo hooks the source's root ``__init__.py`` hands to
  FiftyOne; ``cli``: the ``jina-v4`` command; ``demo``: the quickstart;
- ``testing/``: the tiny random checkpoint and generated document pages.

Importing the package imports none of the heavy libraries.
"""

from . import hooks  # noqa: F401  (records the package: see hooks.PACKAGE)
from .options import BACKEND_NAME, MODEL_NAME

__version__ = "0.5.0"

__all__ = ["BACKEND_NAME", "MODEL_NAME", "__version__"]


def _quiet_fiftyone_config_warnings():
    # this package is imported by every process that uses it (the App
    # server loading a jina_multivector run too): the one place to do it
    from .fiftyone import quiet_config

    quiet_config.install()


_quiet_fiftyone_config_warnings()
