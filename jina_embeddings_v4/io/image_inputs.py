"""Turns any image-like input into an RGB PIL image, without surprises.

Document collections hold 16-bit TIFF scans, palette PNGs with
transparency, CMYK JPEGs and phone photos with EXIF rotation. PIL's plain
``convert("RGB")`` clips 16-bit data to white and ignores orientation, so
each mode gets an explicit conversion here. Pure PIL/numpy/torch: no model,
no FiftyOne.
"""

import os

import numpy as np
from PIL import Image, ImageOps

# Qwen2-VL's resize refuses aspect ratios above 200; pages beyond that are
# padded with white up to this ratio instead of failing.
MAX_ASPECT_RATIO = 199
# Such a page is first shrunk so that its padded canvas holds at most this
# many pixels (48 MB in RGB), far above what the model's resize keeps
# (``max_pixels``); a 250000x1 strip would otherwise pad to 314 Mpx.
PAD_CANVAS_MAX_PIXELS = 1 << 24

_WHITE = (255, 255, 255)


def load_image(path):
    """Reads an image file fully and returns it as an RGB PIL image.

    Args:
        path: a filesystem path

    Returns:
        an RGB ``PIL.Image.Image``

    Raises:
        ValueError: if the file cannot be read as an image; the message
            names the file
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            img.load()
        # conversion inside: a page too big for memory (MemoryError) is
        # this file's failure, skipped like an unreadable one
        return to_rgb(img)
    except Exception as e:
        raise ValueError(
            "Cannot read image file '%s': %s: %s" % (path, type(e).__name__, e)
        ) from e


def readable_batches(ids, paths, batch_size, skip_failures=True, log=None):
    """Loads images batch by batch, skipping unreadable files.

    Args:
        ids: an id per image (e.g. sample ids)
        paths: the image files, in the order of ``ids``
        batch_size: images per batch
        skip_failures (True): skip an unreadable file (warning through
            ``log``) rather than raise its ``ValueError``
        log (None): the ``logging.Logger`` for those warnings

    Yields:
        ``(batch_ids, images, count)``: the ids and RGB images of a batch's
        readable files, and how many files the batch covered
    """
    for start in range(0, len(ids), batch_size):
        batch_ids, images = [], []
        chunk = list(
            zip(ids[start : start + batch_size], paths[start : start + batch_size])
        )
        for item_id, path in chunk:
            try:
                images.append(load_image(path))
                batch_ids.append(item_id)
            except ValueError as e:
                if not skip_failures:
                    raise
                if log is not None:
                    log.warning("Skipping sample %s: %s", item_id, e)

        yield batch_ids, images, len(chunk)


def to_rgb(img):
    """Converts an image-like input to an RGB PIL image.

    Args:
        img: a ``PIL.Image.Image`` (any mode), a numpy array (HW or HWC with
            1-4 channels; uint8, uint16, bool or float in [0, 1]), a torch
            tensor (CHW or HW, uint8 or float in [0, 1]) or a file path

    Returns:
        an RGB ``PIL.Image.Image``, EXIF orientation applied, transparency
        composited onto white, and aspect ratio at most
        :data:`MAX_ASPECT_RATIO`
    """
    if isinstance(img, (str, os.PathLike)):
        return load_image(img)

    if isinstance(img, Image.Image):
        rgb = _pil_to_rgb(img)
    elif isinstance(img, np.ndarray):
        rgb = _pil_to_rgb(_array_to_pil(img))
    elif _is_torch_tensor(img):
        rgb = _pil_to_rgb(_tensor_to_pil(img))
    else:
        raise ValueError(
            "Unsupported image input of type %s; expected a PIL image, a "
            "numpy array (HWC), a torch tensor (CHW) or a file path"
            % type(img).__name__
        )

    return _limit_aspect_ratio(rgb)


def _pil_to_rgb(img):
    # exif_transpose returns a copy only when there is an orientation tag
    img = ImageOps.exif_transpose(img) or img
    mode = img.mode

    if mode == "RGB":
        return img

    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _high_depth_to_rgb(img)

    if mode == "P":
        has_alpha = "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
        mode = img.mode

    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")

    return img.convert("RGB")


def _high_depth_to_rgb(img):
    arr = np.asarray(img)
    if arr.dtype.kind == "f":
        scaled = _float_to_uint8(arr)
    else:
        arr = arr.astype(np.float64)
        peak = float(arr.max()) if arr.size else 0.0
        if img.mode.startswith("I;16") or 255 < peak <= 65535:
            scaled = arr / 257.0
        elif peak <= 255 and arr.min() >= 0:
            scaled = arr
        else:
            scaled = _stretch(arr) * 255.0
        scaled = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)

    return Image.fromarray(scaled, mode="L").convert("RGB")


def _float_to_uint8(arr):
    arr = np.nan_to_num(arr.astype(np.float64), nan=0.0)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0, 0)
    if lo >= 0.0 and hi <= 1.0:
        scaled = arr * 255.0
    elif lo >= 0.0 and hi <= 255.0:
        scaled = arr
    else:
        scaled = _stretch(arr) * 255.0

    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _stretch(arr):
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros_like(arr)

    return (arr - lo) / (hi - lo)


def _array_to_pil(arr):
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]

    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] > 4):
        raise ValueError(
            "Unsupported image array of shape %s; expected HW or HWC with "
            "1-4 channels" % (arr.shape,)
        )

    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype == np.uint16:
        arr = np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
    elif arr.dtype.kind == "f":
        arr = _float_to_uint8(arr)
    elif arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)

    if arr.ndim == 2:
        return Image.fromarray(arr, mode="L")

    modes = {2: "LA", 3: "RGB", 4: "RGBA"}
    return Image.fromarray(np.ascontiguousarray(arr), mode=modes[arr.shape[2]])


def _tensor_to_pil(tensor):
    arr = tensor.detach().cpu().numpy()
    if arr.ndim == 3:
        arr = np.transpose(arr, (1, 2, 0))

    return _array_to_pil(arr)


def _is_torch_tensor(obj):
    torch = _optional_torch()
    return torch is not None and isinstance(obj, torch.Tensor)


def _optional_torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a requirement
        return None

    return torch


def pad_long_side_limit():
    """The longest side a page that needs padding keeps: its canvas is
    then at most :data:`PAD_CANVAS_MAX_PIXELS` (one ratio step of slack
    for the rounding up of the short side)."""
    return int((PAD_CANVAS_MAX_PIXELS * MAX_ASPECT_RATIO) ** 0.5) - (
        MAX_ASPECT_RATIO
    )


def _limit_aspect_ratio(img):
    width, height = img.size
    if max(width, height) <= MAX_ASPECT_RATIO * min(width, height):
        return img

    # shrink before padding, so the canvas stays within its pixel budget
    longest = max(width, height)
    limit = pad_long_side_limit()
    if longest > limit:
        scale = limit / float(longest)
        width = max(1, round(width * scale))
        height = max(1, round(height * scale))
        img = img.resize((width, height), Image.BILINEAR)

    if width > height:
        size = (width, -(-width // MAX_ASPECT_RATIO))
    else:
        size = (-(-height // MAX_ASPECT_RATIO), height)

    canvas = Image.new("RGB", size, _WHITE)
    canvas.paste(img, (0, 0))
    return canvas
