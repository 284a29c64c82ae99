"""The Jina Embeddings v4 model math, free of FiftyOne.

Everything in this subpackage runs with torch, transformers, peft and PIL
alone: the native encoder and its shared cache, late-interaction scoring,
image inputs, snapshot checks and the tiny test checkpoint. A test checks
that no module here imports FiftyOne; the FiftyOne-facing code lives in the
package root (``zoo.py`` and friends) and in ``index/``.
"""
