"""Embedding sharded over devices and machines that share one FiftyOne
database.

Each process (one per GPU; started by Slurm, Kubernetes, torchrun or a
shell loop) embeds shard ``I`` of ``N``: the samples that lack the field
and whose id hashes to ``I``. The share is deterministic and disjoint,
whatever the order or timing of the processes, and it does not move as
fields fill in. FiftyOne writes each batch as it goes, so a shard that is
killed and run again embeds only what it had not written; samples that
have the field are neither recomputed nor rewritten.
"""

import hashlib
import logging

import fiftyone as fo
import fiftyone.zoo as foz

from .. import options

logger = logging.getLogger(__name__)

MODEL_NAME = options.MODEL_NAME


def parse_shard(text):
    """``"I/N"`` -> ``(I, N)``, with ``0 <= I < N`` (0-based, as Slurm's
    ``SLURM_ARRAY_TASK_ID`` and torchrun's ranks are)."""
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(
            "--shard must be I/N with integers, e.g. 0/4; got %r" % (text,)
        )
    if count < 1 or not 0 <= index < count:
        raise ValueError(
            "--shard %s: need 0 <= I < N (shards are numbered from 0)" % text
        )
    return index, count


def shard_of(sample_id, num_shards):
    """The shard of a sample id: a hash, so it never depends on order."""
    digest = hashlib.sha1(str(sample_id).encode()).hexdigest()
    return int(digest[:12], 16) % num_shards


def shard_view(samples, field, shard, num_shards):
    """The samples of ``shard`` that lack ``field``."""
    if samples.has_field(field):
        todo = samples.exists(field, False)
    else:
        todo = samples
    ids = [i for i in todo.values("id") if shard_of(i, num_shards) == shard]
    return samples.select(ids, ordered=True)


def embed_shard(
    dataset,
    field,
    shard,
    num_shards,
    batch_size=8,
    num_workers=None,
    skip_failures=True,
    progress=None,
    **model_kwargs,
):
    """Embeds one shard's samples into ``field``.

    Args:
        dataset: a ``fo.Dataset`` or its name
        field: the embeddings field
        shard: this process's shard, ``0 <= shard < num_shards``
        num_shards: how many processes share the work
        batch_size (8): pages per forward pass
        num_workers (None): FiftyOne's data loader workers
        skip_failures (True): as in ``compute_embeddings``
        progress (None): FiftyOne's progress bar setting
        **model_kwargs: options of the zoo model (``task``, ``dtype``,
            ``device``, ...); they must match the field's (recorded in
            its ``info`` by the first shard that writes)

    Returns:
        the number of samples this call embedded
    """
    parse_shard("%s/%s" % (shard, num_shards))
    if isinstance(dataset, str):
        dataset = fo.load_dataset(dataset)

    model = foz.load_zoo_model(MODEL_NAME, **model_kwargs)
    space = model.vector_space()
    _check_field_space(dataset, field, space)

    view = shard_view(dataset, field, shard, num_shards)
    logger.info(
        "Shard %d/%d: %d samples to embed into '%s'",
        shard,
        num_shards,
        len(view),
        field,
    )
    if len(view):
        view.compute_embeddings(
            model,
            embeddings_field=field,
            batch_size=batch_size,
            num_workers=num_workers,
            skip_failures=skip_failures,
            progress=progress,
        )
        _record_field_space(dataset, field, space)

    return len(view)


def _check_field_space(dataset, field, space):
    if not dataset.has_field(field):
        return

    info = dataset.get_field(field).info or {}
    theirs = info.get("jina_v4")
    diff = [] if theirs is None else options.space_differences(space, theirs)
    if diff:
        raise ValueError(
            "Field '%s' holds embeddings made with %s; this shard would use "
            "%s. Use the same options, or another field"
            % (
                field,
                ", ".join("%s=%r" % (k, theirs.get(k)) for k in diff),
                ", ".join("%s=%r" % (k, space[k]) for k in diff),
            )
        )


def _record_field_space(dataset, field, space):
    dataset.reload()
    f = dataset.get_field(field)
    info = dict(f.info or {})
    if info.get("jina_v4") != space:
        info["jina_v4"] = space
        f.info = info
        f.save()
