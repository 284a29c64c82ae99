"""How a ``jina_multivector`` index takes the pages FiftyOne feeds the
model while the index is being built.

FiftyOne's ``compute_similarity`` hands the index the model
(``results._model = model``) and then computes embeddings through the
model's ``build_get_item`` and ``embed_all``, with its data loader. While
attached, this module stands in for those two methods on that one model
object, so that:

- the loader hands over each sample's id with its image, and no image at
  all for a page the index holds already (a resumed build reads its stored
  single vector instead of embedding it again);
- each batch gets single and multi vectors from one forward pass, written
  to the store at once (an interrupted build keeps every finished batch),
  and FiftyOne gets the single vectors back as from any model.

The model class knows nothing of this: :func:`attach` sets two instance
attributes and :func:`detach` removes them.
"""

import weakref

import numpy as np

import fiftyone.utils.torch as fout

from ..fiftyone import context as fiftyone_context
from ..fiftyone.zoo import split_unreadable

_ATTR = "_jina_index_ref"


class IndexedPage(object):
    """A page for the index being built: its sample id, and its image, or
    None when the index holds the page already."""

    def __init__(self, sample_id, image=None):
        self.sample_id = sample_id
        self.image = image


class IndexGetItem(fout.GetItem):
    """Wraps the model's own image loading: items become
    :class:`IndexedPage`, and pages in ``indexed_ids`` are not loaded.

    Args:
        inner: the model's ``GetItem``
        indexed_ids: the ids the index holds already
        field_mapping (None): FiftyOne's field mapping
    """

    def __init__(self, inner, indexed_ids, field_mapping=None):
        self.inner = inner
        self.indexed_ids = set(indexed_ids)
        super().__init__(field_mapping=field_mapping)

    @property
    def required_keys(self):
        return list(self.inner.required_keys) + ["id"]

    def __call__(self, d):
        if d["id"] in self.indexed_ids:
            return IndexedPage(d["id"])

        return IndexedPage(d["id"], self.inner(d))


def attach(model, index):
    """From here on, the pages ``model`` embeds through FiftyOne's data
    loader also go into ``index``."""
    setattr(model, _ATTR, weakref.ref(index))
    model_cls = type(model)

    def build_get_item(field_mapping=None):
        inner = model_cls.build_get_item(model, field_mapping=field_mapping)
        target = attached_index(model)
        if target is None:
            return inner

        return IndexGetItem(
            inner, target.indexed_ids(), field_mapping=field_mapping
        )

    def embed_all(imgs):
        items = list(imgs) if isinstance(imgs, (list, tuple)) else [imgs]
        if items and isinstance(items[0], IndexedPage):
            return _embed_for_index(model, items)

        return model_cls.embed_all(model, imgs)

    model.build_get_item = build_get_item
    model.embed_all = embed_all


def detach(model, index=None):
    """Stops sending ``model``'s pages to ``index`` (to any index when
    None)."""
    if index is not None and attached_index(model) is not index:
        return

    for name in (_ATTR, "build_get_item", "embed_all"):
        model.__dict__.pop(name, None)


def attached_index(model):
    """The index ``model`` is attached to, or None."""
    ref = model.__dict__.get(_ATTR)
    return None if ref is None else ref()


def _embed_for_index(model, pages):
    index = attached_index(model)
    if index is None:
        raise RuntimeError(
            "Pages for a multi-vector index arrived after the index was "
            "detached from the model"
        )
    index.check_writable()

    stored = index.stored_singles(
        [p.sample_id for p in pages if p.image is None]
    )
    new = [p for p in pages if p.image is not None]
    images, failed = split_unreadable([p.image for p in new])
    readable = [p for i, p in enumerate(new) if i not in failed]
    if readable:
        singles, multis, grids = model.embed_images_with_multivectors(images)
        ids = [p.sample_id for p in readable]
        index.write(ids, singles, multis, grids)
        stored.update(zip(ids, singles))

    vectors = [stored.get(p.sample_id) for p in pages]
    if any(v is None for v in vectors):
        if fiftyone_context.embeddings_returned_not_stored():
            # the readable pages are in the index already; FiftyOne drops
            # this batch's return value, as for any model
            raise ValueError(
                "Unreadable images: %s"
                % "; ".join(f.error for f in failed.values())
            )
        return vectors

    return np.stack(vectors)
