"""Batches by count and by tokens, and images prepared ahead of the model.

Pure functions (and the image processor call, which knows nothing of the
model): the encoder sorts items longest first and cuts batches that hold
at most ``batch_size`` items and at most ``max_batch_tokens`` padded
tokens, so that a batch of small pages can be large and a batch of big
ones stays within memory. :func:`prepare_image` runs the image processor
on one image: FiftyOne's data loader workers call it, so that resizing and
patching overlap the forward pass.
"""

from dataclasses import dataclass

import torch

from ..options import check_positive_int

# Padded language-model tokens per forward pass: 84 pages of 780 tokens.
# It bounds activation memory; the vision tower sees 4 patches per token.
DEFAULT_MAX_BATCH_TOKENS = 65536
# On a CPU one page (768 image tokens, 784 in all) already fills the GEMMs;
# larger passes only spill caches: 2 full pages took 36.8 s a page against
# 33.5 s alone (full size, bf16, 2 cores; README). Whatever the caller
# asks, a CPU pass holds at most this many padded tokens.
CPU_MAX_BATCH_TOKENS = 1024


def validate_max_batch_tokens(max_batch_tokens):
    """None (no bound) or a positive integer."""
    check_positive_int("max_batch_tokens", max_batch_tokens, allow_none=True)


def validate_cpu_max_batch_tokens(cpu_max_batch_tokens):
    """None (no CPU bound) or a positive integer."""
    check_positive_int(
        "cpu_max_batch_tokens", cpu_max_batch_tokens, allow_none=True
    )


def device_batch_tokens(
    max_batch_tokens, device_type, cpu_max_batch_tokens=CPU_MAX_BATCH_TOKENS
):
    """The token budget of one forward pass on ``device_type`` (``"cpu"``,
    ``"cuda"``, ...): on a CPU the smaller of ``max_batch_tokens`` and
    ``cpu_max_batch_tokens``; elsewhere ``max_batch_tokens``. None is no
    bound."""
    if device_type != "cpu" or cpu_max_batch_tokens is None:
        return max_batch_tokens
    if max_batch_tokens is None:
        return cpu_max_batch_tokens
    return min(max_batch_tokens, cpu_max_batch_tokens)


def plan_batches(lengths, batch_size, max_batch_tokens=None):
    """Cuts items into batches, longest first.

    A batch holds at most ``batch_size`` items, and at most
    ``max_batch_tokens`` tokens once padded to its longest item (an item
    longer than the budget goes alone).

    Args:
        lengths: the items' token counts
        batch_size: items per batch at most
        max_batch_tokens (None): padded tokens per batch at most

    Returns:
        a list of batches, each a list of item indices; ties keep their
        input order
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, current = [], []
    for i in order:
        if current:
            # sorted: the first item of a batch is its longest
            longest = lengths[current[0]]
            full = len(current) >= batch_size
            over = (
                max_batch_tokens is not None
                and (len(current) + 1) * longest > max_batch_tokens
            )
            if full or over:
                batches.append(current)
                current = []
        current.append(i)

    if current:
        batches.append(current)
    return batches


@dataclass
class PreparedImage:
    """An image after the image processor: what the model's forward pass
    takes.

    Attributes:
        pixel_values: ``[n_patches, channels * patch**2 * temporal]``
        grid_thw: ``(t, h, w)`` in 14-pixel patches
        max_pixels, min_pixels: the resize budget it was prepared with
    """

    pixel_values: torch.Tensor
    grid_thw: tuple
    max_pixels: int
    min_pixels: int

    def tokens(self, merge_size=2):
        """The language-model tokens of its image (one per merged patch)."""
        t, h, w = self.grid_thw
        return t * h * w // (merge_size * merge_size)


def prepare_image(processor, image, max_pixels, min_pixels):
    """Runs the image processor on one RGB PIL image.

    Processing images one at a time gives the same pixel values as
    processing them together: the processor resizes and normalises each
    image on its own and concatenates their patches.
    """
    out = processor(
        images=[image],
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
        return_tensors="pt",
    )
    grid = tuple(int(v) for v in out["image_grid_thw"][0].tolist())
    return PreparedImage(
        pixel_values=out["pixel_values"],
        grid_thw=grid,
        max_pixels=max_pixels,
        min_pixels=min_pixels,
    )


def stack_prepared(prepared):
    """``(pixel_values, image_grid_thw)`` of a batch of prepared images."""
    pixel_values = torch.cat([p.pixel_values for p in prepared], dim=0)
    grids = torch.tensor([list(p.grid_thw) for p in prepared])
    return pixel_values, grids
