"""Hybrid search (issue 21): the pages' own words fused with MaxSim, on real
PDFs imported by add_pdfs, in LanceDB and Qdrant, in this process and a
fresh one. The visual side is the tiny random checkpoint: MaxSim alone is
noise, so a query copied from a page finds it only through its words."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import MODEL_NAME, REPO_ROOT

from jina_embeddings_v4.fiftyone.pdfs import add_pdfs
from jina_embeddings_v4.scoring import lexical
from jina_embeddings_v4.testing.phrases import rare_phrases
from jina_embeddings_v4.testing.support import debian_pdfs, system_deps_required

import fiftyone as fo
import fiftyone.brain as fob

import app_driver

KWARGS = {"task": "retrieval", "dtype": "float32"}

pytestmark = pytest.mark.skipif(
    len(debian_pdfs()) < 2 and not system_deps_required(),
    reason="Debian's PDFs are not here (scripts/setup_test_system.sh)",
)


@pytest.fixture(scope="module")
def pdf_dataset(zoo_source, tmp_root):
    ds = fo.Dataset("jina-hybrid", overwrite=True)
    ds.persistent = True  # the App's server is another process
    add_pdfs(ds, debian_pdfs(), os.path.join(tmp_root, "hybrid-pages"))
    yield ds
    ds.delete()


def _build(ds, key, **kwargs):
    return fob.compute_similarity(
        ds,
        model=MODEL_NAME,
        model_kwargs=KWARGS,
        backend="jina_multivector",
        brain_key=key,
        batch_size=8,
        **kwargs,
    )


def _firsts(ds, key, phrases):
    return [
        ds.sort_by_similarity(phrase, k=5, brain_key=key).first().id
        for _, phrase in phrases
    ]


FRESH = """
import json, sys
import fiftyone as fo
ds = fo.load_dataset(sys.argv[1])
phrases = json.loads(sys.argv[3])
print(json.dumps([
    ds.sort_by_similarity(p, k=5, brain_key=sys.argv[2]).first().id
    for p in phrases
]))
"""


def test_a_phrase_from_a_page_finds_that_page_first(pdf_dataset, tmp_root):
    ds = pdf_dataset
    texts = dict(zip(*ds.values(["id", "pdf_text"])))
    phrases = rare_phrases(texts)
    assert len(phrases) == 10, "the PDFs have too few pages with text"
    wanted = [i for i, _ in phrases]

    _build(ds, "visual", uri=os.path.join(tmp_root, "hybrid-lance"))
    visual = _firsts(ds, "visual", phrases)
    # the random checkpoint alone does not find them
    assert sum(a == b for a, b in zip(visual, wanted)) < 9

    for key, kwargs in (
        ("words", {"uri": os.path.join(tmp_root, "hybrid-lance")}),
        ("words_q", {"store": "qdrant", "path": os.path.join(tmp_root, "hybrid-q")}),
    ):
        _build(ds, key, text_field="pdf_text", **kwargs)
        found = _firsts(ds, key, phrases)
        hits = sum(a == b for a, b in zip(found, wanted))
        assert hits >= 9, (key, hits, phrases)

    # a fresh process (what the App's server does) ranks the same
    import json

    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FRESH), ds.name, "words",
         json.dumps([p for _, p in phrases])],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == _firsts(
        ds, "words", phrases
    )


def test_an_identifier_is_one_rare_term(pdf_dataset, tmp_root):
    ds = pdf_dataset
    target = ds.skip(3).first()
    target.pdf_text = (target.pdf_text or "") + " Reference INV-2024-0113."
    target.save()
    index = _build(
        ds, "ident", text_field="pdf_text", uri=os.path.join(tmp_root, "hybrid-lance")
    )
    for query in ("INV-2024-0113", "invoice inv-2024-0113"):
        assert ds.sort_by_similarity(query, k=3, brain_key="ident").first().id == target.id

    # the text changes: update_texts re-indexes it, no page is embedded
    other = ds.skip(5).first()
    other.pdf_text = "Order ZX-99-QUOKKA shipped"
    other.save()
    assert index.update_texts([other.id]) == 1
    assert ds.sort_by_similarity("ZX-99-QUOKKA", k=1, brain_key="ident").first().id == other.id

    # removed pages leave the words too; added ones bring theirs
    index.remove_from_index([other.id])
    assert other.id not in ds.sort_by_similarity("ZX-99-QUOKKA", k=3, brain_key="ident").values("id")
    index.add_to_index(None, [other.id])
    assert ds.sort_by_similarity("ZX-99-QUOKKA", k=1, brain_key="ident").first().id == other.id

    # sample-id queries stay visual: the page itself first
    assert ds.sort_by_similarity(target.id, k=1, brain_key="ident").first().id == target.id
    ds.delete_brain_run("ident")


def test_pages_without_text_still_search(zoo_source, tmp_root, pdf_dataset):
    ds = fo.Dataset("jina-hybrid-none", overwrite=True)
    ds.add_samples(
        [fo.Sample(filepath=f) for f in pdf_dataset.limit(6).values("filepath")]
    )
    ds.add_sample_field("pdf_text", fo.StringField)
    for key, kwargs in (
        ("lance", {"uri": os.path.join(tmp_root, "hybrid-none")}),
        ("qd", {"store": "qdrant", "path": os.path.join(tmp_root, "hybrid-none-q")}),
    ):
        _build(ds, key, text_field="pdf_text", **kwargs)
        hybrid = ds.sort_by_similarity("invoice total", k=6, brain_key=key)
        assert len(hybrid) == 6

    # one page with text: it leads for its words, the others keep their order
    first = ds.first()
    first.pdf_text = "quarterly invoice total"
    first.save()
    index = ds.load_brain_results("lance")
    index.update_texts()
    assert ds.sort_by_similarity("invoice total", k=6, brain_key="lance").first().id == first.id

    with pytest.raises(ValueError, match="text_field='nope': no such field"):
        _build(ds, "typo", text_field="nope", uri=os.path.join(tmp_root, "hybrid-none"))
    with pytest.raises(ValueError, match="text_weight must be a number in"):
        _build(ds, "w", text_field="pdf_text", text_weight=2, uri=os.path.join(tmp_root, "hybrid-none"))
    assert "typo" not in ds.list_brain_runs()
    ds.delete()


@pytest.mark.parametrize("rotation", [0, 90, 270])
def test_word_boxes_lie_on_the_ink_of_the_rendered_page(tmp_root, rotation):
    # a real page turned by its /Rotate: every dark pixel of the rendered
    # image is inside some word's box, and the boxes are mostly ink-free
    # paper elsewhere (so they are where the words are, not just big)
    import pypdfium2
    from PIL import Image

    from jina_embeddings_v4.io import pdf_render, pdf_words

    pdf = pypdfium2.PdfDocument(debian_pdfs()[1])
    pdf[1].set_rotation(rotation)
    path = os.path.join(tmp_root, "rotated-%d.pdf" % rotation)
    pdf.save(path)
    pdf.close()
    out = os.path.join(tmp_root, "rotated-%d.png" % rotation)
    result = pdf_render.render_page(path, 2, out, with_words=True)
    texts, boxes = pdf_words.unpack(result["words"])
    assert len(texts) == len(boxes) > 100
    assert texts[:3] == ["Shared", "MIME-info", "Database"]

    gray = np.asarray(Image.open(out).convert("L"))
    height, width = gray.shape
    assert (width > height) == (rotation in (90, 270))
    inside = np.zeros(gray.shape, bool)
    for x, y, w, h in boxes:
        assert 0 <= x <= x + w <= 1 and 0 <= y <= y + h <= 1
        inside[
            int(y * height) : int(np.ceil((y + h) * height)) + 1,
            int(x * width) : int(np.ceil((x + w) * width)) + 1,
        ] = True
    ink = gray < 128
    assert ink.sum() > 1000
    assert ink[inside].sum() / ink.sum() > 0.99
    assert inside.mean() < 0.5


def test_text_matches_draw_the_matched_words(pdf_dataset, tmp_root):
    ds = pdf_dataset
    assert ds.get_field("pdf_words") is not None
    texts = dict(zip(*ds.values(["id", "pdf_text"])))
    (sample_id, phrase), (other_id, other_phrase) = rare_phrases(texts, n=2)
    _build(
        ds,
        "matches",
        text_field="pdf_text",
        text_matches_field="text_matches",
        heatmap_k=3,
        uri=os.path.join(tmp_root, "hybrid-lance"),
    )
    view = ds.sort_by_similarity(phrase, k=10, brain_key="matches")
    assert view.first().id == sample_id
    top3 = view.values("id")[:3]

    query_terms = set(lexical.terms(phrase))
    spellings = {s for _, s in lexical.term_spans(phrase)}
    matched = ds[sample_id]["text_matches"].detections
    # every term of the phrase is on its page: each has a box there
    found = set()
    for d in matched:
        found |= set(lexical.terms(d["word"]))
    assert found >= query_terms
    for d in matched:
        assert d.label in spellings
        assert query_terms & set(lexical.terms(d["word"]))
        x, y, w, h = d.bounding_box
        assert 0 <= x < x + w <= 1 and 0 <= y < y + h <= 1
    # the field holds this search's top 3 only (those with a match)
    written = set(ds.exists("text_matches").values("id"))
    assert sample_id in written and written <= set(top3)

    # the next search replaces them
    view = ds.sort_by_similarity(other_phrase, k=10, brain_key="matches")
    assert view.first().id == other_id
    assert set(ds.exists("text_matches").values("id")) <= set(view.values("id")[:3])
    labels = {d.label for d in ds[other_id]["text_matches"].detections}
    assert labels <= {s for _, s in lexical.term_spans(other_phrase)}

    # a field of someone else's is refused before anything is written
    labelled = ds[other_id]
    labelled["ground_truth"] = fo.Detections(
        detections=[fo.Detection(label="table", bounding_box=[0.1, 0.1, 0.5, 0.5])]
    )
    labelled.save()
    with pytest.raises(ValueError, match="Choose another field name"):
        _build(
            ds,
            "matches_bad",
            text_field="pdf_text",
            text_matches_field="ground_truth",
            uri=os.path.join(tmp_root, "hybrid-lance"),
        )
    # and a missing word field is named, with the fix
    with pytest.raises(ValueError, match="words_field='no_words'.*add_pdfs"):
        _build(
            ds,
            "matches_bad",
            text_matches_field="text_matches",
            words_field="no_words",
            uri=os.path.join(tmp_root, "hybrid-lance"),
        )
    assert ds[other_id]["ground_truth"].detections[0].label == "table"
    assert "matches_bad" not in ds.list_brain_runs()
    ds.delete_brain_run("matches")
    ds.delete_sample_field("ground_truth")


@pytest.mark.slow
@app_driver.needs_browser
def test_the_app_search_gives_the_fused_order(pdf_dataset, tmp_root):
    # a dataset with this one index, which the App's search then uses
    ds = fo.Dataset("jina-hybrid-app", overwrite=True)
    ds.persistent = True
    ds.add_samples(
        [
            fo.Sample(filepath=f, pdf_text=t, pdf_words=w)
            for f, t, w in zip(
                *pdf_dataset.values(["filepath", "pdf_text", "pdf_words"])
            )
        ]
    )
    texts = dict(zip(*ds.values(["id", "pdf_text"])))
    # the phrase whose commonest word is on the fewest pages: the picture
    # shows the words that made the page first, not every "the"
    page_terms = [set(lexical.terms(t)) for t in texts.values()]

    def commonest(item):
        return max(
            sum(term in terms for terms in page_terms)
            for term in lexical.terms(item[1])
        )

    sample_id, phrase = min(rare_phrases(texts, n=10), key=commonest)
    index = _build(
        ds,
        "app_words",
        text_field="pdf_text",
        text_matches_field="text_matches",
        heatmap_field="query_heatmap",
        heatmap_k=6,
        uri=os.path.join(tmp_root, "hybrid-lance"),
    )
    expected, _ = index._kneighbors(query=phrase, k=25)
    assert expected[0] == sample_id
    ds.set_values("text_matches", [None] * len(ds))
    # both why-maps shown, as a user sets them in the sidebar
    ds.app_config.active_fields = fo.core.odm.dataset.ActiveFields(
        paths=["text_matches", "query_heatmap"]
    )
    ds.save()
    with app_driver.app_for(ds) as (session, page):
        app_driver.sort_by_text_similarity(page, phrase)
        ids = app_driver.wait_for_view_ids(session)
        assert ids == expected
        # the App's search wrote the matched words of its best page
        assert ds[sample_id]["text_matches"] is not None
        grid = app_driver.grid_box(page)
        app_driver.stable_pixels(page, grid)
        page.screenshot(
            path=os.path.join(REPO_ROOT, "docs", "images", "app_hybrid_search.png")
        )
        # the best page, expanded: its matched words and its heatmap
        page.click('[data-cy="looker"]')
        page.wait_for_timeout(5000)
        page.screenshot(
            path=os.path.join(
                REPO_ROOT, "docs", "images", "app_hybrid_text_matches.png"
            )
        )
    ds.delete_brain_run("app_words")
    ds.delete()
