"""A ``jina_multivector`` index built by many processes at once.

The index is created empty by FiftyOne's own call::

    fob.compute_similarity(dataset, model=..., backend="jina_multivector",
                           brain_key=KEY, embeddings=False)

and then any number of processes (one per GPU, on any machine that reaches
the database and the store) each run :func:`embed_index_shard` (``jina-v4
embed-shard --brain-key KEY --shard I/N``). Shard ``I`` of ``N`` embeds
the samples whose id hashes to ``I`` (the same deterministic, disjoint
share as the field mode of :mod:`jina_embeddings_v4.fiftyone.sharding`)
and that the store does not hold yet, and writes their single and multi
vectors into the index's store as it goes, through the same path as a
one-process build: a killed shard run again embeds only what is missing.

Each shard loads the model with the index's own ``model_kwargs``, so its
vectors live in the index's vector space; options given on top (device,
dtype, batch size) change how it runs, and one that would change the
vectors is refused (:class:`IndexSpaceMismatch`) before anything is
written.

Writers meet in the store: LanceDB's commits from several processes retry
their conflicts (``lancedb_store``), and the first write of an empty index
(which creates the table) and each shard's closing ``finalize`` take turns
on the index's write lock.
"""

import logging

import fiftyone as fo
import fiftyone.zoo as foz

from .. import options
from ..fiftyone.sharding import parse_shard, shard_of
BACKEND = options.BACKEND_NAME

logger = logging.getLogger(__name__)

MODEL_NAME = options.MODEL_NAME

# pages handed to FiftyOne's compute_embeddings per call: bounds the
# single vectors it returns (kept in memory) on shards of millions
CHUNK = 4096


class IndexSpaceMismatch(ValueError):
    """A shard's model options would embed into another vector space than
    its index's.

    Attributes:
        brain_key: the index's brain key
        name: the first option that differs
        recorded: the index's value of it
        requested: the shard's value of it
    """

    def __init__(self, brain_key, name, recorded, requested):
        self.brain_key = brain_key
        self.name = name
        self.recorded = recorded
        self.requested = requested
        super().__init__(
            "The index '%s' was built with %s=%r, not %r: its shards take "
            "the index's own options, so leave %s out (or set it to %r)"
            % (brain_key, name, recorded, requested, name, recorded)
        )


def load_index(dataset, brain_key):
    """The ``jina_multivector`` index of ``brain_key``, or a ValueError
    naming the fix."""
    if brain_key not in dataset.list_brain_runs():
        raise ValueError(
            "Dataset '%s' has no brain run '%s'. Create the index first, "
            "empty: fob.compute_similarity(dataset, model=%r, "
            "backend=%r, brain_key=%r, embeddings=False)"
            % (dataset.name, brain_key, MODEL_NAME, BACKEND, brain_key)
        )
    method = dataset.get_brain_info(brain_key).config.method
    if method != BACKEND:
        raise ValueError(
            "Brain run '%s' of dataset '%s' is a %r index; shards write "
            "into %r indexes only" % (brain_key, dataset.name, method, BACKEND)
        )
    return dataset.load_brain_results(brain_key, cache=False)


def shard_model_kwargs(index_kwargs, given):
    """The model options of a shard: the index's, with ``given`` on top.

    Raises:
        IndexSpaceMismatch: if ``given`` changes the vector space
    """
    kwargs = dict(index_kwargs or {})
    kwargs.update({k: v for k, v in given.items() if v is not None})
    ours = options.vector_space(index_kwargs or {})
    theirs = options.vector_space(kwargs)
    differences = options.space_differences(ours, theirs)
    return kwargs, ours, theirs, differences


def embed_index_shard(
    dataset,
    brain_key,
    shard,
    num_shards,
    batch_size=8,
    num_workers=None,
    skip_failures=True,
    progress=None,
    **model_kwargs,
):
    """Embeds one shard's pages into a ``jina_multivector`` index.

    Args:
        dataset: a ``fo.Dataset`` or its name
        brain_key: the index's brain key (created with
            ``compute_similarity(..., embeddings=False)`` or by an earlier
            build)
        shard: this process's shard, ``0 <= shard < num_shards``
        num_shards: how many processes share the work
        batch_size (8): pages per forward pass
        num_workers (None): FiftyOne's data loader workers
        skip_failures (True): as in ``compute_embeddings``: an unreadable
            image is skipped (a failed store write still fails the shard)
        progress (None): FiftyOne's progress bar setting
        **model_kwargs: options of the zoo model on top of the index's
            (``device``, ``dtype``, ...); those that define the vector
            space must equal the index's

    Returns:
        the number of pages this call embedded

    Raises:
        IndexSpaceMismatch: nothing is written then
    """
    parse_shard("%s/%s" % (shard, num_shards))
    if isinstance(dataset, str):
        dataset = fo.load_dataset(dataset)

    index = load_index(dataset, brain_key)
    kwargs, ours, theirs, differences = shard_model_kwargs(
        index.config.model_kwargs, model_kwargs
    )
    if differences:
        name = differences[0]
        raise IndexSpaceMismatch(brain_key, name, ours[name], theirs[name])

    model = foz.load_zoo_model(MODEL_NAME, **kwargs)
    index.config.check_model(model)

    held = set(index.store.ids())
    ids = [
        i
        for i in dataset.values("id")
        if shard_of(i, num_shards) == shard and i not in held
    ]
    logger.info(
        "Shard %d/%d of index '%s': %d pages to embed (%d held already)",
        shard,
        num_shards,
        brain_key,
        len(ids),
        len(held),
    )
    for start in range(0, len(ids), CHUNK):
        view = dataset.select(ids[start : start + CHUNK], ordered=True)
        index.compute_embeddings(
            view,
            model=model,
            batch_size=batch_size,
            num_workers=num_workers,
            skip_failures=skip_failures,
            progress=progress,
        )
        # a failed store write fails the shard (FiftyOne's skip_failures
        # would have skipped the batch): run it again to resume
        index.check_writes()

    if ids:
        index.finish_writes("embed-shard")
    return len(ids)
