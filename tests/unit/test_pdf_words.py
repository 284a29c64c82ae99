"""Words of a PDF text layer and their boxes on the rendered page, by hand."""

import pytest

import numpy as np

from jina_embeddings_v4.io.pdf_words import group_words, pack, relative_box, unpack


def test_words_are_whitespace_free_runs_with_the_union_of_their_boxes():
    text = "ab c\r\nd"
    boxes = [
        (0, 0, 1, 2),
        (1, -1, 2, 3),
        (0, 0, 0, 0),  # a space pdfium generated: no box
        (5, 1, 6, 2),
        (0, 0, 0, 0),
        (0, 0, 0, 0),
        (7, 7, 8, 9),
    ]
    assert group_words(text, boxes) == [
        ("ab", (0, -1, 2, 3)),
        ("c", (5, 1, 6, 2)),
        ("d", (7, 7, 8, 9)),
    ]
    # a word made only of box-less characters has no place to draw
    assert group_words("x y", [(0, 0, 0, 0), (0, 0, 0, 0), (1, 1, 2, 2)]) == [
        ("y", (1, 1, 2, 2))
    ]
    with pytest.raises(ValueError, match="3 characters but 2 boxes"):
        group_words("abc", [(0, 0, 1, 1)] * 2)


# a 100 x 200 pt page whose crop box starts at (50, 20); the box is 10 pt
# from the left, 20 pt below the top, 30 pt wide, 40 pt high
PAGE = (50, 20, 150, 220)
BOX = (60, 160, 90, 200)


@pytest.mark.parametrize(
    "rotation, expected",
    [
        # unrotated: x = 10/100, y = 20/200, w = 30/100, h = 40/200
        (0, [0.1, 0.1, 0.3, 0.2]),
        # turned clockwise: the top edge becomes the right edge; the page
        # is 200 wide and 100 high: x = 1 - (20 + 40)/200, y = 10/100
        (90, [0.7, 0.1, 0.2, 0.3]),
        (180, [0.6, 0.7, 0.3, 0.2]),
        # counter-clockwise: the top edge becomes the left edge
        (270, [0.1, 0.6, 0.2, 0.3]),
    ],
)
def test_boxes_are_relative_to_the_page_as_rendered(rotation, expected):
    assert relative_box(BOX, PAGE, rotation) == pytest.approx(expected)


def test_boxes_are_clipped_to_the_page_and_bad_input_named():
    assert relative_box((40, 210, 60, 230), PAGE) == pytest.approx(
        [0.0, 0.0, 0.1, 0.05]
    )
    with pytest.raises(ValueError, match="rotation must be"):
        relative_box(BOX, PAGE, 45)
    with pytest.raises(ValueError, match="Empty page box"):
        relative_box(BOX, (0, 0, 0, 10))


def test_words_are_stored_compactly_and_read_back_within_a_pixel():
    words = ["Invoice", "INV-2024-0113", "é"]
    boxes = [[0.1, 0.2, 0.3, 0.05], [0.0, 0.0, 1.0, 1.0], [0.123456, 0.5, 0.01, 0.02]]
    stored = pack(words, boxes)
    assert stored["format"] == "words-uint16-xywh"
    assert stored["text"] == "Invoice INV-2024-0113 é"
    # 4 x 2 bytes per word, base64: 32 characters for 3 words
    assert len(stored["boxes"]) == 32
    back_words, back_boxes = unpack(stored)
    assert back_words == words
    assert np.abs(np.asarray(back_boxes) - np.asarray(boxes)).max() <= 0.5 / 65535 + 1e-5
    assert unpack(None) == ([], []) and unpack(pack([], [])) == ([], [])


def test_bad_word_data_is_named():
    with pytest.raises(ValueError, match="2 words but 1 boxes"):
        pack(["a", "b"], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="no whitespace"):
        pack(["a b"], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="relative"):
        pack(["a"], [[0, 0, 2, 1]])
    with pytest.raises(ValueError, match="Unknown word-box format"):
        unpack({"format": "v0", "text": "a", "boxes": ""})
    damaged = dict(pack(["a", "b"], [[0, 0, 1, 1]] * 2), text="a")
    with pytest.raises(ValueError, match="damaged: 1 words but 2 boxes"):
        unpack(damaged)
