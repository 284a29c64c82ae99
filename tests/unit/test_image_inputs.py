"""Image conversion to RGB, with pixel values checkable by hand."""

import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from jina_embeddings_v4.io import image_inputs as ii


def _px(img, xy=(0, 0)):
    return img.getpixel(xy)


def test_rgb_passthrough():
    img = Image.new("RGB", (4, 3), (1, 2, 3))
    out = ii.to_rgb(img)
    assert out.mode == "RGB" and _px(out) == (1, 2, 3)


def test_grayscale_and_bilevel():
    assert _px(ii.to_rgb(Image.new("L", (2, 2), 77))) == (77, 77, 77)
    assert _px(ii.to_rgb(Image.new("1", (2, 2), 1))) == (255, 255, 255)


def test_sixteen_bit_scales_instead_of_clipping():
    # PIL's convert("RGB") would clip 25700 to white
    img = Image.new("I;16", (2, 2), 25700)
    assert _px(ii.to_rgb(img)) == (100, 100, 100)
    assert _px(ii.to_rgb(Image.new("I;16", (2, 2), 65535))) == (
        255,
        255,
        255,
    )


def test_int32_and_float_modes():
    assert _px(ii.to_rgb(Image.new("I", (2, 2), 200))) == (200, 200, 200)
    assert _px(ii.to_rgb(Image.new("I", (2, 2), 51400))) == (200, 200, 200)
    assert _px(ii.to_rgb(Image.new("F", (2, 2), 0.5))) == (128, 128, 128)
    assert _px(ii.to_rgb(Image.new("F", (2, 2), 30.0))) == (30, 30, 30)


def test_transparency_composited_on_white():
    rgba = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert _px(ii.to_rgb(rgba)) == (255, 255, 255)
    half = Image.new("RGBA", (2, 2), (0, 0, 0, 128))
    assert _px(ii.to_rgb(half)) == (127, 127, 127)
    la = Image.new("LA", (2, 2), (0, 0))
    assert _px(ii.to_rgb(la)) == (255, 255, 255)


def test_palette_with_and_without_transparency():
    p = Image.new("P", (2, 2), 0)
    p.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    assert _px(ii.to_rgb(p)) == (10, 20, 30)
    p.info["transparency"] = 0
    assert _px(ii.to_rgb(p)) == (255, 255, 255)


def test_cmyk():
    cmyk = Image.new("CMYK", (2, 2), (0, 255, 255, 0))
    assert _px(ii.to_rgb(cmyk)) == (255, 0, 0)


def test_exif_orientation_is_honoured():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 20))  # left quarter blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif, quality=95)
    buf.seek(0)
    out = ii.to_rgb(Image.open(buf))
    assert out.size == (20, 40)
    # the blue left edge is now at the top
    top = _px(out, (10, 2))
    bottom = _px(out, (10, 37))
    assert top[2] > 200 and top[0] < 60
    assert bottom[0] > 200 and bottom[2] < 60


def test_numpy_inputs():
    arr = np.zeros((3, 4, 3), dtype=np.uint8)
    arr[..., 1] = 9
    assert _px(ii.to_rgb(arr)) == (0, 9, 0)
    assert _px(ii.to_rgb(np.full((3, 4), 0.2, dtype=np.float32))) == (
        51,
        51,
        51,
    )
    assert _px(ii.to_rgb(np.full((2, 2), 25700, dtype=np.uint16))) == (
        100,
        100,
        100,
    )
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    assert _px(ii.to_rgb(rgba)) == (255, 255, 255)
    assert ii.to_rgb(np.ones((2, 2, 1), dtype=bool)).getpixel((0, 0)) == (
        255,
        255,
        255,
    )


def test_torch_chw_inputs():
    t = torch.zeros(3, 5, 7)
    t[0] = 1.0
    out = ii.to_rgb(t)
    assert out.size == (7, 5) and _px(out) == (255, 0, 0)
    u8 = torch.full((3, 2, 2), 42, dtype=torch.uint8)
    assert _px(ii.to_rgb(u8)) == (42, 42, 42)


def test_paths_and_unreadable_files(tmp_path):
    good = tmp_path / "page.png"
    Image.new("RGB", (5, 5), (7, 8, 9)).save(good)
    assert _px(ii.to_rgb(str(good))) == (7, 8, 9)
    assert _px(ii.load_image(good)) == (7, 8, 9)

    bad = tmp_path / "not_an_image.jpg"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not_an_image.jpg"):
        ii.load_image(bad)

    data = good.read_bytes()
    truncated = tmp_path / "truncated.png"
    big = tmp_path / "big.png"
    Image.fromarray(
        np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)
    ).save(big)
    truncated.write_bytes(big.read_bytes()[: len(big.read_bytes()) // 2])
    with pytest.raises(ValueError, match="truncated.png"):
        ii.load_image(truncated)
    assert data  # the good file was untouched


def test_readable_batches_skip_or_raise(tmp_path, caplog):
    paths = []
    for i in range(5):
        path = tmp_path / ("%d.png" % i)
        if i == 1:
            path.write_text("not an image")
        else:
            Image.new("RGB", (3, 3), (i, i, i)).save(path)
        paths.append(str(path))
    ids = ["a", "b", "c", "d", "e"]

    import logging

    log = logging.getLogger("test_readable_batches")
    with caplog.at_level("WARNING"):
        batches = list(ii.readable_batches(ids, paths, 2, log=log))
    assert [(b, c) for b, _, c in batches] == [
        (["a"], 2), (["c", "d"], 2), (["e"], 1)
    ]
    assert [_px(img) for _, images, _ in batches for img in images] == [
        (0, 0, 0), (2, 2, 2), (3, 3, 3), (4, 4, 4)
    ]
    assert "Skipping sample b" in caplog.text and "1.png" in caplog.text

    with pytest.raises(ValueError, match="1.png"):
        list(ii.readable_batches(ids, paths, 2, skip_failures=False))


def test_extreme_aspect_ratios_are_padded():
    tall = Image.new("RGB", (10, 5000), (0, 0, 0))
    out = ii.to_rgb(tall)
    assert out.size == (26, 5000)  # ceil(5000 / 199)
    assert _px(out, (0, 0)) == (0, 0, 0)
    assert _px(out, (25, 0)) == (255, 255, 255)
    ok = Image.new("RGB", (800, 20000))
    assert ii.to_rgb(ok).size == (800, 20000)


def test_unsupported_inputs():
    with pytest.raises(ValueError, match="Unsupported image input"):
        ii.to_rgb(12)
    with pytest.raises(ValueError, match="1-4 channels"):
        ii.to_rgb(np.zeros((2, 2, 5), dtype=np.uint8))


def test_a_thin_strip_is_shrunk_before_it_is_padded(tmp_path):
    # a 321-byte PNG of 250000x1 pixels once padded to 250000x1257 (and
    # gigabytes downstream); now the canvas stays within its budget
    path = str(tmp_path / "strip.png")
    Image.new("L", (250000, 1), 0).save(path)
    assert os.path.getsize(path) < 2000
    img = ii.load_image(path)
    width, height = img.size
    assert width * height <= ii.PAD_CANVAS_MAX_PIXELS
    assert width <= ii.MAX_ASPECT_RATIO * height
    assert width == ii.pad_long_side_limit()
    # the strip is still there, at the top of the white canvas
    assert img.getpixel((0, 0)) == (0, 0, 0)
    assert img.getpixel((0, height - 1)) == (255, 255, 255)


def test_memory_error_while_converting_is_the_files_failure(tmp_path, monkeypatch):
    path = str(tmp_path / "page.png")
    Image.new("RGB", (20, 20), (255, 0, 0)).save(path)

    def too_big(img):
        raise MemoryError()

    monkeypatch.setattr(ii, "_pil_to_rgb", too_big)
    with pytest.raises(ValueError, match="page.png.*MemoryError"):
        ii.load_image(path)
