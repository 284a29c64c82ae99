"""Linear layers whose weights are pre-packed for oneDNN, on a CPU in bf16.

On a CPU, ``torch.nn.functional.linear`` in bf16 runs oneDNN's GEMM, which
first reorders the weight into its blocked layout: on every call, for
every layer. Reordering once, at load, and calling oneDNN's linear on the
packed weight (``torch.ops.mkldnn._reorder_linear_weight`` and
``_linear_pointwise``, the pair PyTorch's inductor uses when it freezes a
CPU model) computes the same products in the same order: the outputs are
bit-equal (tests check it), and the per-call reorder of 7 GB of weights
per page is gone.

The packed weight replaces the plain one (memory stays one copy): each
packed layer keeps an empty placeholder of the weight's dtype and device
as ``.weight`` and gets its plain weight back, bit-exact, whenever someone
must change it (merging or unmerging a LoRA: see :meth:`PackedLinears.unpacked`).

Knows nothing of FiftyOne or of the model's layout beyond ``nn.Linear``.
"""

import contextlib
import logging

import torch

logger = logging.getLogger(__name__)

# dtypes the packed path is used in (bf16: the CPU's matrix instructions;
# float32 goes through other GEMM code whose rounding may differ)
PACKED_DTYPES = (torch.bfloat16,)
# sub-module names never packed: LoRA's own small layers, which peft reads
# and changes by name
SKIP_NAMES = ("lora_",)


def supported(device, dtype):
    """Whether weights can be packed for ``device`` and ``dtype``: a CPU,
    bf16, and a PyTorch build with oneDNN's packed linear."""
    if device.type != "cpu" or dtype not in PACKED_DTYPES:
        return False
    if not torch.backends.mkldnn.is_available():
        return False
    ops = torch.ops.mkldnn
    return hasattr(ops, "_reorder_linear_weight") and hasattr(
        ops, "_linear_pointwise"
    )


def validate(pack_weights):
    """Raises a ValueError unless ``pack_weights`` is None, True or
    False."""
    if pack_weights is not None and not isinstance(pack_weights, bool):
        raise ValueError(
            "pack_weights must be None, True or False, got %r"
            % (pack_weights,)
        )


def resolve(pack_weights, device, dtype):
    """Whether to pack: ``pack_weights`` (None, True or False) for this
    ``device`` and ``dtype``; None means where :func:`supported`.

    Raises:
        ValueError: on another value, or True where packing is unsupported
    """
    validate(pack_weights)
    ok = supported(device, dtype)
    if pack_weights and not ok:
        raise ValueError(
            "pack_weights=True needs a CPU, bfloat16 and a PyTorch build "
            "with oneDNN; this encoder runs on %s in %s. Leave "
            "pack_weights=None to pack where it is supported"
            % (device, str(dtype).replace("torch.", ""))
        )
    return ok if pack_weights is None else pack_weights


def _packed_forward(module, x):
    packed = module._jina_packed
    if x.dtype != packed.dtype:
        # not a path the model takes; correct, not fast
        return torch.nn.functional.linear(
            x, packed.to_dense(), module.bias
        )
    return torch.ops.mkldnn._linear_pointwise(
        x, packed, module.bias, "none", [], ""
    )


class PackedLinears:
    """The plain ``nn.Linear`` layers under a module, packed or not.

    Args:
        root: a ``torch.nn.Module``
        skip (:data:`SKIP_NAMES`): name parts of layers left alone
    """

    def __init__(self, root, skip=SKIP_NAMES):
        self.layers = [
            module
            for name, module in root.named_modules()
            if type(module) is torch.nn.Linear
            and not any(part in name for part in skip)
        ]
        self.packed = False

    def pack(self):
        """Packs every layer's weight (a no-op when packed)."""
        if self.packed:
            return
        for module in self.layers:
            weight = module.weight
            with torch.no_grad():
                packed = torch.ops.mkldnn._reorder_linear_weight(
                    weight.detach(), None
                )
            module._jina_packed = packed
            module._jina_shape = tuple(weight.shape)
            weight.data = torch.empty(
                0, dtype=weight.dtype, device=weight.device
            )
            module.forward = _packed_forward.__get__(module)
        self.packed = True
        logger.debug("Packed %d linear layers for oneDNN", len(self.layers))

    def unpack(self):
        """Puts every layer's plain weight back (a no-op when unpacked)."""
        if not self.packed:
            return
        for module in self.layers:
            plain = module._jina_packed.to_dense()
            if tuple(plain.shape) != module._jina_shape:
                raise RuntimeError(
                    "A packed weight came back as %s, not %s"
                    % (tuple(plain.shape), module._jina_shape)
                )
            module.weight.data = plain
            del module._jina_packed, module._jina_shape
            del module.forward
        self.packed = False

    @contextlib.contextmanager
    def unpacked(self):
        """Plain weights inside the block (to merge or unmerge a LoRA),
        packed again after it when they were packed before."""
        was_packed = self.packed
        self.unpack()
        try:
            yield
        finally:
            if was_packed:
                self.pack()
