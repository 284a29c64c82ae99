"""``model.compute_multivectors`` and ``model.rerank``, over the
multi-vector index.

Multi vectors used to live in a sample field (a float16 ``[n_tokens, 128]``
array per sample), which slows every App grid page and ``iter_samples``.
Now :func:`compute_multivectors` builds (or extends) a ``jina_multivector``
index and :func:`rerank` ranks by exact MaxSim with the vectors held there.
A field of multi vectors written by earlier versions (or with
``multivectors_field=``) is still read.
"""

import logging

import numpy as np

import fiftyone.brain as fob

from .. import options
from ..io import image_inputs
from ..scoring import late_interaction as li
from ..index.store import Query

logger = logging.getLogger(__name__)

MODEL_NAME = options.MODEL_NAME
DEFAULT_KEY = "jina_multivectors"
DEFAULT_SCORE_FIELD = "maxsim_score"
BACKEND = options.BACKEND_NAME


def compute_multivectors(
    samples,
    model,
    brain_key=DEFAULT_KEY,
    batch_size=8,
    skip_failures=True,
    progress=None,
    multivectors_field=None,
    **index_kwargs,
):
    """Indexes the samples' multi vectors (and single vectors, from the
    same forward pass) in a ``jina_multivector`` index.

    Args:
        samples: a FiftyOne dataset or view
        model: a loaded ``jinaai/jina-embeddings-v4`` zoo model
        brain_key ("jina_multivectors"): the index; created when missing,
            else the samples it lacks are added
        batch_size (8): images per forward pass
        skip_failures (True): skip unreadable images (with a warning)
            rather than raise
        progress (None): FiftyOne's progress bar setting
        multivectors_field (None): instead of an index, write float16
            arrays into this sample field (the old behaviour: it slows the
            App's grid; prefer the index)
        **index_kwargs: options of the index when it is created
            (``store``, ``uri``, ``url``, ``path``, ``oversample``, ...)

    Returns:
        the number of samples of ``samples`` that the index (or field)
        holds
    """
    if multivectors_field is not None:
        return _write_field(
            samples, model, multivectors_field, batch_size, skip_failures,
            progress,
        )

    dataset = samples._root_dataset
    if brain_key in dataset.list_brain_runs():
        index = dataset.load_brain_results(brain_key)
        _check_index(index, brain_key, model)
        embeddings, ids, _ = index.compute_embeddings(
            samples,
            model=model,
            batch_size=batch_size,
            skip_failures=skip_failures,
            progress=progress,
        )
        index.add_to_index(embeddings, ids)
        index.save()
    else:
        index = fob.compute_similarity(
            samples,
            model=MODEL_NAME,
            model_kwargs=model.load_kwargs(),
            backend=BACKEND,
            brain_key=brain_key,
            batch_size=batch_size,
            skip_failures=skip_failures,
            progress=progress,
            **index_kwargs,
        )

    wanted = set(samples.values("id"))
    return len(wanted & set(index.sample_ids))


def rerank(
    samples,
    query,
    model,
    k=10,
    brain_key=None,
    oversample=4,
    multivector_key=DEFAULT_KEY,
    multivectors_field=None,
    score_field=DEFAULT_SCORE_FIELD,
):
    """Ranks samples for a text query by exact MaxSim.

    Candidates are the top ``k * oversample`` of the similarity index
    ``brain_key`` when given (a single-vector index, or a
    ``jina_multivector`` index itself), else every sample of ``samples``
    with multi vectors (exhaustive).

    Args:
        samples: a FiftyOne dataset or view
        query: the text query
        model: a loaded ``jinaai/jina-embeddings-v4`` zoo model with the
            task the multi vectors were computed with
        k (10): how many samples to return
        brain_key (None): a similarity index to take candidates from
        oversample (4): candidates per returned sample
        multivector_key ("jina_multivectors"): the ``jina_multivector``
            index holding the multi vectors (see
            :func:`compute_multivectors`)
        multivectors_field (None): read multi vectors from this sample
            field instead (as written by earlier versions); by default the
            field ``jina_multivectors`` is used when the dataset has it
            and no index ``multivector_key`` exists
        score_field ("maxsim_score"): a float field in which to store each
            candidate's MaxSim score (sum over query tokens); None to skip

    Returns:
        a view of the top ``k`` samples, best first
    """
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query must be a non-empty string, got %r" % query)
    options.check_positive_int("k", k)
    options.check_positive_int("oversample", oversample)

    dataset = samples._root_dataset
    source = _multivector_source(
        dataset, model, multivector_key, multivectors_field
    )

    if brain_key is not None:
        if _is_multivector_index(dataset, brain_key):
            index = dataset.load_brain_results(brain_key)
            _check_index(index, brain_key, model)
            singles, multis = model.embed_prompts_with_multivectors([query])
            with index.use_view(samples):
                ids, scores = _index_search(
                    index, Query(singles, multis, [query]), k, oversample
                )
            _store_scores(dataset, score_field, ids, scores)
            return samples.select(ids, ordered=True)

        candidates = samples.sort_by_similarity(
            query, k=int(k * oversample), brain_key=brain_key
        )
    else:
        candidates = samples

    ids, multis = source(candidates)
    if not ids:
        raise ValueError(
            "No candidate has multi vectors; run "
            "model.compute_multivectors(dataset) first"
        )

    query_multi = model.embed_prompts_multivectors([query])
    scores = li.maxsim_scores(query_multi, multis, normalize="sum")[0]
    scores = scores.numpy()
    order = np.argsort(-scores, kind="stable")
    _store_scores(dataset, score_field, ids, scores)
    return samples.select([ids[j] for j in order[:k]], ordered=True)


def _index_search(index, query, k, oversample):
    saved = index.config.oversample
    index.config.oversample = oversample
    try:
        ids, _, scores = index._kneighbors(
            query=query, k=k, return_dists=True
        )
    finally:
        index.config.oversample = saved
    return ids, scores


def _multivector_source(dataset, model, key, field):
    """A function from candidates to ``(ids, multis)``."""
    if field is None and key not in dataset.list_brain_runs():
        if dataset.has_field(DEFAULT_KEY):
            field = DEFAULT_KEY

    if field is not None:
        _check_field(dataset, field, model)

        def from_field(candidates):
            ids, multis = candidates.values(["id", field])
            pairs = [(i, m) for i, m in zip(ids, multis) if m is not None]
            return [i for i, _ in pairs], [m for _, m in pairs]

        return from_field

    if not _is_multivector_index(dataset, key):
        raise ValueError(
            "No multi-vector index '%s'; run "
            "model.compute_multivectors(dataset) first" % key
        )

    index = dataset.load_brain_results(key)
    _check_index(index, key, model)

    def from_index(candidates):
        rows = index.get_multivectors(candidates.values("id"))
        return rows.ids, rows.multis

    return from_index


def _is_multivector_index(dataset, key):
    if key not in dataset.list_brain_runs():
        return False

    return dataset.get_brain_info(key).config.method == BACKEND


def _check_index(index, key, model):
    if index is None:
        raise ValueError(
            "The index '%s' has no results (an interrupted build?); re-run "
            "compute_multivectors() to finish it" % key
        )
    index.config.check_model(model)


def _check_field(dataset, field, model):
    if not dataset.has_field(field):
        raise ValueError(
            "Field '%s' does not exist; run compute_multivectors() first"
            % field
        )

    info = dataset.get_field(field).info or {}
    task = info.get("task")
    if task is not None and task != model.config.task:
        raise ValueError(
            "Multi vectors in '%s' were computed with task %r but the model "
            "uses task %r; load the model with task=%r"
            % (field, task, model.config.task, task)
        )


def _store_scores(dataset, field, ids, scores):
    if field is None or not len(ids):
        return

    dataset.set_values(
        field,
        {i: float(s) for i, s in zip(ids, scores)},
        key_field="id",
    )


def _write_field(samples, model, field, batch_size, skip_failures, progress):
    import fiftyone.core.utils as fou

    written = 0
    ids, paths = samples.values(["id", "filepath"])
    dataset = samples._dataset
    with fou.ProgressBar(total=len(ids), progress=progress) as pb:
        for kept, images, count in image_inputs.readable_batches(
            ids, paths, batch_size, skip_failures, logger
        ):
            if images:
                multis = model.embed_multivectors(images)
                values = {
                    i: m.astype(np.float16) for i, m in zip(kept, multis)
                }
                dataset.set_values(field, values, key_field="id")
                written += len(values)

            pb.update(count)

    if written:
        f = dataset.get_field(field)
        f.info = {"model": MODEL_NAME, "task": model.config.task}
        f.save()
    else:
        logger.warning("No multi vectors were written to '%s'", field)

    return written
