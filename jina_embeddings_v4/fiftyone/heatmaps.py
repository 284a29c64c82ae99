"""Query heatmaps as FiftyOne labels: where each page matched a query.

The maths is in ``scoring/heatmaps.py``; this layer turns it into labels:

- an ``fo.Heatmap`` per page, one cell per merged 28x28 patch of the page
  as the model saw it (``(rows, cols)`` of the processed grid, not
  upsampled; the App stretches it over the image exactly), float32,
  with one ``range`` shared by every map of a call. Its attributes:
  ``query``, ``maxsim`` (the page's MaxSim score), ``prefix_share`` and
  ``template_share`` (see :class:`jina_embeddings_v4.scoring.heatmaps.MaxSimParts`);
- optionally an ``fo.Keypoints`` with one keypoint per query token whose
  best match is an image token, at that cell's centre, labelled with the
  token and carrying its ``contribution`` to the MaxSim score.

The query's instruction prefix (``Query: ``) is left out of the maps:
those tokens are the same for every query, so what they match says
nothing about the query (their share of the score is reported instead).

Where the pages' multi vectors are in a ``jina_multivector`` index they
are read from it (no forward pass); other pages are embedded, batched.
"""

import contextlib
import logging
import os
import pickle
import tempfile
import threading

import numpy as np

import fiftyone.core.labels as fol
import fiftyone.core.utils as fou

from .. import options
from . import locks
from . import owned_fields
from ..scoring import heatmaps as hm
from ..io import image_inputs

logger = logging.getLogger(__name__)

DEFAULT_FIELD = "query_heatmap"
BACKEND = options.BACKEND_NAME


def compute_heatmaps(
    samples,
    query,
    model,
    heatmap_field=DEFAULT_FIELD,
    keypoints_field=None,
    brain_key=None,
    batch_size=8,
    floor_quantile=hm.DEFAULT_FLOOR_QUANTILE,
    skip_failures=True,
    progress=None,
):
    """Writes a query heatmap for each sample.

    Args:
        samples: a FiftyOne dataset or view
        query: the text query
        model: a loaded ``jinaai/jina-embeddings-v4`` zoo model
        heatmap_field ("query_heatmap"): the ``fo.Heatmap`` field to write
        keypoints_field (None): an ``fo.Keypoints`` field to write with
            each query token's best cell, or None
        brain_key (None): a ``jina_multivector`` index to read the pages'
            multi vectors from; by default the dataset's index of the
            model's settings, if any
        batch_size (8): pages per forward pass for pages not in an index
        floor_quantile (0.5): the share of the call's cells left
            transparent (see :func:`jina_embeddings_v4.scoring.heatmaps.shared_range`)
        skip_failures (True): skip unreadable images with a warning
            (their fields are left as they were) rather than raise
        progress (None): FiftyOne's progress bar setting

    Returns:
        the number of samples written
    """
    query_multi, tokens, n_prefix = query_vectors(model, query)
    if heatmap_field is None and keypoints_field is None:
        raise ValueError("Nothing to write: set heatmap_field or keypoints_field")
    options.check_positive_int("batch_size", batch_size)
    claim_fields(samples._root_dataset, heatmap_field, keypoints_field)

    ids = samples.values("id")
    index = _find_index(samples, model, brain_key)
    top = -np.inf
    cells = []
    with contextlib.ExitStack() as stack:
        pb = stack.enter_context(
            fou.ProgressBar(total=len(ids), progress=progress)
        )
        spill = stack.enter_context(LabelSpill()) if len(ids) > CHUNK else None
        chunks = []
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            pages = {}
            if index is not None:
                rows = index.get_multivectors(chunk)
                pages.update(zip(rows.ids, zip(rows.multis, rows.grids)))
                pb.update(len(rows))

            missing = [i for i in chunk if i not in pages]
            if missing:
                pages.update(
                    _embed_pages(
                        samples, model, missing, batch_size, skip_failures, pb
                    )
                )

            done = [i for i in chunk if i in pages]
            if not done:
                continue
            labels = page_labels(
                query,
                query_multi,
                tokens,
                n_prefix,
                [pages[i] for i in done],
                value_range=None,
            )
            del pages
            for heatmap, _ in labels:
                top = max(top, float(np.max(heatmap.map)))
                cells.append(_cell_sample(heatmap.map))
            chunks.append(spill.put(done, labels) if spill else (done, labels))

        if not chunks:
            logger.warning("No readable page: no heatmaps written")
            return 0

        value_range = hm.shared_range(cells, floor_quantile)
        value_range[1] = top
        written = 0
        with locked_field(samples._root_dataset, heatmap_field or keypoints_field):
            for chunk in chunks:
                done, labels = spill.get(chunk) if spill else chunk
                for heatmap, _ in labels:
                    heatmap.range = list(value_range)
                write_labels(
                    samples, done, labels, heatmap_field, keypoints_field
                )
                written += len(done)

    return written


# compute_heatmaps holds this many pages' multi vectors at a time; the
# labels of a longer call wait on disk until the call's range is known
CHUNK = 256
# cells per page that estimate the range's floor (quantile) of a call
# longer than CHUNK pages; a call of at most CHUNK pages uses every cell
CELL_SAMPLE = 256


def _cell_sample(cells):
    flat = np.asarray(cells, np.float32).reshape(-1)
    if len(flat) <= CELL_SAMPLE:
        return flat
    stride = int(np.ceil(len(flat) / CELL_SAMPLE))
    return np.sort(flat)[::stride]


class LabelSpill(object):
    """Labels of a long call kept on disk, chunk by chunk, until written."""

    def __enter__(self):
        self._dir = tempfile.TemporaryDirectory(prefix="jina-v4-heatmaps-")
        self._n = 0
        return self

    def __exit__(self, *args):
        self._dir.cleanup()

    def put(self, ids, labels):
        path = os.path.join(self._dir.name, "%06d.pkl" % self._n)
        self._n += 1
        with open(path, "wb") as f:
            pickle.dump((ids, labels), f, protocol=pickle.HIGHEST_PROTOCOL)
        return path

    def get(self, path):
        with open(path, "rb") as f:
            return pickle.load(f)


def claim_fields(dataset, heatmap_field, keypoints_field=None):
    """Checks, before anything is written, that the fields are ours to
    write (see :mod:`owned_fields`); creates them when missing."""
    if heatmap_field is not None:
        owned_fields.claim(dataset, heatmap_field, fol.Heatmap, "heatmap")
    if keypoints_field is not None:
        owned_fields.claim(dataset, keypoints_field, fol.Keypoints, "keypoints")


def query_vectors(model, query):
    """The query's multi vectors, its tokens and its prefix length."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query must be a non-empty string, got %r" % (query,))

    multi = model.embed_prompts_multivectors([query])[0]
    tokens, n_prefix = model.encoder.prompt_tokens(
        [query],
        task=model.config.task,
        prompt_name=model.config.query_prompt_name,
    )[0]
    return multi, tokens, n_prefix


# a label's copy of its query: enough to read in the App, not a
# 100,000-character query copied into every result
QUERY_ATTR_MAX = 500


def query_attribute(query):
    """The query as stored on each heatmap: at most :data:`QUERY_ATTR_MAX`
    characters, cut ones ending with an ellipsis."""
    if len(query) <= QUERY_ATTR_MAX:
        return query
    return query[: QUERY_ATTR_MAX - 1] + "\u2026"


def page_labels(
    query,
    query_multi,
    tokens,
    n_prefix,
    pages,
    floor_quantile=hm.DEFAULT_FLOOR_QUANTILE,
    value_range=(),
):
    """``(heatmap, keypoints)`` labels for ``pages`` (``(multi, grid)``
    pairs), with one range for all: the maps' own (by ``floor_quantile``)
    unless ``value_range`` is given (None: set later by the caller)."""
    maps = [hm.cell_map(query_multi, m, g, n_prefix) for m, g in pages]
    if value_range == ():
        value_range = hm.shared_range(maps, floor_quantile)
    labels = []
    for (multi, grid), cells in zip(pages, maps):
        parts = hm.maxsim_parts(query_multi, multi, grid, n_prefix)
        heatmap = fol.Heatmap(map=cells, range=value_range)
        heatmap["query"] = query_attribute(query)
        heatmap["maxsim"] = parts.score
        heatmap["prefix_share"] = parts.prefix_share
        heatmap["template_share"] = parts.template_share
        keypoints = fol.Keypoints(
            keypoints=[
                fol.Keypoint(
                    label=tokens[t].strip() or repr(tokens[t]),
                    points=[list(hm.cell_center(cell, grid))],
                    contribution=float(parts.contributions[t]),
                )
                for t, cell in enumerate(parts.cells)
                if cell is not None
            ]
        )
        labels.append((heatmap, keypoints))
    return labels


def write_labels(samples, ids, labels, heatmap_field, keypoints_field):
    dataset = samples._root_dataset
    for field, k in ((heatmap_field, 0), (keypoints_field, 1)):
        if field is not None:
            dataset.set_values(
                field,
                {i: label[k] for i, label in zip(ids, labels)},
                key_field="id",
            )


def clear_field(dataset, field, keep_ids):
    """Sets ``field`` to None on the samples that have it, except
    ``keep_ids`` (the heatmaps of an earlier query would mislead)."""
    if not dataset.has_field(field):
        return

    keep = set(keep_ids)
    stale = [i for i in dataset.exists(field).values("id") if i not in keep]
    if stale:
        dataset.set_values(field, {i: None for i in stale}, key_field="id")


def _find_index(samples, model, brain_key):
    dataset = samples._root_dataset
    if brain_key is not None:
        info = dataset.get_brain_info(brain_key)
        if info.config.method != BACKEND:
            raise ValueError(
                "Brain key '%s' is not a jina_multivector index" % brain_key
            )
        index = dataset.load_brain_results(brain_key)
        index.config.check_model(model)
        return index

    for key in dataset.list_brain_runs():
        config = dataset.get_brain_info(key).config
        if config.method != BACKEND:
            continue
        try:
            config.check_model(model)
        except ValueError:
            continue
        index = dataset.load_brain_results(key)
        if index is not None:
            return index

    return None


def _embed_pages(samples, model, ids, batch_size, skip_failures, pb):
    view = samples._root_dataset.select(ids, ordered=True)
    ids, paths = view.values(["id", "filepath"])
    pages = {}
    # EXIF rotation applied, as for embeddings: the map lies over what the
    # App shows
    for batch, images, count in image_inputs.readable_batches(
        ids, paths, batch_size, skip_failures, logger
    ):
        if images:
            _, multis, grids = model.embed_images_with_multivectors(images)
            pages.update(zip(batch, zip(multis, grids)))

        pb.update(count)

    return pages


# searches in one process take turns here before they take the database
# lock (which is per process: see locks.py)
_THREAD_LOCK = threading.RLock()
# a search's heatmap write takes seconds; a holder silent this long died
FIELD_LOCK_STALE_S = 120.0
FIELD_LOCK_WAIT_S = 120.0


@contextlib.contextmanager
def locked_field(dataset, field):
    """Holds the lock on ``field`` of ``dataset``: heatmap writers (the
    searches of every process sharing the database, and
    :func:`compute_heatmaps`) take turns, so the field always holds one
    query's maps, never a mix of two."""
    name = "heatmaps:%s:%s" % (dataset._doc.id, field)
    with _THREAD_LOCK:
        lock = locks.Lock(
            name, stale_after=FIELD_LOCK_STALE_S, purpose="heatmap write"
        )
        lock.acquire(wait=FIELD_LOCK_WAIT_S)
        try:
            yield
        finally:
            lock.release()


def heatmaps_for_search(index, query, ids):
    """Writes the heatmaps of a text search's top ``ids`` into the index's
    ``heatmap_field`` and clears it elsewhere, as one turn of the field's
    lock (see :func:`locked_field`): after a search returns, the field
    holds the maps of one search, the latest, complete. Used by the
    ``jina_multivector`` index after each text query."""
    config = index.config
    dataset = index._samples._root_dataset
    claim_fields(dataset, config.heatmap_field)
    model = index.get_model()
    prompt = query.prompts[0]
    tokens, n_prefix = model.encoder.prompt_tokens(
        [prompt], task=model.config.task,
        prompt_name=model.config.query_prompt_name,
    )[0]
    rows = index.get_multivectors(ids)
    labels = []
    if len(rows):
        labels = page_labels(
            prompt,
            np.asarray(query.multis[0], np.float32),
            tokens,
            n_prefix,
            list(zip(rows.multis, rows.grids)),
            hm.DEFAULT_FLOOR_QUANTILE,
        )
    with locked_field(dataset, config.heatmap_field):
        clear_field(dataset, config.heatmap_field, rows.ids)
        if labels:
            write_labels(dataset, rows.ids, labels, config.heatmap_field, None)
