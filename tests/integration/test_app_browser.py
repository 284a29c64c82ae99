"""The App in a real browser: "Sort by text similarity" on a
jina_multivector index gives the MaxSim order.

Headless Chromium (Debian's package) driven by Playwright, as a user: the
grid toolbar's sort-by-similarity button, a query, Enter, "Show results".
The screenshot of the result is the README's.
"""

import os

import numpy as np
import pytest

from conftest import MODEL_NAME, REPO_ROOT

from jina_embeddings_v4.testing import documents  # noqa: E402

import fiftyone as fo  # noqa: E402
import fiftyone.brain as fob  # noqa: E402
import fiftyone.zoo as foz  # noqa: E402

import app_driver  # noqa: E402

pytestmark = [pytest.mark.slow, app_driver.needs_browser]

QUERY = "invoice total due"
SCREENSHOTS = os.path.join(REPO_ROOT, "docs", "images")
KWARGS = {"task": "retrieval", "dtype": "float32"}


@pytest.fixture(scope="module")
def indexed(zoo_source, tmp_root):
    pages = documents.write_dataset_images(
        os.path.join(tmp_root, "app-pages"), n=14, seed=33, scale=0.5
    )
    ds = fo.Dataset("jina-app-multivector", overwrite=True)
    ds.persistent = True
    ds.add_samples([fo.Sample(filepath=p["filepath"]) for p in pages])
    index = fob.compute_similarity(
        ds,
        model=MODEL_NAME,
        model_kwargs=KWARGS,
        backend="jina_multivector",
        brain_key="jina_mv",
        uri=os.path.join(tmp_root, "app-lancedb"),
        batch_size=7,
        heatmap_field="query_heatmap",
        heatmap_k=6,
    )
    # a first search from Python, so that the App lists the field
    ds.sort_by_similarity("receipt", k=6, brain_key="jina_mv")
    yield ds, index
    ds.delete()


def _maxsim_order(ds):
    model = foz.load_zoo_model(MODEL_NAME, **KWARGS)
    enc = model.encoder
    query = enc.encode_texts(
        [QUERY], task="retrieval", return_single=False, return_multi=True
    ).multi[0]
    scores = {}
    for sample_id, path in zip(*ds.values(["id", "filepath"])):
        page = enc.encode_images(
            [path], task="retrieval", return_single=False, return_multi=True
        ).multi[0]
        page = page.astype(np.float16).astype(np.float32)
        scores[sample_id] = float((query @ page.T).max(axis=1).sum())
    return sorted(scores, key=lambda i: -scores[i])


def test_app_text_search_gives_the_maxsim_order(indexed):
    ds, _ = indexed
    expected = _maxsim_order(ds)
    with app_driver.app_for(ds) as (session, page):
        app_driver.sort_by_text_similarity(page, QUERY)
        ids = app_driver.wait_for_view_ids(session)
        # the App asks for the top 25: all 14 pages, by MaxSim
        assert ids == expected
        page.wait_for_timeout(3000)
        os.makedirs(SCREENSHOTS, exist_ok=True)
        page.screenshot(
            path=os.path.join(SCREENSHOTS, "app_multivector_search.png")
        )


def test_app_search_draws_the_top_results_heatmaps(indexed):
    ds, _ = indexed
    with app_driver.app_for(ds) as (session, page):
        app_driver.sort_by_text_similarity(page, QUERY)
        ids = app_driver.wait_for_view_ids(session)
        # the search wrote heatmaps for its top 6, and only those
        ds.reload()
        with_maps = ds.exists("query_heatmap").values("id")
        assert sorted(with_maps) == sorted(ids[:6])
        for sample in ds.select(ids[:6]):
            assert sample["query_heatmap"]["query"] == QUERY
            assert sample["query_heatmap"].map.size > 0

        grid = app_driver.grid_box(page)
        before = app_driver.stable_pixels(page, grid)
        app_driver.show_field(page, "query_heatmap")
        after = app_driver.stable_pixels(page, grid)
        # drawn: with the grid at rest before and after, the pixels
        # change where the maps are (6 of the 14 tiles)
        changed = np.mean(np.any(before != after, axis=-1))
        assert changed > 0.05, changed
        page.screenshot(
            path=os.path.join(SCREENSHOTS, "app_query_heatmaps.png")
        )
        # the best page, expanded
        page.click('[data-cy="looker"]')
        page.wait_for_timeout(5000)
        page.screenshot(
            path=os.path.join(SCREENSHOTS, "app_query_heatmap_modal.png")
        )


@pytest.fixture()
def small_index(zoo_source, tmp_root):
    pages = documents.write_dataset_images(
        os.path.join(tmp_root, "app-fail-pages"), n=3, seed=7, scale=0.5
    )
    ds = fo.Dataset("jina-app-failures", overwrite=True)
    ds.persistent = True
    ds.add_samples([fo.Sample(filepath=p["filepath"]) for p in pages])
    uri = os.path.join(tmp_root, "app-fail-lancedb")
    fob.compute_similarity(
        ds,
        model=MODEL_NAME,
        model_kwargs=KWARGS,
        backend="jina_multivector",
        brain_key="jina_mv",
        uri=uri,
        batch_size=3,
    )
    yield ds, uri
    ds.delete()


def _error_shown_within(page, text, seconds):
    """Types a search in the App and waits for ``text`` on the page;
    returns the seconds it took."""
    import time

    app_driver.dismiss_popovers(page)
    page.click('[data-cy="action-sort-by-similarity"]')
    box = page.wait_for_selector(
        'input[placeholder="Type anything!"]', timeout=60000
    )
    box.fill(QUERY)
    start = time.monotonic()
    box.press("Enter")
    page.get_by_text(text, exact=False).first.wait_for(
        timeout=seconds * 1000
    )
    return time.monotonic() - start


def test_app_shows_a_missing_store_within_seconds(small_index):
    import shutil

    ds, uri = small_index
    shutil.rmtree(uri)
    with app_driver.app_for(ds) as (session, page):
        took = _error_shown_within(page, "has no pages", 20)
    assert took < 20


def test_app_shows_a_model_that_cannot_load_within_seconds(
    small_index, tmp_path, monkeypatch
):
    ds, _ = small_index
    # the App's server starts with a zoo folder that lacks the model
    monkeypatch.setenv("FIFTYONE_MODEL_ZOO_DIR", str(tmp_path / "empty-zoo"))
    with app_driver.app_for(ds) as (session, page):
        took = _error_shown_within(page, "not found", 30)
    assert took < 30
