"""The multi-vector index in Qdrant: a server or cluster, or local mode.

One collection per index, one point per page, with two named vectors:
``dense`` (the single vector) and ``multi`` (the multi vectors, with
Qdrant's MaxSim comparator and no HNSW graph, as Qdrant recommends for
re-ranking vectors). A query is one request: a prefetch of the
``candidates`` best by ``dense``, ranked by MaxSim on ``multi`` inside the
engine, so a cluster does the work. Both use the dot product: the vectors
are unit length, and dot keeps the stored values as they are.

``path=`` selects qdrant-client's local mode (same API, brute force, in
process). It locks its folder to one client, so the client is opened for
the duration of each call only: the App server and a Python session can
take turns on one folder.
"""

import contextlib
import logging
import uuid

import numpy as np

from ..scoring import lexical
from . import store as st

logger = logging.getLogger(__name__)

_DENSE = "dense"
_MULTI = "multi"
_TEXT = "text"
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
    """

    def __init__(self, collection_name, url=None, path=None, api_key=None):
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
        with self._client() as client:
            if not self._exists(client):
                self._create(
                    client, rows.singles.shape[1], text=rows.texts is not None
                )
            points = []
            for sample_id, single, multi, grid, text in zip(
                rows.ids, rows.singles, rows.multis, rows.grids, texts
            ):
                vector = {
                    _DENSE: np.asarray(single, np.float32).tolist(),
                    # float16 values as stored in every store
                    _MULTI: np.asarray(multi, np.float16)
                    .astype(np.float32)
                    .tolist(),
                }
                sparse = self._sparse(text)
                if sparse is not None:
                    vector[_TEXT] = sparse
                points.append(
                    m.PointStruct(
                        id=point_id(sample_id),
                        vector=vector,
                        payload={
                            "sample_id": sample_id,
                            "grid": [int(g) for g in grid],
                        },
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
        client.create_collection(
            self.collection_name,
            sparse_vectors_config=sparse,
            vectors_config={
                _DENSE: m.VectorParams(size=int(dim), distance=m.Distance.DOT),
                _MULTI: m.VectorParams(
                    size=st.MULTI_DIM,
                    distance=m.Distance.DOT,
                    multivector_config=m.MultiVectorConfig(
                        comparator=m.MultiVectorComparator.MAX_SIM
                    ),
                    # re-ranking vectors need no graph
                    hnsw_config=m.HnswConfigDiff(m=0),
                ),
            },
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
        wanted = [_DENSE, _MULTI] if multi else [_DENSE]
        found = {}
        with self._client() as client:
            if ids and self._exists(client):
                for start in range(0, len(ids), _PAGE):
                    points = client.retrieve(
                        self.collection_name,
                        ids=[point_id(i) for i in ids[start : start + _PAGE]],
                        with_payload=True,
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
            if multi:
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
            if not reverse and len(query.multis) == 1:
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

            # least similar, or a mean over several queries: Qdrant ranks
            # only by one query's MaxSim, best first; rank the first
            # stage's candidates here instead
            first = client.query_points(
                self.collection_name,
                query=(-dense if reverse else dense).tolist(),
                using=_DENSE,
                limit=total if exhaustive else int(candidates),
                query_filter=flt,
            )
            ids = [p.payload["sample_id"] for p in first.points]

        return st.maxsim_rank(query, self.fetch(ids), k, reverse)

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

