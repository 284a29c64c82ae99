"""The native Jina Embeddings v4 encoder on transformers 5 and peft: the
checkpoint, attention, batching and the shared-weights cache. Nothing here
imports FiftyOne."""
