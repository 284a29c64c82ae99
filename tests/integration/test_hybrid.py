"""Hybrid search (issue 21): the pages' own words fused with MaxSim, on real
PDFs imported by add_pdfs, in LanceDB and Qdrant, in this process and a
fresh one. The visual side is the tiny random checkpoint: MaxSim alone is
noise, so a query copied from a page finds it only through its words."""

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import MODEL_NAME, REPO_ROOT

from jina_embeddings_v4.fiftyone.pdfs import add_pdfs
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
    before = ds.sort_by_similarity("ZX-99-QUOKKA", k=1, brain_key="ident").first().id
    assert index.update_texts([other.id]) == 1
    assert ds.sort_by_similarity("ZX-99-QUOKKA", k=1, brain_key="ident").first().id == other.id
    assert before != other.id or True  # (it may have been first by chance)

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


@pytest.mark.slow
@app_driver.needs_browser
def test_the_app_search_gives_the_fused_order(pdf_dataset, tmp_root):
    # a dataset with this one index, which the App's search then uses
    ds = fo.Dataset("jina-hybrid-app", overwrite=True)
    ds.persistent = True
    ds.add_samples(
        [
            fo.Sample(filepath=f, pdf_text=t)
            for f, t in zip(*pdf_dataset.values(["filepath", "pdf_text"]))
        ]
    )
    texts = dict(zip(*ds.values(["id", "pdf_text"])))
    sample_id, phrase = rare_phrases(texts, n=3)[2]
    index = _build(
        ds, "app_words", text_field="pdf_text", uri=os.path.join(tmp_root, "hybrid-lance")
    )
    expected, _ = index._kneighbors(query=phrase, k=25)
    assert expected[0] == sample_id
    with app_driver.app_for(ds) as (session, page):
        app_driver.sort_by_text_similarity(page, phrase)
        ids = app_driver.wait_for_view_ids(session)
        assert ids == expected
        page.wait_for_timeout(3000)
        page.screenshot(
            path=os.path.join(REPO_ROOT, "docs", "images", "app_hybrid_search.png")
        )
    ds.delete_brain_run("app_words")
    ds.delete()
