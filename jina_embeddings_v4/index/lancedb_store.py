"""The multi-vector index in LanceDB: embedded, on local disk.

One table per index, one row per page: ``sample_id``, ``vector`` (the
single vector), ``multivector`` (``[n_tokens, 128]``, a list of
fixed-size lists: float16, or int8 codes with ``token_scales``, a
list of one float32 scale per token, see ``scoring/quantize.py``),
``grid_rows``, ``grid_cols`` and ``image_offset``. The table's own schema
says which dtype it holds: a write in the other one is refused.

LanceDB's files are read by any number of processes at once (the App
server is one), so nothing is kept open between calls beyond the
connection. The first stage is LanceDB's own vector search (exact scan,
dot product) on the single vectors; the candidates' multi vectors are
then fetched and ranked by exact MaxSim in process. An exhaustive search
reads the table in batches of ``st.RERANK_CHUNK`` pages, each scored
without padding from Arrow's flat token buffer
(``scoring/flat_maxsim.py``), keeping a running top k; with
``scan_cache=True`` it reads a flat copy of the multi vectors instead
(``scan_cache.py``), made again whenever the table's version moved on.

The single vector is float32 in a float16 table and float16 in an int8
one (:data:`SINGLE_DTYPES`): 2048 float32 values, in the table and again
in its IVF index, weigh about 16 KB, a tenth of an int8 page. LanceDB
searches a float16 column with the query rounded to float16 (and sums in
float32), so the first stage differs from float32's by that rounding
only; MaxSim never reads single vectors. Writes keep the type the table
already has: an int8 table made before this change keeps float32 single
vectors (:meth:`LanceDBStore.stored_single_dtype`).
"""

import datetime
import functools
import logging
import math
import os
import random
import time
import warnings

import numpy as np

from ..scoring import quantize
from . import scan_cache
from . import store as st

logger = logging.getLogger(__name__)

_ID = "sample_id"
_MULTI = "multivector"
_SCALE = "token_scales"
_TEXT = "text"
_IN_CHUNK = 1000
# the scan file of table T is <uri>/T.jina-scan (scan_cache=True)
SCAN_SUFFIX = ".jina-scan"

# the single vector's type in new tables, per multivector_dtype
SINGLE_DTYPES = {"float16": "float32", "int8": "float16"}

# Below this many rows the first stage is an exact scan (a few tens of
# milliseconds); from here on an IVF_FLAT index, probing a quarter of its
# partitions (rows added since the index was built are scanned exactly)
ANN_MIN_ROWS = 5000


# Old versions are deleted this long after a build or addition: a reader
# that opened a version just before it was superseded keeps its files
CLEANUP_GRACE = datetime.timedelta(minutes=10)

# Reads that meet files a writer's cleanup removed re-open the latest
# version and try again; writes that lose a commit race to another writer
# are tried again (LanceDB calls these conflicts retryable)
READ_RETRIES = 4
COMMIT_RETRIES = 8


def _is_missing_file(error):
    return "not found" in str(error).lower() and "lance" in str(error).lower()


def _is_commit_conflict(error):
    text = str(error).lower()
    return "conflict" in text and ("retry" in text or "commit" in text)


def _retrying(retries, retryable, pause, what):
    """A decorator of store methods: runs the method again, on the latest
    version, up to ``retries`` times when it raises an error that
    ``retryable(error)`` accepts, sleeping ``pause(attempt)`` seconds
    first."""

    def decorator(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            for attempt in range(retries + 1):
                try:
                    return method(self, *args, **kwargs)
                except Exception as e:
                    if attempt == retries or not retryable(e):
                        raise
                    logger.debug("%s %s: %s", what, self.table_name, e)
                    self._table = None
                    time.sleep(pause(attempt))

        return wrapper

    return decorator


# a read runs again on the latest version when files it needed were
# cleaned up by a concurrent writer
retried_read = _retrying(
    READ_RETRIES,
    _is_missing_file,
    lambda attempt: 0.05 * (attempt + 1),
    "Re-reading",
)

# a write runs again when a concurrent writer committed first, or cleaned
# up the version it started from (writes here are idempotent: upserts by
# sample id, deletes)
retried_commit = _retrying(
    COMMIT_RETRIES,
    lambda e: _is_commit_conflict(e) or _is_missing_file(e),
    lambda attempt: random.uniform(0.05, 0.2) * (attempt + 1),
    "Retrying a write to",
)


def _partitions(rows):
    return max(16, int(math.sqrt(rows)))


def _nprobes(rows):
    return max(8, _partitions(rows) // 4)


class LanceDBStore(object):
    """A multi-vector index in a LanceDB table.

    Args:
        uri: the LanceDB folder
        table_name: the table
        multivector_dtype ("float16"): how new rows store multi vectors,
            ``"float16"`` or ``"int8"``
        scan_cache (False): exhaustive searches read the multi vectors
            from a flat copy, ``<uri>/<table_name>.jina-scan``, rebuilt
            from the table whenever the table's version moved on
            (:mod:`.scan_cache`); a local folder only
    """

    def __init__(
        self,
        uri,
        table_name,
        multivector_dtype=quantize.DEFAULT_MULTIVECTOR_DTYPE,
        scan_cache=False,
    ):
        lancedb = st.import_engine("lancedb")
        # LanceDB warns at every fork once imported; the processes forked
        # here (FiftyOne's data loader workers, PDF renderers) never use
        # LanceDB, which is what its warning is about
        warnings.filterwarnings(
            "ignore",
            message="lancedb fork support is experimental",
            category=RuntimeWarning,
        )
        self.uri = uri
        self.table_name = table_name
        self.multivector_dtype = quantize.check_multivector_dtype(
            multivector_dtype
        )
        if scan_cache and "://" in uri and not uri.startswith("file://"):
            raise ValueError(
                "scan_cache=True needs a local LanceDB folder, not %r" % uri
            )
        self.scan_cache = bool(scan_cache)
        self._pa = _import_pyarrow()
        try:
            self._db = lancedb.connect(uri)
        except Exception as e:
            raise ValueError(
                "Could not open the LanceDB folder %r: %s" % (uri, e)
            ) from e

        self._table = None

    # -- what it holds -----------------------------------------------------

    @property
    def table(self):
        """The LanceDB table, or None before the first row is written."""
        if self._table is None:
            if self.table_name in self._db.list_tables().tables:
                try:
                    self._table = self._db.open_table(self.table_name)
                except ValueError as e:
                    # listed while another process creates (or drops) it:
                    # not there yet
                    if "not found" not in str(e):
                        raise
        else:
            # other processes may have written since
            self._table.checkout_latest()

        return self._table

    def exists(self):
        """Whether the table exists (it is created by the first write)."""
        return self.table is not None

    def where(self):
        """Where the pages are, for messages."""
        return "LanceDB table %r in %s" % (self.table_name, self.uri)

    def stored_dtype(self):
        """The table's multi-vector dtype (``"float16"`` or ``"int8"``),
        or None before the table exists."""
        table = self.table
        if table is None:
            return None
        return "int8" if _SCALE in table.schema.names else "float16"

    def stored_single_dtype(self):
        """The type of the table's single vectors (``"float32"`` or
        ``"float16"``), or None before the table exists."""
        table = self.table
        if table is None:
            return None
        return _single_dtype(table.schema)

    @retried_read
    def count(self):
        table = self.table
        return 0 if table is None else table.count_rows()

    @retried_read
    def ids(self):
        table = self.table
        if table is None:
            return []

        out = table.search().select([_ID]).limit(None).to_arrow()
        return out[_ID].to_pylist()

    @retried_read
    def has(self, ids):
        return set(self._select(ids, [_ID])[_ID])

    # -- writing -----------------------------------------------------------

    @retried_commit
    def upsert(self, rows):
        if not len(rows):
            return

        table = self.table
        stored = self.stored_dtype()
        if stored is not None and stored != self.multivector_dtype:
            raise st.dtype_mismatch(self.where(), stored, self.multivector_dtype)
        singles = (
            SINGLE_DTYPES[self.multivector_dtype]
            if table is None
            else _single_dtype(table.schema)
        )
        data = self._to_arrow(rows, singles)
        if table is None:
            try:
                self._table = self._db.create_table(self.table_name, data=data)
                return
            except ValueError as e:
                # another writer created it first: add to theirs
                if "already exists" not in str(e):
                    raise
                table = self._db.open_table(self.table_name)
                self._table = table

        # use_index(False): with the id index out of date (the batches
        # written since the last finalize), LanceDB's indexed join reads
        # whole rows of the unindexed ones, multi vectors included, at
        # every upsert: a long build slowed from 390 to 107 pages/s within
        # 1,000 pages, its memory growing (benchmarks/bench_index.py
        # --scale); the scan join reads the id column only
        (
            table.merge_insert(_ID)
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .use_index(False)
            .execute(data)
        )

    @retried_commit
    def delete(self, ids):
        table = self.table
        if table is None:
            return

        for chunk in _chunks(list(ids), _IN_CHUNK):
            table.delete(_in_clause(chunk))

    def finalize(self):
        """After a build (or additions): compacts the one-fragment-per-batch
        writes, deletes versions superseded more than ``CLEANUP_GRACE``
        ago (so the folder holds little more than the index, and readers
        of a version just superseded keep working), indexes the sample
        ids, and from
        ``ANN_MIN_ROWS`` rows on gives the single vectors an IVF_FLAT index
        for the first stage. Each step runs again on the latest version
        when a concurrent writer wins the commit or cleans up its files."""
        if self.table is None:
            return

        self._optimize()
        self._index()

    @retried_commit
    def _index(self):
        """Indexes what ``finalize`` indexes, where not yet indexed (so a
        retry after a lost commit race does only what is left)."""
        table = self.table
        if table is None:
            # dropped meanwhile
            return
        indexed = {c for i in table.list_indices() for c in i.columns}
        if _ID not in indexed:
            from lancedb.index import BTree

            table.create_index(_ID, config=BTree())

        if self.has_text() and _TEXT not in indexed:
            # the terms are ours (scoring/lexical.py): split on spaces only
            table.create_fts_index(
                _TEXT,
                base_tokenizer="whitespace",
                lower_case=False,
                stem=False,
                remove_stop_words=False,
                ascii_folding=False,
                with_position=False,
                max_token_length=None,
                replace=True,
            )

        rows = table.count_rows()
        if "vector" not in indexed and rows >= ANN_MIN_ROWS:
            from lancedb.index import IvfFlat

            table.create_index(
                "vector",
                config=IvfFlat(
                    distance_type="dot", num_partitions=_partitions(rows)
                ),
            )

    def has_text(self):
        """Whether the table has the text column of hybrid search."""
        table = self.table
        return table is not None and _TEXT in table.schema.names

    @retried_commit
    def update_texts(self, ids, texts):
        """Replaces the texts of pages the table holds (no vectors move)."""
        table = self.table
        if table is None or not len(ids):
            return
        pa = self._pa
        data = pa.Table.from_arrays(
            [pa.array(list(ids), pa.string()), pa.array(list(texts), pa.string())],
            names=[_ID, _TEXT],
        )
        (
            table.merge_insert(_ID)
            .when_matched_update_all()
            .use_index(False)
            .execute(data)
        )

    @retried_read
    def text_search(self, terms, limit, allowed_ids=None):
        """The ids and BM25 scores (LanceDB's full-text index) of the
        ``limit`` best pages holding any of ``terms``, best first."""
        table = self.table
        words = sorted(set(terms))
        if (
            table is None
            or not words
            or not self.has_text()
            or (allowed_ids is not None and not allowed_ids)
        ):
            return [], []

        search = (
            table.search(" ".join(words), query_type="fts", fts_columns=_TEXT)
            .select([_ID, "_score"])
            .limit(limit)
        )
        if allowed_ids is not None:
            search = search.where(_in_clause(allowed_ids), prefilter=True)
        out = search.to_arrow()
        return out[_ID].to_pylist(), [float(s) for s in out["_score"].to_pylist()]

    @retried_commit
    def _optimize(self):
        table = self.table
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*cleanup_older_than")
            table.optimize(cleanup_older_than=CLEANUP_GRACE)

    def drop(self):
        if self.table_name in self._db.list_tables().tables:
            self._db.drop_table(self.table_name)
        self._table = None
        scan_cache.remove(self._scan_path())

    def close(self):
        self._table = None

    # -- reading -----------------------------------------------------------

    @retried_read
    def fetch(self, ids, multi=True):
        columns = [_ID, "vector", "grid_rows", "grid_cols", "image_offset"]
        if multi:
            columns.append(_MULTI)
            if self.stored_dtype() == "int8":
                columns.append(_SCALE)

        found = self._select(ids, columns)
        position = {sample_id: i for i, sample_id in enumerate(found[_ID])}
        order = [position[i] for i in ids if i in position]
        return PageColumns(found).rows(order, multi)

    @retried_read
    def search(self, query, k, candidates=None, allowed_ids=None, reverse=False):
        table = self.table
        if table is None or (allowed_ids is not None and not allowed_ids):
            return [], []

        where = None if allowed_ids is None else _in_clause(allowed_ids)
        if query.multis is None:
            return self._first_stage(query, k, where, reverse)

        total = len(allowed_ids) if allowed_ids is not None else self.count()
        if candidates is None or candidates >= total:
            return self._exhaustive(query, k, where, reverse, allowed_ids)

        ids, _ = self._first_stage(query, candidates, where, reverse)
        return st.maxsim_rank(query, self.fetch(ids), k, reverse)

    def _first_stage(self, query, limit, where, reverse):
        vector = query.mean_single()
        search = (
            self.table.search(
                -vector if reverse else vector, vector_column_name="vector"
            )
            .distance_type("dot")
            .select([_ID, "_distance"])
            .nprobes(_nprobes(self.count()))
        )
        if where is not None:
            search = search.where(where, prefilter=True)
        if limit is not None:
            search = search.limit(limit)
        else:
            search = search.limit(self.count())

        out = search.to_arrow()
        # distance "dot" is 1 - <q, v>
        dots = 1.0 - np.asarray(out["_distance"].to_numpy(), np.float64)
        scores = -dots if reverse else dots
        return out[_ID].to_pylist(), [float(s) for s in scores]

    def _exhaustive(self, query, k, where, reverse, allowed_ids=None):
        scan = self._scan_file(allowed_ids)
        if scan is None:
            batches = self._token_batches(where)
            return st.stream_maxsim(query, batches, k, reverse)

        try:
            allowed = None if allowed_ids is None else set(allowed_ids)
            batches = scan.batches(st.RERANK_CHUNK, allowed)
            return st.stream_maxsim(query, batches, k, reverse)
        finally:
            scan.close()

    def _scan_path(self):
        folder = self.uri
        if folder.startswith("file://"):
            folder = folder[len("file://"):]
        return os.path.join(folder, self.table_name + SCAN_SUFFIX)

    def _scan_tag(self, table):
        """What the scan file must be a copy of: this table's current
        version (and its time: a table dropped and made again restarts
        its version numbers)."""
        version = table.version
        stamp = None
        for v in table.list_versions():
            if v["version"] == version:
                stamp = str(v["timestamp"])
        return [self.table_name, version, stamp, self.stored_dtype()]

    def _scan_file(self, allowed_ids):
        """The open scan file of the table's current version, rebuilt
        when stale; None without ``scan_cache``, when a filtered scan of
        the table reads less (``allowed_ids`` under a quarter of the
        pages), or when the file cannot be written."""
        if not self.scan_cache:
            return None
        table = self.table
        if allowed_ids is not None and 4 * len(allowed_ids) < self.count():
            return None

        tag = self._scan_tag(table)
        path = self._scan_path()
        scan = scan_cache.open_current(path, tag)
        if scan is not None:
            return scan

        # a copy of exactly the tagged version, whatever is written since
        snapshot = self._db.open_table(self.table_name)
        snapshot.checkout(tag[1])
        try:
            scan_cache.write(
                path, tag, self._token_batches(None, snapshot), st.MULTI_DIM
            )
        except OSError as e:
            logger.warning(
                "Could not write the scan file %s (%s); scanning the table",
                path,
                e,
            )
            return None
        return scan_cache.open_current(path, tag)

    def _token_batches(self, where, table=None):
        """``(ids, tokens, offsets, scales)`` of the table's pages (those
        ``where`` selects), ``st.RERANK_CHUNK`` at a time."""
        table = self.table if table is None else table
        int8 = _SCALE in table.schema.names
        columns = [_ID, _MULTI] + ([_SCALE] if int8 else [])
        scan = table.search().select(columns)
        if where is not None:
            scan = scan.where(where)

        for batch in scan.limit(None).to_batches(st.RERANK_CHUNK):
            if not batch.num_rows:
                continue
            tokens, offsets = _flat(batch.column(_MULTI), 2)
            scales = _flat(batch.column(_SCALE), 1)[0] if int8 else None
            yield batch.column(_ID).to_pylist(), tokens, offsets, scales

    def _select(self, ids, columns):
        table = self.table
        found = {c: [] for c in columns}
        if table is None:
            return found

        for chunk in _chunks(list(ids), _IN_CHUNK):
            out = (
                table.search()
                .where(_in_clause(chunk))
                .select(columns)
                .limit(len(chunk))
                .to_arrow()
            )
            for c in columns:
                found[c].extend(_column(out, c))

        return found

    def _to_arrow(self, rows, single_dtype):
        """The rows as an Arrow table, single vectors in ``single_dtype``
        (``"float32"`` or ``"float16"``)."""
        pa = self._pa
        singles = np.ascontiguousarray(rows.singles, dtype=single_dtype)
        vector = pa.FixedSizeListArray.from_arrays(
            pa.array(singles.reshape(-1)), singles.shape[1]
        )
        lengths = [len(m) for m in rows.multis]
        offsets = pa.array(
            np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        )
        scale = None
        if self.multivector_dtype == "int8":
            pairs = [quantize.quantize_int8(m) for m in rows.multis]
            flat = np.concatenate([c for c, _ in pairs])
            scale = pa.ListArray.from_arrays(
                offsets, pa.array(np.concatenate([s for _, s in pairs]))
            )
        else:
            flat = np.concatenate(
                [np.asarray(m, dtype=np.float16) for m in rows.multis]
            )
        tokens = pa.FixedSizeListArray.from_arrays(
            pa.array(flat.reshape(-1)), st.MULTI_DIM
        )
        multivector = pa.ListArray.from_arrays(offsets, tokens)
        grids = np.asarray(rows.grids, dtype=np.int32).reshape(-1, 3)
        arrays = [
            pa.array(rows.ids, pa.string()),
            vector,
            multivector,
            pa.array(grids[:, 0]),
            pa.array(grids[:, 1]),
            pa.array(grids[:, 2]),
        ]
        names = [
            _ID,
            "vector",
            _MULTI,
            "grid_rows",
            "grid_cols",
            "image_offset",
        ]
        if scale is not None:
            arrays.append(scale)
            names.append(_SCALE)
        if rows.texts is not None:
            arrays.append(pa.array(rows.texts, pa.string()))
            names.append(_TEXT)
        return pa.Table.from_arrays(arrays, names=names)


class PageColumns(object):
    """Turns columns read from the table into :class:`store.PageRows`."""

    def __init__(self, columns):
        self._columns = columns

    def _get(self, name):
        return _column(self._columns, name)

    def rows(self, order, multi):
        order = list(order)
        ids = self._get(_ID)
        out = st.PageRows(ids=[ids[i] for i in order])
        names = _names(self._columns)
        if "vector" in names:
            vectors = self._get("vector")
            out.singles = (
                np.stack([np.asarray(vectors[i], np.float32) for i in order])
                if order
                else np.zeros((0, 0), np.float32)
            )
        if multi:
            multis = self._get(_MULTI)
            if _SCALE in names:
                scales = self._get(_SCALE)
                out.multis = [
                    quantize.dequantize_int8(multis[i], scales[i])
                    for i in order
                ]
            else:
                out.multis = [_tokens(multis[i]) for i in order]
        if "grid_rows" in names:
            r, c, o = (
                self._get(n) for n in ("grid_rows", "grid_cols", "image_offset")
            )
            out.grids = [(int(r[i]), int(c[i]), int(o[i])) for i in order]
        return out


def _single_dtype(schema):
    """``"float16"`` or ``"float32"``: the single vectors' type in a
    table of this schema."""
    pa = _import_pyarrow()
    value = schema.field("vector").type.value_type
    return "float16" if value == pa.float16() else "float32"


def _tokens(value):
    return np.asarray(value, dtype=np.float16).reshape(-1, st.MULTI_DIM)


def _column(table, name):
    """A column as a list of Python values, except the list columns,
    which stay Arrow arrays (flattened without copies)."""
    if isinstance(table, dict):
        return table[name]

    column = table.column(name)
    if name in (_MULTI, _SCALE):
        values, offsets = _flat(column, 2 if name == _MULTI else 1)
        base = offsets[0]
        return [
            values[offsets[i] - base : offsets[i + 1] - base]
            for i in range(len(offsets) - 1)
        ]
    if name == "vector":
        column = _combine(column)
        dim = column.type.list_size
        flat = column.flatten().to_numpy(zero_copy_only=False)
        return list(flat.reshape(-1, dim)) if len(column) else []

    return column.to_pylist()


def _flat(column, depth):
    """A list column's values end to end (tokens ``[n, 128]`` at
    ``depth`` 2, scales ``[n]`` at 1) and its row offsets, without
    copies where Arrow allows."""
    column = _combine(column)
    offsets = column.offsets.to_numpy()
    # flatten() honours slicing (.values would not)
    values = column.flatten()
    if depth == 2:
        values = values.flatten()
    values = values.to_numpy(zero_copy_only=False)
    if depth == 2:
        values = values.reshape(-1, st.MULTI_DIM)
    return values, offsets


def _combine(column):
    if hasattr(column, "combine_chunks"):
        return column.combine_chunks()

    return column


def _names(table):
    if isinstance(table, dict):
        return list(table)

    return table.schema.names


def _import_pyarrow():
    import pyarrow

    return pyarrow


def _in_clause(ids):
    # sample ids are 24 hex characters: nothing to escape, but be strict
    for i in ids:
        if not isinstance(i, str) or not i.isalnum():
            raise ValueError("Invalid sample id %r" % (i,))

    return "%s IN (%s)" % (_ID, ", ".join("'%s'" % i for i in ids))


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]
