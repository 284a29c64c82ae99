"""The App in a real browser: "Sort by text similarity" on a
jina_multivector index gives the MaxSim order.

Headless Chromium (Debian's package) driven by Playwright, as a user: the
grid toolbar's sort-by-similarity button, a query, Enter, "Show results".
The screenshot of the result is the README's.
"""

import os
import sys

import numpy as np
import pytest

from conftest import MODEL_NAME, REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "examples"))
import documents  # noqa: E402

import fiftyone as fo  # noqa: E402
import fiftyone.brain as fob  # noqa: E402
import fiftyone.zoo as foz  # noqa: E402

import app_driver  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not app_driver.browser_available(),
        reason="needs Debian's chromium (scripts/setup.sh installs it)",
    ),
]

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
    )
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
    port = app_driver.free_port()
    session = fo.launch_app(
        ds, remote=True, address="127.0.0.1", port=port, auto=False
    )
    try:
        with app_driver.app_page(session, port) as page:
            app_driver.sort_by_text_similarity(page, QUERY)
            ids = app_driver.wait_for_view_ids(session)
            # the App asks for the top 25: all 14 pages, by MaxSim
            assert ids == expected
            page.wait_for_timeout(3000)
            os.makedirs(SCREENSHOTS, exist_ok=True)
            page.screenshot(
                path=os.path.join(SCREENSHOTS, "app_multivector_search.png")
            )
    finally:
        session.close()
