"""One loaded encoder per (snapshot, device, dtype, attention) per process.

FiftyOne re-loads a zoo model by name for every text query
(``sort_by_similarity``, the App's search), and users load one model for
embeddings and another for zero-shot labels. Each would otherwise hold its
own 7.5 GB copy of the weights. Every zoo-model instance acquires its
encoder here instead; the task LoRA is picked per call, so instances with
different settings share one copy.

When the last model using an encoder is garbage collected, the weights are
kept for a grace period (``KEEP_WARM_ENV`` seconds, default 300) and then
freed. The grace period is what keeps the App's searches fast: its server
drops and re-loads the model on every request.
"""

import gc
import logging
import os
import threading
import weakref

import torch

from . import packed_linear
from .encoder import (
    JinaV4Encoder,
    default_attention,
    resolve_device,
    resolve_dtype,
)

logger = logging.getLogger(__name__)

KEEP_WARM_ENV = "FIFTYONE_JINA_V4_KEEP_WARM_S"
DEFAULT_KEEP_WARM_S = 300.0

_lock = threading.RLock()
_entries = {}
_stats = {"loads": 0}
_logged_choices = set()


class _Entry(object):
    def __init__(self, encoder):
        self.encoder = encoder
        self.users = 0
        self.timer = None
        self.idle_since = 0


def acquire(
    owner,
    snapshot_dir,
    device=None,
    dtype="auto",
    attn_implementation=None,
    merge_lora=False,
    pack_weights=None,
):
    """Returns the shared encoder for these settings, loading it once.

    The encoder stays loaded while ``owner`` (or any other owner of the same
    encoder) is alive, and for the keep-warm period after that.

    Args:
        owner: the object using the encoder (a zoo model)
        snapshot_dir: the snapshot folder
        device (None): device string or ``torch.device``
        dtype ("auto"): see :func:`encoder.resolve_dtype`
        attn_implementation (None): see :class:`encoder.JinaV4Encoder`
        merge_lora (False): an encoder with merged LoRA weights, of its
            own (it serves one task best, so it is not shared with others)
        pack_weights (None): see :class:`encoder.JinaV4Encoder`; None and
            the value it stands for share one encoder

    Returns:
        a :class:`encoder.JinaV4Encoder`
    """
    device = _normalize_device(resolve_device(device))
    torch_dtype = resolve_dtype(dtype, device)
    # resolved first, so that None and its explicit value share weights
    attn_implementation = attn_implementation or default_attention(
        device, torch_dtype
    )
    pack_weights = packed_linear.resolve(pack_weights, device, torch_dtype)
    key = (
        os.path.realpath(os.fspath(snapshot_dir)),
        str(device),
        str(torch_dtype),
        attn_implementation,
        bool(merge_lora),
        pack_weights,
    )
    _log_choice_once(dtype, device, torch_dtype)

    with _lock:
        entry = _entries.get(key)
        if entry is None:
            encoder = JinaV4Encoder(
                key[0],
                device=device,
                dtype=torch_dtype,
                attn_implementation=attn_implementation,
                merge_lora=bool(merge_lora),
                pack_weights=pack_weights,
            )
            entry = _entries[key] = _Entry(encoder)
            _stats["loads"] += 1

        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None

        entry.users += 1

    finalizer = weakref.finalize(owner, _release, key)
    # at interpreter exit there is nothing to release, and Python 3.12+
    # refuses to start the keep-warm timer thread then
    finalizer.atexit = False
    return entry.encoder


def release_all():
    """Frees every encoder that no model uses, without waiting."""
    with _lock:
        for key in [k for k, e in _entries.items() if e.users == 0]:
            _drop(key)


def load_count():
    """How many times weights were loaded in this process."""
    return _stats["loads"]


def loaded_encoders():
    """The encoders currently held, for inspection."""
    with _lock:
        return [e.encoder for e in _entries.values()]


def keep_warm_seconds():
    """The grace period before an unused encoder is freed, in seconds."""
    value = os.environ.get(KEEP_WARM_ENV)
    if value is None or not value.strip():
        return DEFAULT_KEEP_WARM_S

    try:
        return max(0.0, float(value))
    except ValueError:
        logger.warning(
            "Ignoring %s=%r: not a number of seconds", KEEP_WARM_ENV, value
        )
        return DEFAULT_KEEP_WARM_S


def _release(key):
    with _lock:
        entry = _entries.get(key)
        if entry is None:
            return

        entry.users -= 1
        if entry.users > 0:
            return

        delay = keep_warm_seconds()
        if delay <= 0:
            _drop(key)
            return

        # the timer holds only the key and a token, never the weights
        entry.idle_since += 1
        entry.timer = threading.Timer(
            delay, _expire, args=(key, entry.idle_since)
        )
        entry.timer.daemon = True
        entry.timer.start()


def _expire(key, token):
    with _lock:
        entry = _entries.get(key)
        if entry is not None and entry.users == 0:
            if entry.idle_since == token:
                _drop(key)


def _drop(key):
    entry = _entries.pop(key)
    if entry.timer is not None:
        entry.timer.cancel()
        entry.timer = None

    del entry
    if key[1].startswith("cuda"):
        # give the memory back to the device, not only to torch's cache
        gc.collect()
        torch.cuda.empty_cache()

    logger.info("Released the Jina v4 weights loaded from %s", key[0])


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
