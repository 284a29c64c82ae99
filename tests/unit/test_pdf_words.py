"""Words of a PDF text layer and their boxes on the rendered page, by hand."""

import pytest

from jina_embeddings_v4.io.pdf_words import group_words, relative_box


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
