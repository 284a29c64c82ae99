"""PDF pages to PNG images, with pypdfium2 (PDFium, in its wheel).

Why pypdfium2: PDFium is the PDF engine of Chromium, so it renders what
browsers render; its wheels ship the library (no poppler or ghostscript to
install), it is Apache-2.0/BSD-licensed (PyMuPDF is AGPL), it is released
often, and it renders a page in tens of milliseconds. It is not
thread-safe, so pages are rendered in worker processes.

Pages are rendered at a pixel budget: by default the model's
``max_pixels``, since the model resizes anything larger down to it (no
point rendering pixels it discards). ``dpi`` renders at a fixed
resolution instead, still within the budget, so a 200-inch poster page
stays a few hundred thousand pixels. Knows nothing of FiftyOne.
"""

import hashlib
import logging
import math
import os

from ..options import DEFAULT_MAX_PIXELS

logger = logging.getLogger(__name__)

POINTS_PER_INCH = 72.0
PDF_MAGIC = b"%PDF-"
# the header may follow some junk bytes (PDF readers look this far)
MAGIC_WINDOW = 1024


class PdfError(ValueError):
    """A PDF (or one of its pages) that cannot be read or rendered."""


def render_scale(width_pt, height_pt, max_pixels=DEFAULT_MAX_PIXELS, dpi=None):
    """The scale (pixels per point) to render a page at.

    Args:
        width_pt: the page width in points (1/72 inch)
        height_pt: its height in points
        max_pixels (602112): the pixel budget, or None for no budget
        dpi (None): render at this resolution (capped by the budget);
            None: exactly at the budget

    Returns:
        a positive float
    """
    if width_pt <= 0 or height_pt <= 0:
        raise PdfError("page size %sx%s pt" % (width_pt, height_pt))
    if dpi is None and max_pixels is None:
        raise ValueError("Set max_pixels, dpi, or both")

    if max_pixels is None:
        return dpi / POINTS_PER_INCH

    scale = math.sqrt(max_pixels / (width_pt * height_pt))
    if dpi is not None:
        scale = min(scale, dpi / POINTS_PER_INCH)

    # PDFium's bitmap is ceil(size * scale): shrink the scale to whole
    # pixels so that the rounded-up size stays within the budget
    width = max(1, math.floor(width_pt * scale))
    height = max(1, math.floor(height_pt * scale))
    return min(width / width_pt, height / height_pt) * (1 - 1e-9)


def pixel_size(width_pt, height_pt, scale):
    """The ``(width, height)`` in pixels of a page rendered at ``scale``,
    as PDFium sizes its bitmap."""
    return (
        max(1, math.ceil(width_pt * scale)),
        max(1, math.ceil(height_pt * scale)),
    )


def file_sha256(path, chunk=1 << 20):
    """The file's content hash: a PDF's identity."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def looks_like_pdf(path):
    """Whether the file starts (within 1 KB) with the PDF header."""
    with open(path, "rb") as f:
        return PDF_MAGIC in f.read(MAGIC_WINDOW)


PIP_INSTALL = "pip install 'pypdfium2==5.15.2'"


def import_pdfium():
    """pypdfium2, or an ImportError naming the pip command."""
    try:
        import pypdfium2
    except ImportError as e:
        raise ImportError(
            "Importing PDFs needs pypdfium2, which is not installed. Run: %s"
            % PIP_INSTALL
        ) from e
    return pypdfium2


def open_pdf(path, password=None):
    """Opens a PDF, or raises a :class:`PdfError` that says why not."""
    pdfium = import_pdfium()

    if not looks_like_pdf(path):
        raise PdfError("%s: not a PDF (no %%PDF- header)" % path)
    try:
        return pdfium.PdfDocument(path, password=password)
    except pdfium.PdfiumError as e:
        text = str(e)
        if "password" in text.lower():
            hint = (
                "wrong password"
                if password
                else "it is encrypted: pass its password"
            )
            raise PdfError("%s: %s (%s)" % (path, hint, text)) from e
        if getattr(e, "err_code", None) == 0:
            # PDFium loads no document without pages, and reports no error
            raise PdfError(
                "%s has no pages (or no page tree PDFium can read)" % path
            ) from e
        raise PdfError("%s cannot be read: %s" % (path, text)) from e


def describe(path, password=None):
    """``{"num_pages", "title"}`` of a PDF."""
    pdf = open_pdf(path, password)
    try:
        title = (pdf.get_metadata_dict().get("Title") or "").strip()
        return {"num_pages": len(pdf), "title": title or None}
    finally:
        pdf.close()


def render_page(
    path,
    page_number,
    out_path,
    max_pixels=DEFAULT_MAX_PIXELS,
    dpi=None,
    password=None,
    with_text=False,
):
    """Renders one page (1-based) to a PNG.

    Returns:
        ``{"width", "height", "text"}``: the image's pixel size and the
        page's own text layer (None unless ``with_text``)
    """
    pdf = open_pdf(path, password)
    try:
        if not 1 <= page_number <= len(pdf):
            raise PdfError(
                "%s has %d pages, no page %d" % (path, len(pdf), page_number)
            )
        page = pdf[page_number - 1]
        try:
            width_pt, height_pt = page.get_size()
            scale = render_scale(width_pt, height_pt, max_pixels, dpi)
            image = page.render(scale=scale).to_pil()
            text = None
            if with_text:
                textpage = page.get_textpage()
                text = textpage.get_text_bounded().replace("\r\n", "\n")
                textpage.close()
        except PdfError as e:
            raise PdfError("%s page %d: %s" % (path, page_number, e)) from e
        except Exception as e:
            raise PdfError(
                "%s page %d cannot be rendered: %s" % (path, page_number, e)
            ) from e
        finally:
            page.close()
    finally:
        pdf.close()

    if image.mode != "RGB":
        image = image.convert("RGB")
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    tmp = out_path + ".tmp.png"
    image.save(tmp, format="PNG")
    os.replace(tmp, out_path)
    return {"width": image.width, "height": image.height, "text": text}


def render_task(task):
    """:func:`render_page` for a worker process: ``task`` is a dict of its
    arguments; returns ``(task, result, error message or None)``."""
    try:
        result = render_page(
            task["path"],
            task["page_number"],
            task["out_path"],
            max_pixels=task["max_pixels"],
            dpi=task["dpi"],
            password=task["password"],
            with_text=task["with_text"],
        )
        return task, result, None
    except PdfError as e:
        return task, None, str(e)
