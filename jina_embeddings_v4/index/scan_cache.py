"""A flat file of a store's multi vectors, read end to end by an
exhaustive search.

An exhaustive MaxSim reads every token of every page. A LanceDB scan of
the nested multi-vector column decodes at 0.3-0.8 GB/s on a 2-core CPU;
the same tokens laid end to end in one file come back from the operating
system's page cache several times faster. This file is derived data: the
store stays the only source of truth. The file carries a tag (the table's
version and that version's time) and is used only while the tag equals
the table's current one; otherwise it is rebuilt from one scan of that
version. A build writes a temporary file beside it and renames it into
place, so readers see the old file or the new one, never half of one; two
processes rebuilding at once each write their own and the last rename
wins (both are whole and equal).

Layout: a 4096-byte header (magic line, then JSON: tag, dtype, counts and
each section's byte range), then the tokens (``[n_tokens, 128]`` int8
codes or float16), each page's token offsets (int64), the per-token
scales (float32, int8 only) and the ids (UTF-8, one per line).

Knows nothing of FiftyOne or of any engine: it takes and gives batches
of ``(ids, tokens, offsets, scales)``, as ``store.stream_maxsim`` reads.
"""

import json
import logging
import mmap
import os
import uuid

import numpy as np

logger = logging.getLogger(__name__)

MAGIC = b"jina-embeddings-v4 scan file 1\n"
HEADER_BYTES = 4096
DTYPES = {"int8": np.int8, "float16": np.float16}


def _dtype_name(array):
    for name, dtype in DTYPES.items():
        if array.dtype == dtype:
            return name
    raise ValueError(
        "scan files hold int8 or float16 tokens, got %s" % array.dtype
    )


def write(path, tag, batches, dim):
    """Writes the pages of ``batches`` to ``path`` (atomically).

    Args:
        path: the file
        tag: a JSON-able value naming what the pages are a copy of
        batches: iterable of ``(ids, tokens, offsets, scales)``: tokens
            ``[n, dim]`` int8 (with float32 ``scales [n]``) or float16
            (``scales`` None), page ``p`` of a batch at
            ``offsets[p] - offsets[0]``
        dim: the tokens' width

    Returns:
        the number of pages written
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(
        folder,
        ".%s.tmp-%d-%s" % (os.path.basename(path), os.getpid(), uuid.uuid4().hex),
    )
    ids, lengths, dtype = [], [], None
    try:
        with open(tmp, "wb") as f:
            f.write(b"\0" * HEADER_BYTES)
            scale_parts = []
            for batch_ids, tokens, offsets, scales in batches:
                tokens = np.ascontiguousarray(tokens)
                name = _dtype_name(tokens)
                if dtype is None:
                    dtype = name
                elif name != dtype:
                    raise ValueError(
                        "a scan file holds one dtype: %s, then %s"
                        % (dtype, name)
                    )
                if tokens.ndim != 2 or tokens.shape[1] != dim:
                    raise ValueError(
                        "tokens must be [n, %d]; got %s" % (dim, tokens.shape)
                    )
                if (scales is None) != (name == "float16"):
                    raise ValueError("int8 tokens need scales; float16 none")
                offsets = np.asarray(offsets, dtype=np.int64)
                if len(offsets) != len(batch_ids) + 1 or (
                    offsets[-1] - offsets[0] != len(tokens)
                ):
                    raise ValueError("offsets must bound each page's tokens")
                f.write(memoryview(tokens).cast("B"))
                if scales is not None:
                    scale_parts.append(np.asarray(scales, dtype=np.float32))
                ids.extend(batch_ids)
                lengths.append(np.diff(offsets))
            dtype = dtype or "int8"

            lengths = (
                np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
            )
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(
                np.int64
            )
            sections = {}
            position = HEADER_BYTES
            itemsize = np.dtype(DTYPES[dtype]).itemsize
            sections["tokens"] = [position, int(offsets[-1]) * dim * itemsize]
            position += sections["tokens"][1]
            tail = [("offsets", offsets.tobytes())]
            if dtype == "int8":
                scales = (
                    np.concatenate(scale_parts)
                    if scale_parts
                    else np.zeros(0, np.float32)
                )
                tail.append(("scales", scales.tobytes()))
            text = "\n".join(ids).encode("utf-8")
            if any("\n" in i for i in ids):
                raise ValueError("ids must not hold line breaks")
            tail.append(("ids", text))
            for name, data in tail:
                sections[name] = [position, len(data)]
                f.write(data)
                position += len(data)

            header = MAGIC + json.dumps(
                {
                    "tag": tag,
                    "dtype": dtype,
                    "dim": dim,
                    "pages": len(ids),
                    "tokens": int(offsets[-1]),
                    "sections": sections,
                },
                sort_keys=True,
            ).encode("utf-8")
            if len(header) > HEADER_BYTES:
                raise ValueError("the tag is too long for a scan file")
            f.seek(0)
            f.write(header)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    logger.debug("Wrote %d pages to the scan file %s", len(ids), path)
    return len(ids)


class ScanFile(object):
    """A scan file opened for reading: :meth:`batches` reads its pages.

    Open one with :func:`open_current`. The file is memory-mapped: a
    batch's tokens are a read-only view of the operating system's page
    cache (no copy), and the pages of a batch are unmapped from this
    process once the next is asked for, so the memory a search holds
    stays one batch, whatever the file's size.
    """

    def __init__(self, path, handle, header):
        self.path = path
        self.dtype = header["dtype"]
        self.dim = header["dim"]
        self.pages = header["pages"]
        self._sections = header["sections"]
        try:
            end = max(a + n for a, n in self._sections.values())
            if os.fstat(handle.fileno()).st_size < end:
                raise ValueError("%s is damaged: it is short" % path)
            # mapped through this handle: the file read is this one even
            # when a rebuild renames a newer one into place meanwhile
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        finally:
            handle.close()
        try:
            self._read_index()
        except Exception:
            self.close()
            raise

    def _read_index(self):
        path = self.path
        self.offsets = self._view("offsets", np.int64).copy()
        start, size = self._sections["ids"]
        text = self._map[start : start + size].decode("utf-8")
        self.ids = text.split("\n") if self.pages else []
        if len(self.offsets) != self.pages + 1 or len(self.ids) != self.pages:
            raise ValueError("%s is damaged: its counts disagree" % path)
        self._tokens = self._view("tokens", DTYPES[self.dtype]).reshape(
            -1, self.dim
        )
        self._scales = (
            self._view("scales", np.float32) if self.dtype == "int8" else None
        )
        if len(self._tokens) != self.offsets[-1] or (
            self._scales is not None and len(self._scales) != len(self._tokens)
        ):
            raise ValueError("%s is damaged: its counts disagree" % path)

    def _view(self, name, dtype):
        start, size = self._sections[name]
        count = size // np.dtype(dtype).itemsize
        return np.frombuffer(self._map, dtype=dtype, count=count, offset=start)

    def batches(self, pages=256, allowed=None):
        """``(ids, tokens, offsets, scales)`` of ``pages`` pages at a time
        (those whose id is in ``allowed``, a set, when given); tokens and
        scales are read-only views of the file."""
        row_bytes = self.dim * self._tokens.itemsize
        for first in range(0, self.pages, pages):
            last = min(first + pages, self.pages)
            lo, hi = int(self.offsets[first]), int(self.offsets[last])
            tokens = self._tokens[lo:hi]
            scales = None if self._scales is None else self._scales[lo:hi]
            ids = self.ids[first:last]
            offsets = self.offsets[first : last + 1]
            if allowed is not None:
                keep = [i for i, page in enumerate(ids) if page in allowed]
                if not keep:
                    continue
                if len(keep) < len(ids):
                    ids, tokens, offsets, scales = _subset(
                        keep, ids, tokens, offsets, scales
                    )
            yield ids, tokens, offsets, scales
            self._forget(
                self._sections["tokens"][0] + lo * row_bytes,
                (hi - lo) * row_bytes,
            )

    def _forget(self, start, size):
        """Unmaps a read range from this process (the page cache keeps it;
        a view touched again reads it back)."""
        advise = getattr(self._map, "madvise", None)
        flag = getattr(mmap, "MADV_DONTNEED", None)
        if advise is None or flag is None or size <= 0:
            return
        first = start - start % mmap.PAGESIZE
        advise(flag, first, start + size - first)

    def close(self):
        """Drops the map (it goes once no returned view is left)."""
        self._tokens = self._scales = None
        try:
            self._map.close()
        except BufferError:
            # a caller still holds a batch: unmapped when it lets go
            pass


def _subset(keep, ids, tokens, offsets, scales):
    """The pages ``keep`` (positions) of one batch, end to end."""
    base = offsets[0]
    spans = [(offsets[i] - base, offsets[i + 1] - base) for i in keep]
    rows = np.concatenate([np.arange(a, b) for a, b in spans])
    lengths = [b - a for a, b in spans]
    new_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return (
        [ids[i] for i in keep],
        tokens[rows],
        new_offsets,
        None if scales is None else scales[rows],
    )


def _header(handle):
    head = handle.read(HEADER_BYTES)
    if not head.startswith(MAGIC):
        return None
    try:
        return json.loads(head[len(MAGIC):].rstrip(b"\0").decode("utf-8"))
    except ValueError:
        return None


def read_header(path):
    """The header of the scan file at ``path``, or None when there is
    none or it is not one."""
    try:
        with open(path, "rb") as f:
            return _header(f)
    except FileNotFoundError:
        return None


def open_current(path, tag):
    """The scan file at ``path`` when its tag is ``tag``, else None
    (missing, stale or damaged: rebuild it)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return None
    try:
        header = _header(handle)
        # the tag as the file keeps it (JSON: tuples come back as lists)
        if header is None or header.get("tag") != json.loads(json.dumps(tag)):
            handle.close()
            return None
        return ScanFile(path, handle, header)
    except (OSError, ValueError, KeyError, TypeError) as e:
        handle.close()
        logger.warning("Rebuilding the scan file %s: %s", path, e)
        return None


def remove(path):
    """Deletes the scan file at ``path`` (nothing when there is none)."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
