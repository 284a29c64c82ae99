"""The ``jina_multivector`` similarity backend: late interaction as
FiftyOne's own search, with the vectors outside the sample documents.

``fob.compute_similarity(dataset, model="jinaai/jina-embeddings-v4",
backend="jina_multivector", ...)`` embeds each page once (single and multi
vectors from one forward pass) and keeps both in a store (LanceDB or
Qdrant, see ``store.py``). ``sort_by_similarity`` then ranks by exact
MaxSim over the single-vector first stage's ``k * oversample`` candidates,
in Python and in the App. Distances are MaxSim sums over the query's
tokens: higher is more similar.

How the pages reach the store: FiftyOne's ``compute_similarity`` hands
this index the model (``results._model = model``) before it computes the
embeddings; the index attaches itself to the model there, so the model
writes each batch's vectors to the store as FiftyOne's data loader feeds
it, and detaches when FiftyOne adds the embeddings to the index.
"""

import contextlib
import hashlib
import logging
import os
import re
import uuid

import numpy as np

import eta.core.utils as etau

import fiftyone as fo
import fiftyone.core.utils as fou
import fiftyone.zoo as foz
from fiftyone.brain.similarity import (
    Similarity,
    SimilarityConfig,
    SimilarityIndex,
)

from .. import options
from ..fiftyone import pdfs
from ..io import image_inputs
from ..scoring import lexical
from ..scoring import quantize
from . import capture
from . import register
from . import store as st

logger = logging.getLogger(__name__)

BACKEND = options.BACKEND_NAME
MODEL_NAME = options.MODEL_NAME
DEFAULT_OVERSAMPLE = 4
# the App's similarity search asks for 25 results: all of them get a map
DEFAULT_HEATMAP_K = 25
QDRANT_API_KEY_ENV = "QDRANT_API_KEY"

BUILDING = "building"
COMPLETE = "complete"
BUILD_STATES = (None, BUILDING, COMPLETE)

# a build's lock counts as abandoned when its holder (on another host) has
# not written for this long; on the holder's own host a dead process is
# recognised at once
BUILD_LOCK_STALE_S = 900.0
# how long add_to_index / remove_from_index wait for another writer
WRITE_LOCK_WAIT_S = 60

# with text_field: the weight of the words in the fused score (see
# scoring/lexical.py); 0.7 lets a page that holds the query's rare words
# lead a page that only looks alike (measured: benchmarks/bench_hybrid.py)
DEFAULT_TEXT_WEIGHT = 0.7
# where add_pdfs stores the words and boxes text_matches_field draws from
DEFAULT_WORDS_FIELD = pdfs.DEFAULT_WORDS_FIELD
# a hybrid search fuses the best this many (at least) of each ranking
HYBRID_MIN_CANDIDATES = 100

# pages embedded per forward pass when the index embeds pages itself
# (add_to_index of pages it has not seen)
EMBED_BATCH_SIZE = 8

_OPTIONS = (
    "store",
    "oversample",
    "uri",
    "url",
    "path",
    "api_key",
    "table_name",
    "heatmap_field",
    "heatmap_k",
    "text_field",
    "text_weight",
    "text_matches_field",
    "words_field",
    "multivector_dtype",
    "scan_cache",
)


def build_lock_name(dataset, brain_key):
    """The name of the lock that a build of ``brain_key`` holds."""
    return "build:%s:%s" % (dataset._doc.id, brain_key)


def build_lock(dataset, brain_key, what):
    """The lock that builds of ``brain_key`` and writes to its index
    (``what``: "build", "add_to_index", ...) take turns on."""
    from ..fiftyone import locks

    return locks.Lock(
        build_lock_name(dataset, brain_key),
        stale_after=BUILD_LOCK_STALE_S,
        purpose="jina_multivector " + what,
    )


def break_build_lock(dataset, brain_key):
    """Releases the lock of a build of ``brain_key`` whose process is gone
    on another machine (on the same machine a dead build's lock is taken
    over by the next build without this); returns whether one was held."""
    from ..fiftyone import locks

    return locks.break_lock(build_lock_name(dataset, brain_key))


def default_uri():
    """Where LanceDB indexes go by default: beside FiftyOne's model zoo
    folder (``~/fiftyone/jina_multivector`` with FiftyOne's defaults)."""
    zoo_dir = os.path.abspath(os.path.expanduser(fo.config.model_zoo_dir))
    return os.path.join(os.path.dirname(zoo_dir), "jina_multivector")


class JinaMultivectorSimilarityConfig(SimilarityConfig):
    """Configuration of a ``jina_multivector`` index.

    Args:
        store ("lancedb"): ``"lancedb"`` (embedded, on local disk) or
            ``"qdrant"`` (a server or cluster, or local mode)
        oversample (4): first-stage candidates per returned sample: the
            single-vector search takes ``k * oversample`` candidates, which
            are ranked by exact MaxSim. None ranks every indexed sample by
            MaxSim (exhaustive)
        uri (None): the LanceDB folder; by default
            ``jina_multivector`` beside FiftyOne's model zoo folder
        url (None): a Qdrant server or cluster, e.g.
            ``"http://localhost:6333"``
        path (None): a folder for qdrant-client's local mode (one process
            at a time, brute force: for tests and small data)
        api_key (None): the Qdrant API key (never stored with the run; by
            default from fiftyone-brain's config or ``QDRANT_API_KEY``)
        table_name (None): the LanceDB table or Qdrant collection; by
            default ``fiftyone_<dataset>_<brain key>``
        heatmap_field (None): a field in which each text search writes
            query heatmaps for its top results (see ``heatmaps.py``); None
            writes none
        heatmap_k (25): how many of the top results get a heatmap (25:
            every result the App's search asks for)
        text_field (None): a string field of the samples (``"pdf_text"``,
            OCR, a caption) indexed for lexical search in the same store:
            text queries then fuse its ranking with MaxSim's (hybrid
            search); None searches by MaxSim alone
        text_weight (0.7): the words' share of the fused score, in
            ``[0, 1]`` (0: MaxSim alone; 1: the words alone, MaxSim
            ordering the pages without a matching word)
        text_matches_field (None): a field in which each text search
            writes ``fo.Detections`` of the words of its top
            ``heatmap_k`` results that match the query's terms (one box
            per word, labelled with the query's term), read from
            ``words_field``; None writes none
        words_field ("pdf_words"): the samples' words and their boxes,
            as ``add_pdfs`` stores them (see
            :func:`jina_embeddings_v4.io.pdf_words.pack`)
        multivector_dtype ("float16"): how the store keeps multi vectors:
            ``"float16"``, or ``"int8"`` (one float scale per token vector,
            about half the bytes; see ``scoring/quantize.py``). Recorded
            with the run: an index keeps the dtype it was built with
        scan_cache (False): LanceDB only: an exhaustive search
            (``oversample=None``) reads the multi vectors from a flat copy
            in the index's folder (``<table>.jina-scan``), rebuilt by the
            first exhaustive search after each change of the table;
            several times faster than scanning the table, for the copy's
            disk (the multi vectors' bytes again). See
            :mod:`jina_embeddings_v4.index.scan_cache`
        build_state (None): set by the index, not by users: ``"building"``
            from the moment a build under a brain key is registered until
            its results are saved, ``"complete"`` after (None: a run saved
            before this was recorded)
        **kwargs: the arguments of ``SimilarityConfig`` (``model``,
            ``model_kwargs``, ...)
    """

    def __init__(
        self,
        store="lancedb",
        oversample=DEFAULT_OVERSAMPLE,
        uri=None,
        url=None,
        path=None,
        api_key=None,
        table_name=None,
        heatmap_field=None,
        heatmap_k=DEFAULT_HEATMAP_K,
        build_state=None,
        text_field=None,
        text_weight=DEFAULT_TEXT_WEIGHT,
        text_matches_field=None,
        words_field=DEFAULT_WORDS_FIELD,
        multivector_dtype=quantize.DEFAULT_MULTIVECTOR_DTYPE,
        scan_cache=False,
        embeddings_field=None,
        model=None,
        model_kwargs=None,
        patches_field=None,
        roi_field=None,
        supports_prompts=None,
        **kwargs,
    ):
        # anything else is a typo: FiftyOne would store it silently
        unknown = sorted(set(kwargs) - {"task"})
        if unknown:
            raise ValueError(
                "Unknown option(s) %s for the jina_multivector backend; "
                "valid options are: %s"
                % (", ".join(unknown), ", ".join(_OPTIONS))
            )
        kwargs.pop("task", None)

        st.check_store(store)
        if table_name is not None:
            st.check_table_name(store, table_name)
        if text_field is not None and (
            not etau.is_str(text_field) or not text_field
        ):
            raise ValueError(
                "text_field must be the name of a string field, got %r"
                % (text_field,)
            )
        text_weight = lexical.check_text_weight(text_weight)
        for name, value, allow_none in (
            ("text_matches_field", text_matches_field, True),
            ("words_field", words_field, False),
        ):
            if (value is None and not allow_none) or (
                value is not None and (not etau.is_str(value) or not value)
            ):
                raise ValueError(
                    "%s must be the name of a field, got %r" % (name, value)
                )
        quantize.check_multivector_dtype(multivector_dtype)
        if not isinstance(scan_cache, bool):
            raise ValueError(
                "scan_cache must be True or False, got %r" % (scan_cache,)
            )
        if scan_cache and store != "lancedb":
            raise ValueError(
                "scan_cache=True is for store='lancedb' (a flat copy in the "
                "index's folder); Qdrant keeps its own storage: leave "
                "scan_cache=False with store=%r" % (store,)
            )
        if build_state not in BUILD_STATES:
            raise ValueError(
                "build_state is recorded by the index; got %r" % (build_state,)
            )
        options.check_positive_int("oversample", oversample, allow_none=True)
        options.check_positive_int("heatmap_k", heatmap_k)
        if patches_field is not None or roi_field is not None:
            raise ValueError(
                "The jina_multivector backend indexes whole pages; "
                "patches_field and roi_field are not supported"
            )
        if embeddings_field is not None:
            raise ValueError(
                "The jina_multivector backend computes its own single and "
                "multi vectors (one forward pass per batch); do not pass "
                "embeddings=%r" % embeddings_field
            )

        space = _vector_space_of(model, model_kwargs)
        if store == "qdrant" and (url is None) == (path is None):
            raise ValueError(
                "store='qdrant' needs exactly one of url= (a Qdrant server "
                "or cluster) or path= (qdrant-client's local mode)"
            )
        if store == "lancedb":
            uri = os.path.abspath(os.path.expanduser(uri or default_uri()))

        super().__init__(
            model=model,
            model_kwargs=model_kwargs,
            supports_prompts=supports_prompts,
            **kwargs,
        )
        self.store = store
        self.oversample = oversample
        self.uri = uri if store == "lancedb" else None
        self.url = url
        self.path = (
            os.path.abspath(os.path.expanduser(path)) if path else None
        )
        self.table_name = table_name
        self.heatmap_field = heatmap_field
        self.heatmap_k = heatmap_k
        self.build_state = build_state
        self.text_field = text_field
        self.text_weight = text_weight
        self.text_matches_field = text_matches_field
        self.words_field = words_field
        self.multivector_dtype = multivector_dtype
        self.scan_cache = scan_cache
        self.task = space["task"]
        self._space = space
        self._api_key = api_key

    @property
    def method(self):
        return BACKEND

    @property
    def api_key(self):
        return self._api_key

    @api_key.setter
    def api_key(self, value):
        self._api_key = value

    @property
    def max_k(self):
        return None

    @property
    def supports_least_similarity(self):
        return True

    @property
    def supported_aggregations(self):
        return ("mean",)

    def load_credentials(self, api_key=None):
        self._load_parameters(api_key=api_key)
        if self._api_key is None:
            self._api_key = os.environ.get(QDRANT_API_KEY_ENV) or None

    def check_model(self, model):
        """Raises a ValueError unless ``model`` is a Jina v4 zoo model that
        embeds into this index's vector space (task, vector mode, ...)."""
        if not hasattr(model, "embed_images_with_multivectors"):
            raise ValueError(
                "The jina_multivector backend needs the %s zoo model; got "
                "%s" % (MODEL_NAME, type(model).__name__)
            )

        theirs = options.vector_space(model.config)
        differences = options.space_differences(self._space, theirs)
        if differences:
            name = differences[0]
            ours = self._space[name]
            raise ValueError(
                "This index was built with %s=%r but the model uses "
                "%s=%r; load the model with %s=%r"
                % (name, ours, name, theirs[name], name, ours)
            )

    def open_store(self):
        """Opens this index's store (nothing is created before a write)."""
        if self.store == "lancedb":
            from .lancedb_store import LanceDBStore

            return LanceDBStore(
                self.uri,
                self.table_name,
                multivector_dtype=self.multivector_dtype,
                scan_cache=self.scan_cache,
            )

        from .qdrant_store import QdrantStore

        return QdrantStore(
            self.table_name,
            url=self.url,
            path=self.path,
            api_key=self._api_key,
            multivector_dtype=self.multivector_dtype,
        )


def _vector_space_of(model, model_kwargs):
    if model is None:
        raise ValueError(
            "The jina_multivector backend needs the model: pass "
            "model=%r (with its settings in model_kwargs)" % MODEL_NAME
        )

    if etau.is_str(model):
        if model != MODEL_NAME:
            raise ValueError(
                "The jina_multivector backend works with model=%r only, "
                "got %r" % (MODEL_NAME, model)
            )
        return options.vector_space(model_kwargs or {})

    if not hasattr(model, "embed_images_with_multivectors"):
        raise ValueError(
            "The jina_multivector backend needs the %s zoo model; got %s"
            % (MODEL_NAME, type(model).__name__)
        )
    return options.vector_space(model.config)


def check_text_field(dataset, name):
    """Raises a ValueError naming the string fields unless ``name`` is a
    string field of ``dataset``."""
    import fiftyone.core.fields as fof

    field = dataset.get_field(name)
    if isinstance(field, fof.StringField):
        return

    strings = sorted(
        n
        for n, f in dataset.get_field_schema().items()
        if isinstance(f, fof.StringField) and n not in ("id", "filepath")
    )
    raise ValueError(
        "text_field=%r: %s. Pass a string field of the samples (this "
        "dataset's: %s), e.g. 'pdf_text' as add_pdfs writes it"
        % (
            name,
            "no such field"
            if field is None
            else "a %s, not a string field" % type(field).__name__,
            ", ".join(strings) or "none",
        )
    )


def default_table_name(dataset, brain_key):
    """``fiftyone_<dataset id>_<brain key>_<hash>`` in the characters every
    store accepts (a random key when there is no brain key). The id, not
    the name: a dataset re-created under the same name gets new tables.

    Injective in the brain key: the readable part replaces characters the
    stores refuse (``clé`` and ``cl_`` both read ``cl_``), so the name ends
    with 8 hex digits of the key's SHA-1, which tell such keys apart.
    Indexes built before this rule keep the name stored in their config.
    """
    key = brain_key if brain_key is not None else uuid.uuid4().hex[:12]
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", key).strip("_")[:64]
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
    return "fiftyone_%s_%s_%s" % (dataset._doc.id, slug, digest)


class JinaMultivectorSimilarity(Similarity):
    """The ``jina_multivector`` similarity method.

    A build under a brain key holds a lock in FiftyOne's database from the
    moment it registers the run until its results are saved (see
    ``fiftyone/locks.py``): a second build of the same key, in any process
    or machine sharing the database, is refused while the first is alive.
    The run is saved at once with ``build_state="building"``: a search of
    a build that is running or was interrupted says so, and the same call
    run again resumes it.

    Args:
        config: a :class:`JinaMultivectorSimilarityConfig`
    """

    def ensure_requirements(self):
        # before FiftyOne registers the run: a missing engine or an
        # unreachable server leaves the dataset as it was
        st.import_engine(self.config.store)
        if self.config.store == "qdrant" and self.config.url is not None:
            self.config.load_credentials()
            self.config.open_store().check_connection()

    def ensure_usage_requirements(self):
        st.import_engine(self.config.store)

    def _claim_fields(self, samples):
        # before anything is written (the run registered included): a
        # field of the user's is refused, ours is created
        if self.config.text_field is not None:
            check_text_field(samples._root_dataset, self.config.text_field)
        if self.config.heatmap_field is not None:
            from ..fiftyone.heatmaps import claim_fields

            claim_fields(samples._root_dataset, self.config.heatmap_field)
        if self.config.text_matches_field is not None:
            from ..fiftyone import text_matches

            text_matches.check_words_field(
                samples._root_dataset, self.config.words_field
            )
            text_matches.claim_field(
                samples._root_dataset, self.config.text_matches_field
            )

    def _lock_build(self, samples, key):
        from ..fiftyone import locks

        lock = build_lock(samples._root_dataset, key, "build")
        try:
            # a lock left in this process by a call that failed is stale
            lock.acquire(same_process_is_dead=True)
        except locks.LockHeld as e:
            raise RuntimeError(
                "Brain key '%s' is being built by another process (%s); "
                "wait for it to finish, or use another brain_key. If that "
                "process is gone on another machine, release its lock with "
                "jina_embeddings_v4.index.backend.break_build_lock(dataset, "
                "%r) (on the same machine a dead build is detected "
                "without this)" % (key, locks.describe(e.holder), key)
            ) from None

        self._build_lock = lock

    def release_build_lock(self):
        """Releases the build's lock, if this run holds it."""
        lock = getattr(self, "_build_lock", None)
        if lock is not None:
            lock.release()
            self._build_lock = None

    def heartbeat(self):
        lock = getattr(self, "_build_lock", None)
        if lock is not None:
            lock.heartbeat()

    def register_run(self, samples, key, overwrite=True, cleanup=True):
        """Registers the run; a run of this backend that was interrupted
        before it saved results (same key, same store and table) is taken
        over, so that its rows are reused instead of recomputed."""
        self._claim_fields(samples)
        if key is None:
            return super().register_run(
                samples, key, overwrite=overwrite, cleanup=cleanup
            )

        self._lock_build(samples, key)
        try:
            self.config.build_state = BUILDING
            if key in samples.list_brain_runs():
                previous = samples.get_brain_info(key).config
                if self._resumes(samples, key, previous):
                    logger.info(
                        "Resuming the interrupted jina_multivector build '%s'",
                        key,
                    )
                    self.config.table_name = previous.table_name
                    self._resuming = True
                    return super().register_run(
                        samples, key, overwrite=True, cleanup=False
                    )

            return super().register_run(
                samples, key, overwrite=overwrite, cleanup=cleanup
            )
        except BaseException:
            self.release_build_lock()
            raise

    def _resumes(self, samples, key, previous):
        if not isinstance(previous, JinaMultivectorSimilarityConfig):
            return False
        if previous.build_state != BUILDING:
            # runs saved before build_state was recorded: interrupted
            # when they saved no results
            if previous.build_state is not None:
                return False
            if samples.load_brain_results(key, cache=False) is not None:
                return False

        same = ("store", "uri", "url", "path", "task", "multivector_dtype")
        if any(getattr(previous, a) != getattr(self.config, a) for a in same):
            raise ValueError(
                "Brain key '%s' holds an interrupted jina_multivector build "
                "with other settings (%s); delete it with "
                "dataset.delete_brain_run(%r) or use another brain_key"
                % (
                    key,
                    ", ".join(
                        "%s=%r" % (a, getattr(previous, a)) for a in same
                    ),
                    key,
                )
            )
        return self.config.table_name in (None, previous.table_name)

    def initialize(self, samples, brain_key):
        self._claim_fields(samples)
        explicit = self.config.table_name is not None
        index = JinaMultivectorSimilarityIndex(
            samples, self.config, brain_key, backend=self
        )
        if getattr(self, "_resuming", False):
            index.prune_deleted_samples()
        else:
            count = index.store.count()
            if count and explicit:
                self.release_build_lock()
                raise ValueError(
                    "The %s table/collection %r holds %d pages already; "
                    "pass another table_name, or load the index it belongs "
                    "to" % (self.config.store, self.config.table_name, count)
                )
            if count:
                # a default name is this dataset's and brain key's: what
                # is there was left by a run deleted without cleanup
                logger.info(
                    "Dropping %d pages left in %r by an earlier run",
                    count,
                    self.config.table_name,
                )
                index.store.drop()

        if brain_key is not None:
            # saved at once: a search of an unfinished build finds an
            # index that says so, not a run without results
            super(JinaMultivectorSimilarity, type(self)).save_run_results(
                samples, brain_key, index
            )
        return index

    @classmethod
    def save_run_results(
        cls, samples, key, run_results, overwrite=True, cache=True
    ):
        """Saves the results; at the end of a build, first checks that
        every page reached the store (a failed write fails the build,
        which the same call then resumes) and records the build as
        complete."""
        finishing = isinstance(
            run_results, JinaMultivectorSimilarityIndex
        ) and run_results.is_finishing_build()
        if finishing:
            run_results.check_writes()
            run_results.config.build_state = COMPLETE

        super().save_run_results(
            samples, key, run_results, overwrite=overwrite, cache=cache
        )
        if finishing:
            if key is not None:
                run_results.save_config()
            run_results.finish_build()

    def get_fields(self, samples, brain_key):
        return []

    def cleanup(self, samples, key):
        self.config.load_credentials()
        if self.config.table_name is not None:
            store = self.config.open_store()
            store.drop()
            store.close()


class JinaMultivectorSimilarityIndex(SimilarityIndex):
    """A ``jina_multivector`` index: single and multi vectors of each page
    in a store, searched by exact MaxSim.

    Args:
        samples: the collection indexed
        config: a :class:`JinaMultivectorSimilarityConfig`
        brain_key: the brain key
        backend (None): a :class:`JinaMultivectorSimilarity`
    """

    def __init__(self, samples, config, brain_key, backend=None):
        self._store = None
        self._fresh_ids = set()
        self._dirty = False
        self._build_started = False
        self._build_finished = False
        self._write_error = None
        self._unwritten = set()
        # how deep this object is in _writing (the lock is taken once)
        self._writing_depth = 0
        super().__init__(samples, config, brain_key, backend=backend)
        if config.table_name is None:
            config.table_name = default_table_name(
                samples._root_dataset, brain_key
            )
            if brain_key is not None:
                self.save_config()

    # -- the model -----------------------------------------------------------

    @property
    def _model(self):
        return self.__dict__.get("_jina_model")

    @_model.setter
    def _model(self, model):
        # FiftyOne's compute_similarity() sets the model right before it
        # computes the embeddings: from here on, the pages it embeds come
        # to this index too (single and multi vectors, one forward pass)
        if model is not None:
            self.config.check_model(model)
            capture.attach(model, self)
            self._build_started = True
        self.__dict__["_jina_model"] = model

    def get_model(self):
        """The index's model, loaded by name (never attached)."""
        model = self.__dict__.get("_jina_model")
        if model is None:
            model = foz.load_zoo_model(
                self.config.model, **(self.config.model_kwargs or {})
            )
            self.config.check_model(model)
            self.__dict__["_jina_model"] = model

        return model

    def _detach(self):
        model = self.__dict__.get("_jina_model")
        if model is not None:
            capture.detach(model, self)

    # -- what the model writes while attached ----------------------------------

    def indexed_ids(self):
        """The ids already in the store (a resumed build skips them)."""
        return self.store.ids()

    def stored_singles(self, ids):
        """``{id: single vector}`` of stored pages."""
        if not ids:
            return {}

        rows = self.store.fetch(ids, multi=False)
        self._fresh_ids.update(rows.ids)
        return dict(zip(rows.ids, rows.singles))

    def write(self, ids, singles, multis, grids):
        """Writes pages to the store at once, so an interrupted build keeps
        every batch it finished. A failed write is recorded (and raised):
        the build then fails where FiftyOne would have skipped the batch
        (see :meth:`check_writes`)."""
        self.check_writable()
        rows = st.PageRows(
            ids=list(ids),
            singles=np.asarray(singles, np.float32),
            # float32: the store rounds to its own dtype
            multis=[np.asarray(m, np.float32) for m in multis],
            grids=list(grids),
            texts=self._engine_texts(ids),
        )
        try:
            if self.store.exists():
                self.store.upsert(rows)
            else:
                # the write that creates the table: writers of other
                # processes (shards) take turns, so one creates it and the
                # others add to it
                with self._writing("first write"):
                    self.store.upsert(rows)
        except Exception as e:
            if self._write_error is None:
                self._write_error = e
            self._unwritten.update(ids)
            raise

        self._dirty = True
        self._fresh_ids.update(ids)
        if self._backend is not None and hasattr(self._backend, "heartbeat"):
            self._backend.heartbeat()

    def _engine_texts(self, ids):
        # the text field as the samples hold it now (None: no text)
        field = self.config.text_field
        if field is None:
            return None
        view = self._samples._root_dataset.select(list(ids))
        found = dict(zip(*view.values(["id", field])))
        return [lexical.engine_text(found.get(i)) for i in ids]

    def update_texts(self, sample_ids=None, batch_size=1000):
        """Re-reads the text field into the index (after the texts
        changed: OCR run again, a caption edited); no page is embedded.

        Args:
            sample_ids (None): the samples to update; None: every one the
                index holds
            batch_size (1000): pages per store update

        Returns:
            the number of pages updated
        """
        if self.config.text_field is None:
            raise ValueError(
                "This index has no text_field: build it with "
                "text_field='pdf_text' (or another string field) for "
                "hybrid search"
            )
        ids = self.store.ids() if sample_ids is None else [str(i) for i in sample_ids]
        held = self.store.has(ids) if sample_ids is not None else set(ids)
        ids = [i for i in ids if i in held]
        with self._writing("update_texts"):
            for start in range(0, len(ids), batch_size):
                chunk = ids[start : start + batch_size]
                self.store.update_texts(chunk, self._engine_texts(chunk))
        self._dirty = True
        self.store.finalize()
        self._dirty = False
        return len(ids)

    def check_writable(self):
        """Raises at once when an earlier write of this build failed: the
        build will fail, so later batches are not embedded for nothing."""
        if self._write_error is not None:
            raise RuntimeError(
                "Skipped: an earlier write to the %s failed (%s)"
                % (self.store.where(), self._write_error)
            )

    def check_writes(self):
        """Raises when a write of this build failed (and releases the
        build's lock): the pages written are kept, and the run stays
        unfinished, so the same ``compute_similarity`` call resumes it."""
        if self._write_error is None:
            return

        if self._backend is not None and hasattr(
            self._backend, "release_build_lock"
        ):
            self._backend.release_build_lock()
        raise RuntimeError(
            "Could not write %d or more pages to the %s: %s. The pages "
            "written are kept and the run is not saved as complete: fix "
            "the cause and run the same compute_similarity() call again "
            "to resume it"
            % (len(self._unwritten), self.store.where(), self._write_error)
        ) from self._write_error

    def is_finishing_build(self):
        """Whether this is the index of a build that has not saved its
        final results yet."""
        return self._build_started and not self._build_finished

    def finish_build(self):
        """After the build's results are saved: detaches from the model
        and releases the build's lock."""
        self._build_finished = True
        self._detach()
        if self._backend is not None and hasattr(
            self._backend, "release_build_lock"
        ):
            self._backend.release_build_lock()

    def prune_deleted_samples(self):
        """Deletes the rows of samples that left the dataset (a resumed
        build: samples deleted while it was interrupted); returns how
        many."""
        stored = set(self.store.ids())
        if not stored:
            return 0

        gone = stored - set(self._samples._root_dataset.values("id"))
        if gone:
            logger.info(
                "Removing %d pages of deleted samples from the index",
                len(gone),
            )
            self.store.delete(sorted(gone))
            self._dirty = True
        return len(gone)

    # -- the store -------------------------------------------------------------

    @property
    def store(self):
        """The store holding the vectors (see ``store.py``)."""
        if self._store is None:
            self._store = self.config.open_store()

        return self._store

    @property
    def is_external(self):
        return True

    @property
    def total_index_size(self):
        return self.store.count()

    @property
    def sample_ids(self):
        return np.array(self.store.ids(), dtype=object)

    def add_to_index(
        self,
        embeddings,
        sample_ids,
        label_ids=None,
        overwrite=True,
        allow_existing=True,
        warn_existing=False,
        reload=True,
    ):
        """Adds samples to the index.

        The index computes its own vectors (single and multi vectors come
        from one forward pass): pages embedded while the index was attached
        to the model (``compute_similarity``, :meth:`compute_embeddings`)
        are stored already, and any other sample is embedded from its
        image here. ``embeddings`` may therefore be None; when given, they
        must be one row per sample id.

        Args:
            embeddings: the samples' single vectors, or None
            sample_ids: the sample ids
            label_ids (None): not supported (whole pages only)
            overwrite (True): whether to re-embed samples that the index
                holds from earlier
            allow_existing (True): with ``overwrite=False``, whether ids
                already in the index are skipped (True) or an error
            warn_existing (False): log the ids skipped
            reload (True): refresh the current view afterwards
        """
        self._detach()
        if label_ids is not None:
            raise ValueError("The jina_multivector index holds whole pages")
        self.check_writes()
        with self._writing("add_to_index"):
            self._add_to_index(
                embeddings, sample_ids, overwrite, allow_existing, warn_existing
            )
        if reload:
            self.reload()

    @contextlib.contextmanager
    def _writing(self, what):
        # additions and removals from other processes take turns with each
        # other and with builds of this key; a build's own calls hold the
        # lock already
        backend = self._backend
        if (
            self.key is None
            or getattr(backend, "_build_lock", None)
            or self._writing_depth
        ):
            self._writing_depth += 1
            try:
                yield
            finally:
                self._writing_depth -= 1
            return

        from ..fiftyone import locks

        lock = build_lock(self._samples._root_dataset, self.key, what)
        try:
            lock.acquire(wait=WRITE_LOCK_WAIT_S)
        except locks.LockHeld as e:
            raise RuntimeError(
                "The jina_multivector index '%s' is being written by another "
                "process (%s); %s waited %d s. Try again when it is done"
                % (self.key, locks.describe(e.holder), what, WRITE_LOCK_WAIT_S)
            ) from None
        self._writing_depth += 1
        try:
            yield
        finally:
            self._writing_depth -= 1
            lock.release()

    def finish_writes(self, what):
        """After pages were written outside a build (a shard of a parallel
        build): compacts and indexes the store (``finalize``), taking turns
        with the index's other writers."""
        with self._writing(what):
            self.store.finalize()
        self._dirty = False
        self._fresh_ids = set()

    def _add_to_index(
        self, embeddings, sample_ids, overwrite, allow_existing, warn_existing
    ):
        ids = [str(i) for i in sample_ids]
        if embeddings is not None and len(embeddings) != len(ids):
            raise ValueError(
                "Got %d embeddings for %d sample ids"
                % (len(embeddings), len(ids))
            )

        todo = [i for i in ids if i not in self._fresh_ids]
        existing = self.store.has(todo) if todo else set()
        if existing and not overwrite:
            if not allow_existing:
                raise ValueError(
                    "Found %d ids (e.g. %s) that already exist in the index"
                    % (len(existing), next(iter(existing)))
                )
            if warn_existing:
                logger.warning(
                    "Skipping %d ids already in the index", len(existing)
                )
            todo = [i for i in todo if i not in existing]

        if todo:
            self._embed_samples(todo)

        self.store.finalize()
        self._dirty = False
        self._fresh_ids = set()

    def compute_embeddings(self, samples, model=None, **kwargs):
        """Embeds ``samples`` and stores them in the index as it goes
        (pages the index holds are read, not recomputed); returns the
        single vectors as FiftyOne's ``compute_embeddings`` does."""
        model = model or self.get_model()
        self.config.check_model(model)
        capture.attach(model, self)
        try:
            return super().compute_embeddings(samples, model=model, **kwargs)
        finally:
            capture.detach(model, self)

    def _embed_samples(self, ids, batch_size=EMBED_BATCH_SIZE):
        model = self.get_model()
        dataset = self._samples._root_dataset
        view = dataset.select(ids, ordered=True)
        ids, paths = view.values(["id", "filepath"])
        with fou.ProgressBar(total=len(ids)) as pb:
            for batch_ids, images, count in image_inputs.readable_batches(
                ids, paths, batch_size, skip_failures=True, log=logger
            ):
                if images:
                    singles, multis, grids = (
                        model.embed_images_with_multivectors(images)
                    )
                    self.write(batch_ids, singles, multis, grids)

                pb.update(count)

    def remove_from_index(
        self,
        sample_ids=None,
        label_ids=None,
        allow_missing=True,
        warn_missing=False,
        reload=True,
    ):
        if label_ids is not None:
            raise ValueError("The jina_multivector index holds whole pages")

        ids = [str(i) for i in (sample_ids or [])]
        if not allow_missing or warn_missing:
            missing = set(ids) - self.store.has(ids)
            if missing and not allow_missing:
                raise ValueError(
                    "%d ids (e.g. %s) are not in the index"
                    % (len(missing), next(iter(missing)))
                )
            if missing:
                logger.warning("%d ids are not in the index", len(missing))

        with self._writing("remove_from_index"):
            self.store.delete(ids)
        self._dirty = True
        if reload:
            self.reload()

    def get_embeddings(
        self,
        sample_ids=None,
        label_ids=None,
        allow_missing=True,
        warn_missing=False,
    ):
        """The single vectors of the given samples (all when None).

        Returns:
            ``(embeddings, sample_ids, None)``
        """
        if label_ids is not None:
            raise ValueError("The jina_multivector index holds whole pages")

        if sample_ids is None:
            ids = self.store.ids()
        elif etau.is_str(sample_ids):
            ids = [sample_ids]
        else:
            ids = [str(i) for i in sample_ids]

        rows = self.store.fetch(ids, multi=False)
        missing = len(ids) - len(rows)
        if missing:
            if not allow_missing:
                raise ValueError("%d ids are not in the index" % missing)
            if warn_missing:
                logger.warning("%d ids are not in the index", missing)

        return rows.singles, np.array(rows.ids), None

    def get_multivectors(self, sample_ids):
        """The stored pages of these sample ids, with their multi vectors
        (float16, or float32 dequantized from an int8 index) and token grids: a :class:`store.PageRows` in the order
        asked, without the ids the index does not hold."""
        return self.store.fetch([str(i) for i in sample_ids], multi=True)

    def cleanup(self):
        self.store.drop()

    def serialize(self, *args, **kwargs):
        # FiftyOne saves the results once the build is over
        if self._build_started and not self._build_finished:
            self._detach()
        if self._dirty or self.is_finishing_build():
            self.store.finalize()
            self._dirty = False
        return super().serialize(*args, **kwargs)

    # -- queries ---------------------------------------------------------------

    def _parse_query(self, query):
        if isinstance(query, st.Query):
            return query

        if query is None:
            raise ValueError("A query is required")

        if _is_image(query) or (
            isinstance(query, (list, tuple))
            and query
            and all(_is_image(q) for q in query)
        ):
            images = list(query) if isinstance(query, (list, tuple)) else [query]
            singles, multis, _ = self.get_model().embed_images_with_multivectors(
                images
            )
            return st.Query(singles=singles, multis=multis)

        if isinstance(query, np.ndarray):
            if query.size == 0:
                raise ValueError("The query vector is empty")
            singles = np.atleast_2d(query.astype(np.float32))
            if not np.all(np.isfinite(singles)):
                raise ValueError(
                    "The query vector holds NaN or infinite values"
                )
            return st.Query(singles=singles, multis=None)

        if not etau.is_str(query) and not isinstance(query, (list, tuple)):
            raise ValueError(
                "Unsupported query of type %s; a jina_multivector index "
                "accepts a text, a list of texts, a sample id or a list of "
                "them, a PIL image or a list of them, or a single-vector "
                "numpy array" % type(query).__name__
            )

        items = [query] if etau.is_str(query) else list(query)
        if not items:
            raise ValueError("At least one query is required")

        ids = [etau.is_str(i) and _is_object_id(i) for i in items]
        if any(ids) and not all(ids):
            raise ValueError(
                "The query mixes sample ids and texts (%r); search by ids or "
                "by texts, not both at once" % (items[:3],)
            )

        if all(ids):
            rows = self.store.fetch(items, multi=True)
            missing = sorted(set(items) - set(rows.ids))
            if missing:
                raise ValueError(
                    "Sample id(s) %s are not in this index" % missing[:5]
                )
            return st.Query(
                singles=rows.singles,
                multis=[m.astype(np.float32) for m in rows.multis],
            )

        bad = [i for i in items if not etau.is_str(i) or not i.strip()]
        if bad:
            raise ValueError(
                "Text queries must be non-empty strings; got %r" % (bad[:3],)
            )

        model = self.get_model()
        singles, multis = model.embed_prompts_with_multivectors(items)
        return st.Query(singles=singles, multis=multis, prompts=items)

    def _kneighbors(
        self,
        query=None,
        k=None,
        reverse=False,
        aggregation=None,
        return_dists=False,
    ):
        if query is None:
            raise ValueError(
                "The jina_multivector index answers queries; neighbor "
                "graphs of the whole index (duplicates, uniqueness) need a "
                "single-vector index, e.g. backend='sklearn'"
            )
        if aggregation not in (None, "mean"):
            raise ValueError(
                "Unsupported aggregation %r; the jina_multivector index "
                "supports 'mean'" % (aggregation,)
            )
        options.check_positive_int("k", k, allow_none=True)
        self._check_finished()
        self._check_store_holds_pages()

        query = self._parse_query(query)
        allowed = set(self.current_sample_ids) if self.has_view else None
        candidates = None
        if self.config.oversample is not None and k is not None:
            candidates = int(k) * self.config.oversample

        if self.config.text_field is not None and query.prompts and not reverse:
            ids, scores = self._hybrid_search(query, k, allowed)
        else:
            ids, scores = self.store.search(
                query,
                None if k is None else int(k),
                candidates=candidates,
                allowed_ids=allowed,
                reverse=reverse,
            )
        if (
            self.config.heatmap_field
            and query.prompts
            and len(query.prompts) == 1
            and not reverse
        ):
            from ..fiftyone.heatmaps import heatmaps_for_search

            heatmaps_for_search(self, query, ids[: self.config.heatmap_k])
        if (
            self.config.text_matches_field
            and query.prompts
            and len(query.prompts) == 1
            and not reverse
        ):
            from ..fiftyone import text_matches

            text_matches.write_for_search(
                self, query.prompts[0], ids[: self.config.heatmap_k]
            )

        if return_dists:
            return ids, None, scores

        return ids, None

    def first_stage_recall(self, queries, k=10, oversamples=(1, 2, 4, 8, 16)):
        """How much of exhaustive MaxSim's top ``k`` the single-vector
        first stage finds, per ``oversample``: run it with your own queries
        on your own pages to choose ``oversample`` from data.

        For each query, the share of the exhaustive top ``k`` (exact
        MaxSim over every page of the index, or of its current view) that
        is among the first stage's ``k * oversample`` candidates; the mean
        over the queries. 1.0 means that oversample loses nothing.

        Args:
            queries: a text or a list of texts (each searched alone)
            k (10): the results a search returns
            oversamples ((1, 2, 4, 8, 16)): the values to measure

        Returns:
            ``{oversample: recall}``
        """
        options.check_positive_int("k", k)
        for value in oversamples:
            options.check_positive_int("oversample", value)
        items = [queries] if etau.is_str(queries) else list(queries)
        if not items:
            raise ValueError("At least one query is required")
        self._check_finished()
        self._check_store_holds_pages()
        allowed = set(self.current_sample_ids) if self.has_view else None
        shares = {o: [] for o in oversamples}
        for item in items:
            query = self._parse_query([item])
            exact, _ = self.store.search(
                query, int(k), candidates=None, allowed_ids=allowed
            )
            truth = set(exact)
            if not truth:
                continue
            single = st.Query(singles=query.singles, multis=None)
            for value in oversamples:
                first, _ = self.store.search(
                    single, int(k) * value, allowed_ids=allowed
                )
                shares[value].append(len(truth & set(first)) / len(truth))

        return {
            o: (float(np.mean(v)) if v else 1.0) for o, v in shares.items()
        }

    def _hybrid_search(self, query, k, allowed):
        """Text queries of an index with a text field: the best pages by
        MaxSim and by the words, fused (see ``scoring/lexical.py``)."""
        # each side brings the candidates the visual search alone would
        # rank (k * oversample, at least HYBRID_MIN_CANDIDATES): MaxSim
        # scores them all, so the cost stays that of a visual search
        total = len(allowed) if allowed is not None else self.store.count()
        pool = total
        if k is not None and self.config.oversample is not None:
            pool = min(
                total,
                max(int(k) * self.config.oversample, HYBRID_MIN_CANDIDATES),
            )
        vis_ids, vis_scores = self.store.search(
            query, pool, candidates=pool, allowed_ids=allowed
        )
        terms = [t for p in query.prompts for t in lexical.terms(p)]
        lex_ids, lex_scores = self.store.text_search(terms, pool, allowed)
        visual = dict(zip(vis_ids, vis_scores))
        extra = [i for i in lex_ids if i not in visual]
        if extra:
            # pages found by their words only: their exact MaxSim too
            rows = self.store.fetch(extra)
            visual.update(zip(rows.ids, st.maxsim_scores(query, rows.multis)))
        fused = lexical.fuse(visual, dict(zip(lex_ids, lex_scores)), self.config.text_weight)
        order = sorted(fused, key=lambda i: -fused[i])
        if k is not None:
            order = order[: int(k)]
        return order, [fused[i] for i in order]

    def _check_finished(self):
        if self.config.build_state != BUILDING:
            return

        raise ValueError(
            "The jina_multivector index %r is not finished: its build is "
            "running, or was interrupted with %d pages stored. Run the same "
            "compute_similarity() call again to finish it (it resumes where "
            "it stopped), or delete it with dataset.delete_brain_run(%r)"
            % (self.key, self.store.count(), self.key)
        )

    def _check_store_holds_pages(self):
        # a missing table or collection reads as an empty index: say so
        # instead of answering "0 results"
        if self.store.exists() or not len(self._samples):
            return

        raise ValueError(
            "The jina_multivector index %r has no pages: its %s is missing "
            "(deleted, moved, or on a machine this process cannot see). "
            "Point the run at it again (uri=, url=, path=), or delete the "
            "run with dataset.delete_brain_run(%r) and compute it again"
            % (self.key, self.store.where(), self.key)
        )

    @classmethod
    def _from_dict(cls, d, samples, config, brain_key):
        return cls(samples, config, brain_key)


def _is_image(value):
    from PIL import Image

    return isinstance(value, Image.Image)


def _is_object_id(value):
    return len(value) == 24 and all(c in "0123456789abcdef" for c in value)


# importing this module is enough for backend="jina_multivector"
register()
