"""Fields this project writes into samples are created and owned by it.

A field it writes (heatmaps, keypoints) carries ``{"jina_v4": {"owner":
...}}`` in its ``info``. Before anything is written, :func:`claim` checks
a field: missing, it is created with that mark; present, it must be of the
label type wanted and marked as ours, or else a ValueError names the field
and what to do. So a user's ``ground_truth``, ``filepath`` or ``tags`` is
never cleared or overwritten.

Fields written by releases before the mark are taken over when they hold
nothing but our labels (every value carries the ``query`` attribute our
heatmaps have).
"""

import fiftyone as fo

INFO_KEY = "jina_v4"
OWNER = "jina_embeddings_v4"


# what labels written by releases before the mark carry, by kind
_LEGACY_ATTR = {"heatmap": "query"}

# the field name suggested when the one asked for is taken, by kind
_SUGGESTED = {"text matches": "text_matches"}


def claim(dataset, name, label_cls, kind):
    """Makes sure ``name`` is a field of ``label_cls`` labels owned by this
    project on ``dataset`` (created when missing).

    Args:
        dataset: a ``fo.Dataset``
        name: the field name
        label_cls: the label class, e.g. ``fo.Heatmap``
        kind: what the field holds, for the mark (e.g. ``"heatmap"``)

    Raises:
        ValueError: if the field exists and is not ours to write
    """
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(
            "A field name for %s labels must be a top-level field name, got "
            "%r" % (kind, name)
        )

    mark = {"owner": OWNER, "kind": kind}
    if not dataset.has_field(name):
        dataset.add_sample_field(
            name,
            fo.EmbeddedDocumentField,
            embedded_doc_type=label_cls,
            info={INFO_KEY: mark},
        )
        return

    field = dataset.get_field(name)
    doc_type = getattr(field, "document_type", None)
    if not isinstance(field, fo.EmbeddedDocumentField) or doc_type is not label_cls:
        raise ValueError(
            "Field '%s' of dataset '%s' is a %s; it cannot hold the %s labels "
            "this project writes, and is left as it is. Choose another field "
            "name (e.g. '%s')"
            % (name, dataset.name, _describe(field), kind, _suggested(kind))
        )

    info = field.info or {}
    if (info.get(INFO_KEY) or {}).get("owner") == OWNER:
        return

    attr = _LEGACY_ATTR.get(kind)
    present = dataset.exists(name)
    if attr is None:
        foreign = len(present)
    else:
        foreign = len(present.exists("%s.%s" % (name, attr), False))
    if foreign:
        raise ValueError(
            "Field '%s' of dataset '%s' holds %s labels that this project did "
            "not write (%d samples); it is left as it is. Choose another "
            "field name (e.g. '%s')"
            % (name, dataset.name, label_cls.__name__, foreign, _suggested(kind))
        )

    # written by an earlier release: ours, now marked
    field.info = dict(info, **{INFO_KEY: mark})
    field.save()


def _suggested(kind):
    return _SUGGESTED.get(kind, "query_heatmap")


def _describe(field):
    doc_type = getattr(field, "document_type", None)
    if doc_type is not None:
        return "%s of %s" % (type(field).__name__, doc_type.__name__)
    return type(field).__name__
