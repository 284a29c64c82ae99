"""The lexical side of hybrid search: terms, sparse term vectors, fusion.

Pure functions (no engine, no FiftyOne), so that every store indexes the
same terms and ranks with the same fusion.

Terms keep identifiers findable. Text is NFKC-normalised and lower-cased;
a run of letters and digits joined by ``- _ . / : # ,`` with no space
(``INV-2024-0113``, ``v2.3``, ``ACME/7``) gives the whole run, with its
joints written ``_`` (``inv_2024_0113``), and each of its parts (``inv``,
``2024``, ``0113``). A query for the whole identifier therefore matches it
as one rare term, and a query for a part still finds it. Nothing is
stemmed and no stop words are removed: the engines weight common words
down by their document frequency (BM25's IDF).

Fusion is a weighted sum of the two rankings' scores, each scaled to
``[0, 1]`` over the candidates: MaxSim min-max, the lexical score divided
by the best one (0 for a page without a matching term)::

    fused = (1 - text_weight) * maxsim_scaled + text_weight * lexical_scaled

Pages without text, or without a matching term, keep their MaxSim order.
"""

import re
import unicodedata
import zlib

import numpy as np

# letters/digits, optionally joined by connectors with no space between
_RUN = re.compile(r"[^\W_]+(?:[-_./:#,][^\W_]+)*")
_PART = re.compile(r"[^\W_]+")

# BM25's term-frequency saturation, for engines that take term weights
# (Qdrant's sparse vectors; it multiplies them by its IDF)
BM25_K1 = 1.2

# identifiers longer than this are cut (engines cap token length)
MAX_TERM_CHARS = 40


def terms(text):
    """The lexical terms of ``text``, in order (with repeats).

    >>> terms("Invoice INV-2024-0113, total: 12.50")
    ['invoice', 'inv_2024_0113', 'inv', '2024', '0113', 'total', '12_50', '12', '50']
    """
    return [term for term, _ in term_spans(text)]


def term_spans(text):
    """``(term, spelling)`` pairs of :func:`terms`: each term with the text
    it came from, as written (NFKC-normalised, case kept).

    >>> term_spans("Invoice INV-2024")
    [('invoice', 'Invoice'), ('inv_2024', 'INV-2024'), ('inv', 'INV'), ('2024', '2024')]
    """
    if not text:
        return []

    text = unicodedata.normalize("NFKC", str(text))
    out = []
    for match in _RUN.finditer(text):
        run = match.group(0)
        parts = _PART.findall(run)
        if len(parts) > 1:
            whole = "_".join(parts).lower()[:MAX_TERM_CHARS]
            out.append((whole, run))
        out.extend((p.lower()[:MAX_TERM_CHARS], p) for p in parts)
    return out


def word_matches(query, words):
    """Which of a page's words hold a term of ``query``.

    Args:
        query: the query text
        words: the page's words (whitespace-free strings)

    Returns:
        ``[(index, label)]``: the words that share a term with the query,
        in page order, each labelled with the query's spelling of its
        longest shared term (a whole identifier before its parts)

    >>> word_matches("total INV-2024", ["Total:", "inv-2024-9", "INV-2024.", "x"])
    [(0, 'total'), (1, '2024'), (2, 'INV-2024')]
    """
    spelled = {}
    for term, spelling in term_spans(query):
        spelled.setdefault(term, spelling)
    if not spelled:
        return []

    matches = []
    for index, word in enumerate(words):
        shared = [t for t in terms(word) if t in spelled]
        if shared:
            best = max(shared, key=len)
            matches.append((index, spelled[best]))
    return matches


def engine_text(text):
    """``text`` as the engines index it: its terms joined by spaces (the
    engine then splits on whitespace only, so the terms stay whole)."""
    return " ".join(terms(text))


def term_id(term):
    """A stable 31-bit id of a term (CRC-32), for sparse vectors."""
    return zlib.crc32(term.encode("utf-8")) & 0x7FFFFFFF


def sparse_vector(term_list, k1=BM25_K1):
    """``(indices, values)``: each distinct term's id and its saturated
    frequency ``tf * (k1 + 1) / (tf + k1)`` (1.0 for a single occurrence),
    sorted by id. Colliding ids add up."""
    counts = {}
    for term in term_list:
        counts[term] = counts.get(term, 0) + 1

    weights = {}
    for term, tf in counts.items():
        key = term_id(term)
        weights[key] = weights.get(key, 0.0) + tf * (k1 + 1.0) / (tf + k1)

    indices = sorted(weights)
    return indices, [float(weights[i]) for i in indices]


def check_text_weight(value):
    """Raises a ValueError unless ``value`` is a number in ``[0, 1]``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0.0 <= float(value) <= 1.0
    ):
        raise ValueError(
            "text_weight must be a number in [0, 1] (0: MaxSim alone, 1: "
            "words alone), got %r" % (value,)
        )
    return float(value)


def fuse(visual, lexical, text_weight):
    """Fused scores of the candidates.

    Args:
        visual: ``{id: MaxSim score}`` of every candidate
        lexical: ``{id: lexical score}`` of the candidates with a matching
            term (others count as 0)
        text_weight: in ``[0, 1]``

    Returns:
        ``{id: fused score}`` in ``[0, 1]``, over the ids of ``visual``
    """
    if not visual:
        return {}

    ids = list(visual)
    v = np.asarray([visual[i] for i in ids], np.float64)
    span = v.max() - v.min()
    v = (v - v.min()) / span if span > 0 else np.ones_like(v)
    best = max([s for s in lexical.values() if s > 0] or [0.0])
    t = np.asarray(
        [max(lexical.get(i, 0.0), 0.0) / best if best else 0.0 for i in ids]
    )
    fused = (1.0 - text_weight) * v + text_weight * t
    return {i: float(f) for i, f in zip(ids, fused)}
