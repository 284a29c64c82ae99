"""Embedding sharded over devices and machines that share one FiftyOne
database.

Each process (one per GPU; started by Slurm, Kubernetes, torchrun or a
shell loop) embeds shard ``I`` of ``N``: the samples that lack the field
and whose id hashes to ``I``. The share is deterministic and disjoint,
whatever the order or timing of the processes, and it does not move as
fields fill in. FiftyOne writes each batch as it goes, so a shard that is
killed and run again embeds only what it had not written; samples that
have the field are neither recomputed nor rewritten.

One field, one vector space. Before its first write a shard records its
vector-space options (:func:`jina_embeddings_v4.options.vector_space`) in
the field's ``info`` under ``"jina_v4"``, or, when a record is there
already, compares its own with it and refuses to write on any difference
(:class:`FieldSpaceMismatch`). Reading, comparing and recording happen
under a lock in FiftyOne's database (``field:<dataset id>:<field>``, see
:mod:`locks`), so of shards started at the same moment with different
options exactly one records its space and the others write nothing. The
record lives with the field: deleting, renaming or cloning the field
deletes, renames or clones it too.
"""

import hashlib
import logging

import fiftyone as fo
import fiftyone.zoo as foz

from .. import options
from . import locks
from . import owned_fields

logger = logging.getLogger(__name__)

MODEL_NAME = options.MODEL_NAME

# where the vector-space record of an embeddings field lives in its info,
# next to the owner mark of the fields this project writes
INFO_KEY = owned_fields.INFO_KEY
RECORD_KIND = "embeddings"

# the field types an embeddings field may have (FiftyOne's
# compute_embeddings creates a VectorField)
_VECTOR_FIELD_TYPES = (fo.VectorField, fo.ArrayField)

# a claim takes a few database calls: a holder silent this long is dead
FIELD_LOCK_STALE_S = 60.0


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

    Before anything is written, the model's vector-space options are
    recorded in the field's ``info`` (by the first shard) or checked
    against the record there (by every other one): see
    :func:`claim_field`.

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
            ``device``, ...); those that define the vector space must
            match the ones recorded in the field's ``info``

    Returns:
        the number of samples this call embedded

    Raises:
        FieldSpaceMismatch: if the field holds embeddings of other
            vector-space options; nothing is written then
    """
    parse_shard("%s/%s" % (shard, num_shards))
    if isinstance(dataset, str):
        dataset = fo.load_dataset(dataset)

    model = foz.load_zoo_model(MODEL_NAME, **model_kwargs)
    claim_field(dataset, field, model.vector_space())

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

    return len(view)


class FieldSpaceMismatch(ValueError):
    """A field holds embeddings of other vector-space options than the
    model that was to write into it.

    Attributes:
        dataset_name: the dataset's name
        field: the field's name
        recorded: the vector space recorded in the field's ``info``
        requested: the vector space of the refused model
        differences: the names of the options that differ
    """

    def __init__(self, dataset_name, field, recorded, requested):
        self.dataset_name = dataset_name
        self.field = field
        self.recorded = recorded
        self.requested = requested
        self.differences = options.space_differences(requested, recorded)
        super().__init__(self.describe(_python_option))

    def recorded_value(self, name):
        """The field's value of option ``name`` (its default when a record
        from an older release lacks it)."""
        default = options.VECTOR_SPACE_DEFAULTS[name]
        return self.recorded.get(name, default)

    def requested_value(self, name):
        """The refused model's value of option ``name``."""
        return self.requested.get(name, options.VECTOR_SPACE_DEFAULTS[name])

    def describe(self, spell, sep=", "):
        """The message, with the options that make the fix spelled by
        ``spell(name, value)`` (``task='code'`` in Python, ``--task code``
        on the command line) and joined by ``sep``."""
        recorded = ", ".join(
            "%s=%r" % (name, self.recorded_value(name))
            for name in self.differences
        )
        requested = ", ".join(
            "%s=%r" % (name, self.requested_value(name))
            for name in self.differences
        )
        fix = sep.join(
            spell(name, self.recorded_value(name)) for name in self.differences
        )
        return (
            "Field '%s' of dataset '%s' holds embeddings made with %s; this "
            "shard was given %s, another vector space, so it wrote nothing. "
            "Run it with %s to add to this field, or embed into another "
            "field, or delete this one (dataset.delete_sample_field(%r)) to "
            "start it over with %s"
            % (
                self.field,
                self.dataset_name,
                recorded,
                requested,
                fix,
                self.field,
                requested,
            )
        )


def _python_option(name, value):
    return "%s=%r" % (name, value)


def claim_field(dataset, field, space, wait=120.0):
    """Makes ``field`` an embeddings field of the vector space ``space``,
    before anything is written into it.

    Missing, the field is created as a ``fo.VectorField`` whose ``info``
    records ``space``. Present with a record, the record must equal
    ``space`` (options missing from a record of an older release count as
    their defaults). Present without one (written before records were
    made, or by ``compute_embeddings``), the field takes ``space`` as its
    record, with a warning when it already holds vectors. All of this
    happens under a lock in the database, so processes that claim one
    field at the same moment see one record: the first one's.

    Args:
        dataset: a ``fo.Dataset``
        field: the embeddings field, a top-level field name
        space: the vector-space options, as
            :func:`jina_embeddings_v4.options.vector_space` returns them
        wait (120.0): seconds to wait for the lock before giving up

    Returns:
        the field's record (``space``, with the ``owner`` and ``kind``
        keys of :mod:`owned_fields`, or the older record that equals it)

    Raises:
        FieldSpaceMismatch: if the field's record differs from ``space``
        ValueError: if the field is not a field of vectors
        TimeoutError: if the lock stays taken by a live process
    """
    if not isinstance(field, str) or not field or "." in field:
        raise ValueError(
            "An embeddings field must be a top-level field name, got %r"
            % (field,)
        )

    space = options.vector_space(space)
    record = dict(space, owner=owned_fields.OWNER, kind=RECORD_KIND)
    lock = locks.Lock(
        "field:%s:%s" % (dataset._doc.id, field),
        stale_after=FIELD_LOCK_STALE_S,
        purpose="embed-shard field claim",
    )
    try:
        lock.acquire(wait=wait)
    except locks.LockHeld as e:
        raise TimeoutError(
            "Field '%s' is being claimed by %s; waited %g s. If that "
            "process is gone on another machine, release its lock with "
            "jina_embeddings_v4.fiftyone.locks.break_lock(%r)"
            % (field, locks.describe(e.holder), wait, lock.name)
        ) from None
    with lock:
        # what other processes recorded, not this process's copy
        dataset.reload()
        if not dataset.has_field(field):
            dataset.add_sample_field(
                field, fo.VectorField, info={INFO_KEY: record}
            )
            logger.info(
                "Created field '%s' for embeddings made with %s",
                field,
                _describe_space(space),
            )
            return record

        existing = dataset.get_field(field)
        if not isinstance(existing, _VECTOR_FIELD_TYPES):
            raise ValueError(
                "Field '%s' of dataset '%s' is a %s; it cannot hold "
                "embeddings, and is left as it is. Choose another field name "
                "(e.g. 'jina_emb')"
                % (field, dataset.name, type(existing).__name__)
            )

        info = existing.info or {}
        theirs = info.get(INFO_KEY)
        if theirs is not None:
            if options.space_differences(space, theirs):
                raise FieldSpaceMismatch(dataset.name, field, theirs, space)
            return theirs

        held = len(dataset.exists(field))
        if held:
            logger.warning(
                "Field '%s' holds %d embeddings with no record of the "
                "options they were made with (written by an earlier release "
                "or by compute_embeddings); recording this shard's, %s. "
                "Delete the field first if they were made otherwise",
                field,
                held,
                _describe_space(space),
            )
        existing.info = dict(info, **{INFO_KEY: record})
        existing.save()
        return record


def _describe_space(space):
    return ", ".join("%s=%r" % item for item in sorted(space.items()))
