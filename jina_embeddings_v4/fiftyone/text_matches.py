"""Where a text search's words matched: ``fo.Detections`` of the matched
words on the top results, the lexical twin of the query heatmaps.

An index with ``text_matches_field`` writes, after each text search, one
box per word of a top result that shares a term with the query (see
:func:`jina_embeddings_v4.scoring.lexical.word_matches`), labelled with
the query's spelling of that term. The boxes come from the pages' word
field (``pdf_words``, written by ``add_pdfs``). Like the heatmaps, the
field holds the latest search's matches only: writers take turns on the
field's lock and clear the results of earlier searches.
"""

import fiftyone as fo
import fiftyone.core.labels as fol

from ..io import pdf_words
from ..scoring import lexical
from . import owned_fields
from .heatmaps import clear_field, locked_field

KIND = "text matches"


def claim_field(dataset, field):
    """Checks that ``field`` is ours to write ``fo.Detections`` into
    (created when missing; see :mod:`owned_fields`)."""
    owned_fields.claim(dataset, field, fol.Detections, KIND)


def check_words_field(dataset, field):
    """Raises a ValueError naming the fix unless ``field`` holds word boxes
    (a dict field, as ``add_pdfs`` writes it)."""
    schema = dataset.get_field_schema()
    if field not in schema:
        raise ValueError(
            "words_field=%r is not a field of dataset '%s': import the PDFs "
            "with add_pdfs(..., words_field=%r) (the default; `jina-v4 "
            "add-pdfs` without --no-words), or set text_matches_field=None"
            % (field, dataset.name, field)
        )
    if not isinstance(schema[field], fo.DictField):
        raise ValueError(
            "words_field=%r of dataset '%s' is a %s, not the dict of words "
            "and boxes that add_pdfs writes"
            % (field, dataset.name, type(schema[field]).__name__)
        )


def match_detections(query, words):
    """The ``fo.Detection`` of each word of a page that matches ``query``.

    Args:
        query: the query text
        words: a page's words as ``add_pdfs`` stores them
            (:func:`jina_embeddings_v4.io.pdf_words.pack`), or None

    Returns:
        a list of ``fo.Detection`` (label: the matched query term; the
        word itself in the ``word`` attribute)
    """
    texts, boxes = pdf_words.unpack(words)
    detections = []
    for index, label in lexical.word_matches(query, texts):
        detection = fol.Detection(
            label=label, bounding_box=list(boxes[index])
        )
        detection["word"] = texts[index]
        detections.append(detection)
    return detections


def write_for_search(index, query, ids):
    """Writes the matched words of a text search's top ``ids`` into the
    index's ``text_matches_field`` and clears the field elsewhere, as one
    turn of the field's lock."""
    config = index.config
    dataset = index._samples._root_dataset
    field = config.text_matches_field
    claim_field(dataset, field)
    check_words_field(dataset, config.words_field)
    page_ids, page_words = dataset.select(ids).values(["id", config.words_field])
    labels = {}
    for sample_id, words in zip(page_ids, page_words):
        detections = match_detections(query, words)
        if detections:
            labels[sample_id] = fol.Detections(detections=detections)
    with locked_field(dataset, field):
        clear_field(dataset, field, list(labels))
        if labels:
            dataset.set_values(field, labels, key_field="id")
    return labels
