"""One loaded encoder per (snapshot, device, dtype, attention) per process.

FiftyOne re-loads a zoo model by name for every text query
(``sort_by_similarity``, the App's search), and users load one model for
embeddings and another for zero-shot labels. Each would otherwise hold its
own 7.5 GB copy of the weights. Every zoo-model instance asks this module
for its encoder instead; the task LoRA is picked per call, so instances with
different settings share one copy. Entries are weak: the weights are freed
once no model holds them.
"""

import logging
import os
import threading
import weakref

import torch

from .encoder import JinaV4Encoder, resolve_device, resolve_dtype

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_encoders = weakref.WeakValueDictionary()
_stats = {"loads": 0}
_logged_choices = set()


def get_encoder(snapshot_dir, device=None, dtype="auto", attn_implementation=None):
    """Returns the shared encoder for these settings, loading it once.

    Args:
        snapshot_dir: the snapshot folder
        device (None): device string or ``torch.device``
        dtype ("auto"): see :func:`encoder.resolve_dtype`
        attn_implementation (None): see :class:`encoder.JinaV4Encoder`

    Returns:
        a :class:`encoder.JinaV4Encoder`
    """
    device = _normalize_device(resolve_device(device))
    torch_dtype = resolve_dtype(dtype, device)
    key = (
        os.path.realpath(os.fspath(snapshot_dir)),
        str(device),
        str(torch_dtype),
        attn_implementation,
    )
    _log_choice_once(dtype, device, torch_dtype)

    with _lock:
        encoder = _encoders.get(key)
        if encoder is None:
            encoder = JinaV4Encoder(
                key[0],
                device=device,
                dtype=torch_dtype,
                attn_implementation=attn_implementation,
            )
            _encoders[key] = encoder
            _stats["loads"] += 1

    return encoder


def load_count():
    """How many times weights were loaded in this process."""
    return _stats["loads"]


def loaded_encoders():
    """The encoders currently alive, for inspection."""
    return list(_encoders.values())


def _normalize_device(device):
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())

    return device


def _log_choice_once(requested, device, chosen):
    if (requested, str(device)) in _logged_choices:
        return

    _logged_choices.add((requested, str(device)))
    logger.info(
        "Jina v4 precision: dtype=%r on %s -> %s",
        requested,
        device,
        str(chosen).replace("torch.", ""),
    )
