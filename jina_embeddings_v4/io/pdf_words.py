"""The words of a PDF page's text layer and where they lie on the page as
rendered: what the search draws as "where the words matched".

pdfium gives each character of the text layer a box in PDF points (origin
at the bottom left of the page space, unrotated). A word is a run of
characters without whitespace; its box is the union of its characters'
boxes. Boxes are then made relative to the page as rendered: the page's
bounding box (crop box within media box) maps to ``[0, 1]`` with the origin
at the top left, turned by the page's ``/Rotate`` (clockwise), which is how
FiftyOne's ``fo.Detection`` boxes read: ``[x, y, width, height]``.

A page's words are stored compactly (:func:`pack`), as two strings: the
words joined by spaces (a word holds no whitespace) and their boxes as
four 16-bit fractions of the page's sides each (1/65535: under a pixel of
any rendered page), base64-encoded. That is about 5 times smaller than
lists of floats in the database, where word boxes would otherwise be most
of a page's sample. :func:`unpack` reads them back.

:func:`group_words`, :func:`relative_box`, :func:`pack` and
:func:`unpack` are pure; only :func:`page_words` touches pdfium.
"""

import base64

import numpy as np

# relative coordinates are kept to this many decimals (1e-5 of a side is
# under a pixel of any rendered page)
DECIMALS = 5


def group_words(text, boxes):
    """Groups characters into words.

    Args:
        text: the characters, one per box
        boxes: ``(left, bottom, right, top)`` per character, in points; an
            empty box (zero width and height: text pdfium generated, such
            as line breaks) takes no part in the word's box

    Returns:
        a list of ``(word, (left, bottom, right, top))``

    >>> group_words("ab c", [(0, 0, 1, 2), (1, 0, 2, 3), (0, 0, 0, 0), (5, 1, 6, 2)])
    [('ab', (0, 0, 2, 3)), ('c', (5, 1, 6, 2))]
    """
    if len(text) != len(boxes):
        raise ValueError(
            "%d characters but %d boxes" % (len(text), len(boxes))
        )
    words = []
    chars, box = [], None
    for char, char_box in zip(text, boxes):
        if char.isspace():
            if chars and box is not None:
                words.append(("".join(chars), box))
            chars, box = [], None
            continue
        chars.append(char)
        left, bottom, right, top = char_box
        if right <= left and top <= bottom:
            continue
        if box is None:
            box = (left, bottom, right, top)
        else:
            box = (
                min(box[0], left),
                min(box[1], bottom),
                max(box[2], right),
                max(box[3], top),
            )
    if chars and box is not None:
        words.append(("".join(chars), box))
    return words


def relative_box(box, page_box, rotation=0):
    """A box in points as ``[x, y, width, height]`` relative to the page as
    rendered (top-left origin, turned clockwise by ``rotation`` degrees),
    clipped to the page.

    Args:
        box: ``(left, bottom, right, top)`` in page space
        page_box: the rendered region, ``(left, bottom, right, top)``
        rotation (0): the page's ``/Rotate``: 0, 90, 180 or 270

    >>> relative_box((10, 70, 30, 90), (0, 0, 100, 100))
    [0.1, 0.1, 0.2, 0.2]
    >>> relative_box((10, 70, 30, 90), (0, 0, 100, 100), 90)
    [0.7, 0.1, 0.2, 0.2]
    """
    px0, py0, px1, py1 = page_box
    width, height = px1 - px0, py1 - py0
    if width <= 0 or height <= 0:
        raise ValueError("Empty page box %r" % (page_box,))

    def clip(v):
        return min(max(v, 0.0), 1.0)

    # unrotated, top-left origin: u to the right, v down
    u0 = clip((box[0] - px0) / width)
    u1 = clip((box[2] - px0) / width)
    v0 = clip((py1 - box[3]) / height)
    v1 = clip((py1 - box[1]) / height)
    rotation = int(rotation) % 360
    if rotation == 0:
        x0, x1, y0, y1 = u0, u1, v0, v1
    elif rotation == 90:
        # the top-left corner goes to the top right
        x0, x1, y0, y1 = 1.0 - v1, 1.0 - v0, u0, u1
    elif rotation == 180:
        x0, x1, y0, y1 = 1.0 - u1, 1.0 - u0, 1.0 - v1, 1.0 - v0
    elif rotation == 270:
        x0, x1, y0, y1 = v0, v1, 1.0 - u1, 1.0 - u0
    else:
        raise ValueError("rotation must be 0, 90, 180 or 270, got %r" % rotation)

    return [
        round(x0, DECIMALS),
        round(y0, DECIMALS),
        round(x1 - x0, DECIMALS),
        round(y1 - y0, DECIMALS),
    ]


# the stored form's name, kept with it (a later form gets another)
FORMAT = "words-uint16-xywh"
_SCALE = 65535


def pack(words, boxes):
    """The stored form of a page's words and relative boxes.

    Args:
        words: whitespace-free strings
        boxes: ``[x, y, w, h]`` per word, in ``[0, 1]``

    Returns:
        ``{"format", "text", "boxes"}``: strings only (JSON- and
        BSON-friendly)
    """
    if len(words) != len(boxes):
        raise ValueError("%d words but %d boxes" % (len(words), len(boxes)))
    if any(not w or any(c.isspace() for c in w) for w in words):
        raise ValueError("Words must be non-empty and hold no whitespace")
    array = np.asarray(boxes, np.float64).reshape(-1, 4)
    if array.size and (array.min() < 0 or array.max() > 1):
        raise ValueError("Boxes must be relative, in [0, 1]")
    packed = np.round(array * _SCALE).astype("<u2").tobytes()
    return {
        "format": FORMAT,
        "text": " ".join(words),
        "boxes": base64.b64encode(packed).decode("ascii"),
    }


def unpack(value):
    """``(words, boxes)`` of a stored page (:func:`pack`); ``([], [])``
    for None.

    >>> unpack(pack(["a", "b"], [[0, 0, 1, 1], [0.25, 0.25, 0.125, 0.75]]))[1]
    [[0.0, 0.0, 1.0, 1.0], [0.25, 0.25, 0.125, 0.75]]
    """
    if not value:
        return [], []
    if value.get("format") != FORMAT:
        raise ValueError(
            "Unknown word-box format %r (this version reads %r): import the "
            "PDFs again with add_pdfs" % (value.get("format"), FORMAT)
        )
    words = value["text"].split(" ") if value["text"] else []
    raw = np.frombuffer(base64.b64decode(value["boxes"]), dtype="<u2")
    boxes = np.round(raw.reshape(-1, 4) / _SCALE, DECIMALS).tolist()
    if len(boxes) != len(words):
        raise ValueError(
            "Stored word boxes are damaged: %d words but %d boxes"
            % (len(words), len(boxes))
        )
    return words, boxes


def page_words(page, textpage):
    """The words of an open pypdfium2 page and their relative boxes.

    Returns:
        the stored form (:func:`pack`)
    """
    n = textpage.count_chars()
    text = textpage.get_text_range(0, n) if n else ""
    if len(text) != n:
        # characters outside the Basic Multilingual Plane come back as two
        # UTF-16 halves: read them one by one
        text = "".join(
            (textpage.get_text_range(i, 1) or " ")[:1] for i in range(n)
        )
    boxes = [textpage.get_charbox(i) for i in range(n)]
    page_box = page.get_bbox()
    rotation = page.get_rotation()
    words = group_words(text, boxes)
    return pack(
        [w for w, _ in words],
        [relative_box(b, page_box, rotation) for _, b in words],
    )
