"""The scan file: pages written end to end, read back batch by batch,
used only while its tag is current, replaced whole or not at all.

Tiny hand-made pages (dim 2) whose values are checked one by one.
"""

import os

import numpy as np
import pytest

from jina_embeddings_v4.index import scan_cache

# three pages of 1, 2 and 1 tokens, in two batches
CODES = np.array([[1, 2], [3, 4], [5, 6], [-7, -8]], np.int8)
SCALES = np.array([0.5, 1.0, 2.0, 0.25], np.float32)
BATCHES = [
    (["a", "b"], CODES[:3], np.array([0, 1, 3]), SCALES[:3]),
    (["c"], CODES[3:], np.array([3, 4]), SCALES[3:]),
]


def _all(scan, **kwargs):
    out = list(scan.batches(**kwargs))
    return (
        [i for b in out for i in b[0]],
        np.concatenate([b[1] for b in out]),
        [list(np.diff(b[2])) for b in out],
        np.concatenate([b[3] for b in out]),
    )


def test_written_pages_come_back_in_batches(tmp_path):
    path = str(tmp_path / "t.jina-scan")
    assert scan_cache.write(path, ["t", 3], iter(BATCHES), dim=2) == 3
    header = scan_cache.read_header(path)
    assert header["pages"] == 3 and header["tokens"] == 4
    assert header["dtype"] == "int8" and header["tag"] == ["t", 3]

    scan = scan_cache.open_current(path, ["t", 3])
    try:
        assert scan.ids == ["a", "b", "c"]
        assert scan.offsets.tolist() == [0, 1, 3, 4]
        ids, tokens, lengths, scales = _all(scan, pages=2)
        assert ids == ["a", "b", "c"]
        assert tokens.tolist() == CODES.tolist()
        assert lengths == [[1, 2], [1]]
        assert scales.tolist() == SCALES.tolist()
        # one page at a time: offsets of each batch start where it starts
        batches = list(scan.batches(pages=1))
        assert [b[2].tolist() for b in batches] == [[0, 1], [1, 3], [3, 4]]
        # only the allowed pages, end to end
        ids, tokens, lengths, scales = _all(scan, pages=3, allowed={"a", "c"})
        assert ids == ["a", "c"] and lengths == [[1, 1]]
        assert tokens.tolist() == [[1, 2], [-7, -8]]
        assert scales.tolist() == [0.5, 0.25]
    finally:
        scan.close()


def test_float16_pages_have_no_scales(tmp_path):
    path = str(tmp_path / "f.jina-scan")
    tokens = np.array([[0.5, -1.5], [2.0, 0.25]], np.float16)
    scan_cache.write(path, "v1", [(["x", "y"], tokens, [0, 1, 2], None)], 2)
    scan = scan_cache.open_current(path, "v1")
    try:
        (ids, got, offsets, scales), = list(scan.batches())
        assert got.dtype == np.float16 and got.tolist() == tokens.tolist()
        assert ids == ["x", "y"] and scales is None
    finally:
        scan.close()


def test_a_stale_missing_or_foreign_file_is_not_used(tmp_path):
    path = str(tmp_path / "t.jina-scan")
    assert scan_cache.open_current(path, "v1") is None
    scan_cache.write(path, ["t", 3], BATCHES, dim=2)
    assert scan_cache.open_current(path, ["t", 4]) is None
    with open(path, "r+b") as f:
        f.write(b"not a scan file")
    assert scan_cache.open_current(path, ["t", 3]) is None
    scan_cache.remove(path)
    scan_cache.remove(path)  # nothing there: no error
    assert not os.path.exists(path)


def test_a_damaged_file_is_rebuilt_not_read(tmp_path):
    path = str(tmp_path / "t.jina-scan")
    scan_cache.write(path, "v", BATCHES, dim=2)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 3)  # the ids section cut short
    assert scan_cache.open_current(path, "v") is None


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "t.jina-scan")
    scan_cache.write(path, "old", BATCHES, dim=2)

    def failing():
        yield BATCHES[0]
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        scan_cache.write(path, "new", failing(), dim=2)
    assert os.listdir(tmp_path) == ["t.jina-scan"]
    assert scan_cache.read_header(path)["tag"] == "old"

    # mixed dtypes and wrong widths are refused the same way
    mixed = [BATCHES[0], (["z"], np.zeros((1, 2), np.float16), [0, 1], None)]
    with pytest.raises(ValueError, match="one dtype"):
        scan_cache.write(path, "new", mixed, dim=2)
    with pytest.raises(ValueError, match=r"\[n, 3\]"):
        scan_cache.write(path, "new", BATCHES, dim=3)
    with pytest.raises(ValueError, match="need scales"):
        scan_cache.write(path, "new", [(["a"], CODES[:1], [0, 1], None)], 2)
    assert os.listdir(tmp_path) == ["t.jina-scan"]
    assert scan_cache.read_header(path)["tag"] == "old"


def test_a_short_file_is_rebuilt_and_batches_are_read_only(tmp_path):
    path = str(tmp_path / "t.jina-scan")
    scan_cache.write(path, "v1", BATCHES, dim=2)
    scan = scan_cache.open_current(path, "v1")
    try:
        (_, tokens, _, scales), _ = list(scan.batches(pages=2))
        # views of the mapped file: a search can never write into it
        with pytest.raises(ValueError, match="read-only"):
            tokens[0, 0] = 9
        with pytest.raises(ValueError, match="read-only"):
            scales[0] = 9
    finally:
        scan.close()
    # a batch held past close() still reads the file's values
    assert tokens.tolist() == CODES[:3].tolist()

    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 3)
    assert scan_cache.open_current(path, "v1") is None
