"""The multi-vector index in Qdrant: a server or cluster, or local mode.

One collection per index, one point per page, with two named vectors:
``dense`` (the single vector) and ``multi`` (the multi vectors, with
Qdrant's MaxSim comparator and no HNSW graph, as Qdrant recommends for
re-ranking vectors). A query is one request: a prefetch of the
``candidates`` best by ``dense``, ranked by MaxSim on ``multi`` inside the
engine, so a cluster does the work. Both use the dot product: the vectors
are unit length, and dot keeps the stored values as they are. Exhaustive
searches the engine cannot rank (least similar first, a mean over several
queries, int8) read the collection with ``scroll``, ``st.RERANK_CHUNK``
points at a time, and keep a running top k (``store.stream_maxsim``).

With ``multivector_dtype="int8"`` the points carry no ``multi`` vector:
their int8 codes and per-token float32 scales (``scoring/quantize.py``)
are in the payload (``multi_codes``, ``multi_scales``: base64 of the raw
bytes), and MaxSim runs in process, on the prefetched candidates or on
the whole collection read by ``scroll`` in batches. Why not in the
engine: qdrant-client 1.20's vector datatypes are ``float32``,
``float16``, ``uint8`` and the ``turbo`` ones; ``uint8`` has no per-vector
scale, so a MaxSim over it would compare tokens of different scales as
equals (the wrong maximum), and Qdrant's scalar quantization keeps the
float32 originals on disk beside the codes (no smaller). The collection's
vector config (a ``multi`` vector or not) tells which dtype it holds; a
write in the other one is refused.

``path=`` selects qdrant-client's local mode (same API, brute force, in
process). It locks its folder to one client, so the client is opened for
the duration of each call only: the App server and a Python session can
take turns on one folder.
"""

import base64
import contextlib
import logging
import uuid

import numpy as np

from ..scoring import lexical
from ..scoring import quantize
from . import store as st

logger = logging.getLogger(__name__)

_DENSE = "dense"
_MULTI = "multi"
_TEXT = "text"
_CODES = "multi_codes"
_SCALES = "multi_scales"
_PAGE = 1000


def point_id(sample_id):
    """The Qdrant point id of a sample id: its 12 bytes as a UUID."""
    return str(uuid.UUID(hex=sample_id + "0" * 8))


class QdrantStore(object):
    """A multi-vector index in a Qdrant collection.

    Args:
        collection_name: the collection
        url (None): a Qdrant server or cluster, e.g. ``http://host:6333``
        path (None): a local folder for qdrant-client's local mode
        api_key (None): the server's API key
        multivector_dtype ("float16"): how new points store multi vectors,
            ``"float16"`` (a ``multi`` vector) or ``"int8"`` (payload)
    """

    def __init__(
        self,
        collection_name,
        url=None,
        path=None,
        api_key=None,
        multivector_dtype=quantize.DEFAULT_MULTIVECTOR_DTYPE,
    ):
        if (url is None) == (path is None):
            raise ValueError(
                "The qdrant store needs exactly one of url= (a Qdrant "
                "server) or path= (qdrant-client's local mode)"
            )

        self._qdrant = st.import_engine("qdrant")
        from qdrant_client import models

        self._models = models
        self.collection_name = collection_name
        self.url = url
        self.path = path
        self._api_key = api_key
        self._server_client = None
        self.multivector_dtype = quantize.check_multivector_dtype(
            multivector_dtype
        )

    @contextlib.contextmanager
    def _client(self):
        if self.url is not None:
            if self._server_client is None:
                self._server_client = self._qdrant.QdrantClient(
                    url=self.url, api_key=self._api_key
                )
            yield self._server_client
            return

        try:
            client = self._qdrant.QdrantClient(path=self.path)
        except RuntimeError as e:
            raise RuntimeError(
                "Qdrant local mode allows one client per folder and %r is "
                "open in another process (the App server, say, during a "
                "search); try again, or use a Qdrant server (url=) for "
                "concurrent access: %s" % (self.path, e)
            ) from e
        try:
            yield client
        finally:
            client.close()

    def check_connection(self):
        """Raises a ConnectionError naming the url when Qdrant cannot be
        reached."""
        try:
            if self.url is not None:
                # no version check: an unreachable server would warn first
                client = self._qdrant.QdrantClient(
                    url=self.url,
                    api_key=self._api_key,
                    check_compatibility=False,
                )
                try:
                    client.get_collections()
                finally:
                    client.close()
            else:
                with self._client() as client:
                    client.get_collections()
        except Exception as e:
            where = self.url if self.url is not None else self.path
            raise ConnectionError(
                "Could not reach Qdrant at %r: %s" % (where, e)
            ) from e

    # -- what it holds -----------------------------------------------------

    def _exists(self, client):
        return client.collection_exists(self.collection_name)

    def exists(self):
        """Whether the collection exists (created by the first write)."""
        with self._client() as client:
            return self._exists(client)

    def where(self):
        """Where the pages are, for messages."""
        return "Qdrant collection %r at %s" % (
            self.collection_name,
            self.url if self.url is not None else self.path,
        )

    def _stored_dtype(self, client):
        if not self._exists(client):
            return None
        vectors = client.get_collection(self.collection_name).config.params
        return "float16" if _MULTI in (vectors.vectors or {}) else "int8"

    def stored_dtype(self):
        """The collection's multi-vector dtype (``"float16"`` or
        ``"int8"``), or None before the collection exists."""
        with self._client() as client:
            return self._stored_dtype(client)

    def count(self):
        with self._client() as client:
            if not self._exists(client):
                return 0
            return client.count(self.collection_name, exact=True).count

    def ids(self):
        with self._client() as client:
            if not self._exists(client):
                return []
            return self._scroll_ids(client)

    def _scroll_ids(self, client):
        ids, offset = [], None
        while True:
            points, offset = client.scroll(
                self.collection_name,
                limit=_PAGE,
                offset=offset,
                with_payload=["sample_id"],
                with_vectors=False,
            )
            ids.extend(p.payload["sample_id"] for p in points)
            if offset is None:
                return ids

    def has(self, ids):
        rows = self.fetch(ids, multi=False, vectors=False)
        return set(rows.ids)

    # -- writing -----------------------------------------------------------

    def upsert(self, rows):
        if not len(rows):
            return

        m = self._models
        texts = rows.texts if rows.texts is not None else [None] * len(rows)
        int8 = self.multivector_dtype == "int8"
        with self._client() as client:
            stored = self._stored_dtype(client)
            if stored is None:
                self._create(
                    client, rows.singles.shape[1], text=rows.texts is not None
                )
            elif stored != self.multivector_dtype:
                raise st.dtype_mismatch(
                    self.where(), stored, self.multivector_dtype
                )
            points = []
            for sample_id, single, multi, grid, text in zip(
                rows.ids, rows.singles, rows.multis, rows.grids, texts
            ):
                vector = {_DENSE: np.asarray(single, np.float32).tolist()}
                payload = {
                    "sample_id": sample_id,
                    "grid": [int(g) for g in grid],
                }
                if int8:
                    payload.update(_encode_int8(multi))
                else:
                    # float16 values as stored in every store
                    vector[_MULTI] = (
                        np.asarray(multi, np.float16)
                        .astype(np.float32)
                        .tolist()
                    )
                sparse = self._sparse(text)
                if sparse is not None:
                    vector[_TEXT] = sparse
                points.append(
                    m.PointStruct(
                        id=point_id(sample_id), vector=vector, payload=payload
                    )
                )
            client.upsert(self.collection_name, points=points, wait=True)

    def _sparse(self, text):
        # BM25's saturated term frequencies; Qdrant multiplies by its IDF
        if not text:
            return None
        indices, values = lexical.sparse_vector(text.split())
        return self._models.SparseVector(indices=indices, values=values)

    def has_text(self):
        """Whether the collection has the sparse text vectors of hybrid
        search."""
        with self._client() as client:
            if not self._exists(client):
                return False
            info = client.get_collection(self.collection_name)
            return _TEXT in (info.config.params.sparse_vectors or {})

    def update_texts(self, ids, texts):
        """Replaces the texts of pages the collection holds."""
        m = self._models
        ids = list(ids)
        if not ids:
            return
        with self._client() as client:
            if not self._exists(client):
                return
            held = {
                p.payload["sample_id"]
                for p in client.retrieve(
                    self.collection_name,
                    ids=[point_id(i) for i in ids],
                    with_payload=True,
                    with_vectors=False,
                )
            }
            empty = [i for i, t in zip(ids, texts) if i in held and not t]
            full = [
                m.PointVectors(id=point_id(i), vector={_TEXT: self._sparse(t)})
                for i, t in zip(ids, texts)
                if i in held and t
            ]
            if full:
                client.update_vectors(self.collection_name, points=full, wait=True)
            if empty:
                client.delete_vectors(
                    self.collection_name,
                    vectors=[_TEXT],
                    points=[point_id(i) for i in empty],
                    wait=True,
                )

    def text_search(self, terms, limit, allowed_ids=None):
        """The ids and scores (sparse dot product with Qdrant's IDF: BM25
        without length normalisation) of the ``limit`` best pages holding
        any of ``terms``, best first."""
        m = self._models
        words = sorted(set(terms))
        if not words or (allowed_ids is not None and not allowed_ids):
            return [], []
        indices, values = lexical.sparse_vector(words)
        flt = self._id_filter(allowed_ids)
        with self._client() as client:
            if not self._exists(client):
                return [], []
            info = client.get_collection(self.collection_name)
            if _TEXT not in (info.config.params.sparse_vectors or {}):
                return [], []
            response = client.query_points(
                self.collection_name,
                query=m.SparseVector(indices=indices, values=values),
                using=_TEXT,
                limit=int(limit),
                query_filter=flt,
            )
        return self._ranked(response, False)

    def _create(self, client, dim, text=False):
        m = self._models
        sparse = None
        if text:
            sparse = {_TEXT: m.SparseVectorParams(modifier=m.Modifier.IDF)}
        vectors = {
            _DENSE: m.VectorParams(size=int(dim), distance=m.Distance.DOT)
        }
        if self.multivector_dtype == "float16":
            vectors[_MULTI] = m.VectorParams(
                size=st.MULTI_DIM,
                distance=m.Distance.DOT,
                multivector_config=m.MultiVectorConfig(
                    comparator=m.MultiVectorComparator.MAX_SIM
                ),
                # re-ranking vectors need no graph
                hnsw_config=m.HnswConfigDiff(m=0),
            )
        client.create_collection(
            self.collection_name,
            sparse_vectors_config=sparse,
            vectors_config=vectors,
        )

    def delete(self, ids):
        ids = list(ids)
        if not ids:
            return

        with self._client() as client:
            if self._exists(client):
                client.delete(
                    self.collection_name,
                    points_selector=self._models.PointIdsList(
                        points=[point_id(i) for i in ids]
                    ),
                    wait=True,
                )

    def finalize(self):
        pass

    def drop(self):
        with self._client() as client:
            if self._exists(client):
                client.delete_collection(self.collection_name)

    def close(self):
        if self._server_client is not None:
            self._server_client.close()
            self._server_client = None

    # -- reading -----------------------------------------------------------

    def fetch(self, ids, multi=True, vectors=True):
        ids = list(ids)
        found = {}
        with self._client() as client:
            stored = self._stored_dtype(client) if ids else None
            int8 = stored == "int8"
            wanted = [_DENSE, _MULTI] if multi and not int8 else [_DENSE]
            payload = ["sample_id", "grid"]
            if multi and vectors and int8:
                payload += [_CODES, _SCALES]
            if stored is not None:
                for start in range(0, len(ids), _PAGE):
                    points = client.retrieve(
                        self.collection_name,
                        ids=[point_id(i) for i in ids[start : start + _PAGE]],
                        with_payload=payload,
                        with_vectors=wanted if vectors else False,
                    )
                    for p in points:
                        found[p.payload["sample_id"]] = p

        order = [i for i in ids if i in found]
        rows = st.PageRows(ids=order)
        rows.grids = [tuple(found[i].payload["grid"]) for i in order]
        if vectors:
            rows.singles = np.array(
                [found[i].vector[_DENSE] for i in order], np.float32
            )
            if multi and int8:
                rows.multis = [
                    quantize.dequantize_int8(*_decode_int8(found[i].payload))
                    for i in order
                ]
            elif multi:
                rows.multis = [
                    np.array(found[i].vector[_MULTI], np.float16)
                    for i in order
                ]
        return rows

    def search(self, query, k, candidates=None, allowed_ids=None, reverse=False):
        m = self._models
        if allowed_ids is not None and not allowed_ids:
            return [], []

        flt = self._id_filter(allowed_ids)

        with self._client() as client:
            if not self._exists(client):
                return [], []

            total = (
                len(allowed_ids)
                if allowed_ids is not None
                else client.count(self.collection_name, exact=True).count
            )
            limit = total if k is None else min(k, total)
            if limit < 1:
                return [], []

            dense = query.mean_single()
            if query.multis is None:
                return self._ranked(
                    client.query_points(
                        self.collection_name,
                        query=(-dense if reverse else dense).tolist(),
                        using=_DENSE,
                        limit=limit,
                        query_filter=flt,
                    ),
                    reverse,
                )

            exhaustive = candidates is None or candidates >= total
            int8 = self._stored_dtype(client) == "int8"
            if exhaustive and (int8 or reverse or len(query.multis) > 1):
                return st.stream_maxsim(
                    query, self._token_batches(client, flt, int8), k, reverse
                )
            if not int8 and not reverse and len(query.multis) == 1:
                # one request: MaxSim inside the engine
                prefetch = None
                if not exhaustive:
                    prefetch = m.Prefetch(
                        query=dense.tolist(),
                        using=_DENSE,
                        limit=int(candidates),
                        filter=flt,
                    )
                return self._ranked(
                    client.query_points(
                        self.collection_name,
                        prefetch=prefetch,
                        query=np.asarray(query.multis[0], np.float32).tolist(),
                        using=_MULTI,
                        limit=limit,
                        query_filter=flt,
                    ),
                    False,
                )

            # int8 codes, least similar, or a mean over several queries:
            # Qdrant ranks only by one query's MaxSim over float vectors,
            # best first; rank the first stage's candidates here instead
            first = client.query_points(
                self.collection_name,
                query=(-dense if reverse else dense).tolist(),
                using=_DENSE,
                limit=int(candidates),
                query_filter=flt,
            )
            ids = [p.payload["sample_id"] for p in first.points]

        return st.maxsim_rank(query, self.fetch(ids), k, reverse)

    def _token_batches(self, client, flt, int8):
        """``(ids, tokens, offsets, scales)`` of the collection's points
        (those ``flt`` selects), ``st.RERANK_CHUNK`` at a time."""
        offset = None
        while True:
            points, offset = client.scroll(
                self.collection_name,
                scroll_filter=flt,
                limit=st.RERANK_CHUNK,
                offset=offset,
                with_payload=["sample_id"] + ([_CODES, _SCALES] if int8 else []),
                with_vectors=False if int8 else [_MULTI],
            )
            if points:
                if int8:
                    pairs = [_decode_int8(p.payload) for p in points]
                    tokens = np.concatenate([c for c, _ in pairs])
                    scales = np.concatenate([s for _, s in pairs])
                else:
                    pairs = [
                        (np.asarray(p.vector[_MULTI], np.float32), None)
                        for p in points
                    ]
                    tokens = np.concatenate([t for t, _ in pairs])
                    scales = None
                lengths = [len(t) for t, _ in pairs]
                offsets = np.concatenate([[0], np.cumsum(lengths)])
                ids = [p.payload["sample_id"] for p in points]
                yield ids, tokens, offsets, scales
            if offset is None:
                return

    def _id_filter(self, allowed_ids):
        """A filter to the points of ``allowed_ids`` (None: no filter)."""
        if allowed_ids is None:
            return None
        m = self._models
        return m.Filter(
            must=[m.HasIdCondition(has_id=[point_id(i) for i in allowed_ids])]
        )

    @staticmethod
    def _ranked(response, negated):
        ids = [p.payload["sample_id"] for p in response.points]
        scores = [(-p.score if negated else p.score) for p in response.points]
        return ids, [float(s) for s in scores]



def _encode_int8(multi):
    """The payload entries of a page's multi vectors in int8."""
    codes, scales = quantize.quantize_int8(multi)
    return {
        _CODES: base64.b64encode(codes.tobytes()).decode("ascii"),
        _SCALES: base64.b64encode(scales.tobytes()).decode("ascii"),
    }


def _decode_int8(payload):
    """``(codes, scales)`` of a page from its payload."""
    codes = np.frombuffer(base64.b64decode(payload[_CODES]), np.int8)
    scales = np.frombuffer(base64.b64decode(payload[_SCALES]), np.float32)
    return codes.reshape(-1, st.MULTI_DIM), scales
