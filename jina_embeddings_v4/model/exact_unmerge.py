"""Unmerging a task's LoRA without drift: the merged layers' base weights
are read back from the snapshot.

peft unmerges by subtracting the low-rank product it added to the weight.
In floating point ``(W + BA) - BA`` is not ``W``: both steps round. So an
encoder with ``merge_lora`` that switched tasks moved away from the
checkpoint with every switch, and a page's vectors depended on the tasks
run before it (bf16, tiny checkpoint: a cosine distance of 1.2e-4 from a
fresh encoder after 100 switches, 3.5 times the merge's own effect).

Here each merged layer gets its base weight back bit for bit: read from
the snapshot's safetensors files (memory-mapped, one tensor at a time)
and cast to the layer's dtype, as the load did. The files are stamped
(device, inode, size, modification time) before the load; a layer whose
weight can not be read that way (its file changed or was removed since
the load, a LoRA variant, a LoRA bias, several adapters merged) is
unmerged by peft's subtraction instead, with one warning naming the
cause.

Knows nothing of FiftyOne.
"""

import logging
import os

import torch

from .snapshot import INDEX_FILE, SINGLE_WEIGHTS_FILE, weight_map

logger = logging.getLogger(__name__)

# peft names the layers "base_model.model.<path in JinaV4Modules>"
PEFT_PREFIX = "base_model.model."

_NOT_READ = object()

# path in the loaded modules -> key in the official checkpoint (the
# inverse of the key mapping the encoder loads with)
MODULE_TO_CHECKPOINT = (
    ("model.language_model.", "model."),
    ("model.visual.", "visual."),
    ("multi_vector_projector", "multi_vector_projector"),
)


def weight_files(snapshot_dir):
    """The snapshot's safetensors weight files (absolute paths)."""
    weights = weight_map(snapshot_dir)
    names = [SINGLE_WEIGHTS_FILE] if weights is None else set(weights.values())
    return [os.path.join(snapshot_dir, name) for name in sorted(names)]


def stamp(path):
    """What tells a file changed: its device, inode, size and modification
    time (of the file a link points to), or None when it can not be
    read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def stamps(snapshot_dir):
    """``{path: stamp}`` of the snapshot's weight files, taken at load
    (empty when the index can not be read: the load itself then says
    what is wrong, and no file counts as unchanged)."""
    try:
        files = weight_files(snapshot_dir)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    return {path: stamp(path) for path in files}


def checkpoint_key(peft_name):
    """The checkpoint key of the weight of the layer peft calls
    ``peft_name``, or None for a layer the checkpoint layout does not
    name.

    >>> checkpoint_key("base_model.model.model.language_model.layers.0.mlp.up_proj")
    'model.layers.0.mlp.up_proj.weight'
    """
    if not peft_name.startswith(PEFT_PREFIX):
        return None
    path = peft_name[len(PEFT_PREFIX):]
    for ours, theirs in MODULE_TO_CHECKPOINT:
        if path.startswith(ours):
            return theirs + path[len(ours):] + ".weight"
    return None


class SnapshotTensors(object):
    """Reads single tensors of a snapshot's safetensors files (opened
    memory-mapped once each, closed with :meth:`close`).

    Args:
        snapshot_dir: a folder in the official snapshot layout
        expected (None): ``{path: stamp}`` from :func:`stamps`; a file
            whose stamp differs now is refused (it is not what was loaded)
    """

    def __init__(self, snapshot_dir, expected=None):
        self.snapshot_dir = snapshot_dir
        self.expected = expected
        self._weights = _NOT_READ  # weight_map(), read by the first get()
        self._open = {}

    def _read_layout(self):
        single = os.path.join(self.snapshot_dir, SINGLE_WEIGHTS_FILE)
        weights = weight_map(self.snapshot_dir)
        if weights is not None and os.path.isfile(single):
            raise OSError(
                "%s holds both %s and %s: which of them the model was "
                "loaded from is not certain"
                % (self.snapshot_dir, SINGLE_WEIGHTS_FILE, INDEX_FILE)
            )
        return weights

    def _file_of(self, key):
        if self._weights is _NOT_READ:
            self._weights = self._read_layout()
        if self._weights is None:
            # one file holds every weight
            return os.path.join(self.snapshot_dir, SINGLE_WEIGHTS_FILE)
        if key not in self._weights:
            raise KeyError("%s does not list %s" % (INDEX_FILE, key))
        return os.path.join(self.snapshot_dir, self._weights[key])

    def get(self, key):
        """The tensor ``key``; raises KeyError when the files lack it and
        OSError when they can not be read or changed since the stamps."""
        from safetensors import safe_open

        path = self._file_of(key)
        handle = self._open.get(path)
        if handle is None:
            if self.expected is not None:
                was = self.expected.get(path)
                if was is None or stamp(path) != was:
                    raise OSError(
                        "%s changed since the model was loaded" % path
                    )
            handle = safe_open(path, framework="pt")
            self._open[path] = handle
        if key not in handle.keys():
            raise KeyError("%s does not hold %s" % (path, key))
        return handle.get_tensor(key)

    def close(self):
        self._open.clear()


def _lora_layers(peft_model):
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in peft_model.named_modules():
        if isinstance(module, BaseTunerLayer):
            yield name, module


def _why_not_exact(module):
    """Why the layer's base weight alone would not undo its merge, or
    None when it would."""
    merged = list(module.merged_adapters)
    if len(merged) != 1:
        return "%d adapters merged" % len(merged)
    adapter = merged[0]
    if adapter in getattr(module, "lora_variant", {}):
        return "a LoRA variant"
    if getattr(module, "lora_bias", {}).get(adapter):
        return "a LoRA bias"
    return None


def _saved_weight(tensors, name, module):
    """``(tensor, None)``: the layer's base weight as the checkpoint holds
    it; or ``(None, cause)`` when it can not be read back or would not
    undo the merge alone."""
    cause = _why_not_exact(module)
    if cause is not None:
        return None, cause
    key = checkpoint_key(name)
    if key is None:
        return None, "no checkpoint key for %s" % name
    try:
        saved = tensors.get(key)
    except Exception as e:
        # whatever keeps the file from being read (gone, changed,
        # damaged), the layer is still unmerged, by subtraction
        return None, "%s: %s" % (type(e).__name__, e)
    shape = tuple(module.get_base_layer().weight.shape)
    if tuple(saved.shape) != shape:
        return None, "%s has shape %s, the layer %s" % (
            key, tuple(saved.shape), shape)
    return saved, None


def unmerge(peft_model, snapshot_dir, expected=None):
    """Unmerges every merged LoRA layer of ``peft_model``: base weights
    read back from ``snapshot_dir`` where it can, peft's subtraction where
    not (one warning). Weights must be plain (not packed) meanwhile.

    Args:
        peft_model: the peft model whose layers are merged
        snapshot_dir: the snapshot it was loaded from
        expected (None): the weight files' :func:`stamps` at the load;
            a file that changed since is not read

    Returns:
        (restored, subtracted): how many layers went each way
    """
    tensors = SnapshotTensors(snapshot_dir, expected)
    restored = subtracted = 0
    causes = []
    try:
        for name, module in _lora_layers(peft_model):
            if not module.merged:
                continue
            saved, cause = _saved_weight(tensors, name, module)
            if cause is not None:
                module.unmerge()
                subtracted += 1
                causes.append(cause)
                continue
            weight = module.get_base_layer().weight
            with torch.no_grad():
                weight.data.copy_(saved.to(weight.dtype))
            del module.merged_adapters[:]
            restored += 1
    finally:
        tensors.close()

    if causes:
        logger.warning(
            "%d LoRA layer(s) were unmerged by subtraction, which rounds "
            "(the weights drift a little from the checkpoint's with each "
            "task switch), because their base weights could not be read "
            "back from %s: %s. Keep the snapshot in place, or use "
            "merge_lora=False",
            subtracted, snapshot_dir, causes[0],
        )
    return restored, subtracted
