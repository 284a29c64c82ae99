"""Vision attention in one call per layer for the whole batch.

transformers' Qwen2.5-VL vision tower calls its attention once per window
(``torch.split`` over ``cu_seqlens``: ~48 windows per 3072-patch page, 28
windowed layers) unless the implementation's name contains "flash"; then it
makes one call per layer with ``cu_seq_lens_q``/``cu_seq_lens_k``. The
function registered here under :data:`PACKED` takes that call and runs:

- on CUDA in half precision, a varlen kernel: flash-attn's when installed,
  else PyTorch's own ``torch.nn.attention.varlen.varlen_attn``;
- elsewhere, one ``scaled_dot_product_attention`` call over all windows
  stacked into ``[n_windows, heads, longest, dim]``, with a key mask only
  when the windows differ in length (the ragged edge windows).

Each window attends only to itself, as in the per-window loop, so the
result is the same up to kernel rounding. Knows nothing of FiftyOne.
"""

import importlib.util
import logging

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

# The name must contain "flash": transformers passes cu_seqlens only then
PACKED = "jina_packed_flash"
# What vision_attention= accepts
VISION_CHOICES = ("packed", "stock")

_registered = False


def register():
    """Registers :data:`PACKED` with transformers' AttentionInterface."""
    global _registered
    if _registered:
        return

    from transformers import AttentionInterface

    AttentionInterface.register(PACKED, packed_attention)
    _registered = True


def packed_attention(
    module,
    query,
    key,
    value,
    attention_mask=None,
    scaling=None,
    dropout=0.0,
    cu_seq_lens_q=None,
    cu_seq_lens_k=None,
    max_length_q=None,
    max_length_k=None,
    is_causal=False,
    **kwargs,
):
    """Attention over packed sequences, each attending only to itself.

    Args:
        query, key, value: ``[1, heads, total, dim]`` (the vision tower's
            layout)
        cu_seq_lens_q, cu_seq_lens_k: ``[n + 1]`` cumulative lengths (the
            same for queries and keys here)
        scaling: the softmax scale

    Returns:
        ``(out, None)`` with ``out`` of shape ``[1, total, heads, dim]``
    """
    if attention_mask is not None or is_causal:
        raise ValueError(
            "%s is for the vision tower's bidirectional windows only" % PACKED
        )
    if cu_seq_lens_q is None:
        raise ValueError("%s needs cu_seq_lens_q" % PACKED)
    if cu_seq_lens_k is not None and not torch.equal(
        cu_seq_lens_q, cu_seq_lens_k
    ):
        raise ValueError("%s needs equal query and key lengths" % PACKED)

    kernel = varlen_kernel(query)
    if kernel is not None:
        return kernel(query, key, value, cu_seq_lens_q, scaling), None

    return padded_sdpa(query, key, value, cu_seq_lens_q, scaling), None


def varlen_kernel(query):
    """A varlen kernel for this tensor's device and dtype, or None."""
    if query.device.type != "cuda" or query.dtype not in (
        torch.float16,
        torch.bfloat16,
    ):
        return None

    if importlib.util.find_spec("flash_attn") is not None:
        return _flash_attn_varlen

    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return None
    return _torch_varlen


def _flat(x):
    # [1, heads, total, dim] -> [total, heads, dim]
    return x[0].transpose(0, 1).contiguous()


def _flash_attn_varlen(query, key, value, cu, scaling):
    from flash_attn import flash_attn_varlen_func

    return _varlen(flash_attn_varlen_func, "softmax_scale",
                   query, key, value, cu, scaling)


def _torch_varlen(query, key, value, cu, scaling):
    from torch.nn.attention.varlen import varlen_attn

    return _varlen(varlen_attn, "scale", query, key, value, cu, scaling)


def _varlen(kernel, scale_name, query, key, value, cu, scaling):
    """Calls a varlen kernel (flash-attn's and PyTorch's take the same
    arguments but name the softmax scale differently)."""
    cu = cu.to(torch.int32)
    longest = int((cu[1:] - cu[:-1]).max())
    out = kernel(
        _flat(query),
        _flat(key),
        _flat(value),
        cu,
        cu,
        longest,
        longest,
        **{scale_name: scaling},
    )
    return out.unsqueeze(0)


def padded_sdpa(query, key, value, cu, scaling):
    """One SDPA call over all sequences, stacked and padded to the longest;
    padded keys are masked out (only when lengths differ), padded queries
    are dropped from the output.

    Returns:
        ``[1, total, heads, dim]``
    """
    cu = cu.to(device=query.device, dtype=torch.long)
    lengths = cu[1:] - cu[:-1]
    longest = int(lengths.max())
    positions = torch.arange(longest, device=query.device)
    valid = positions.unsqueeze(0) < lengths.unsqueeze(1)  # [n, longest]
    index = torch.where(valid, cu[:-1].unsqueeze(1) + positions, 0)

    def stack(x):
        # [1, heads, total, dim] -> [n, heads, longest, dim]
        return x[0][:, index].permute(1, 0, 2, 3)

    ragged = bool((lengths != longest).any())
    mask = valid[:, None, None, :] if ragged else None
    out = F.scaled_dot_product_attention(
        stack(query), stack(key), stack(value), attn_mask=mask, scale=scaling
    )
    # [n, heads, longest, dim] -> the real rows, in packed order
    out = out.permute(0, 2, 1, 3)[valid]
    return out.unsqueeze(0)
