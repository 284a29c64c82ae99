"""FiftyOne's own model-zoo test patterns, against our model with defaults.

FiftyOne's ``tests/intensive/model_zoo_tests.py`` loads every zoo model with
no options and applies it: plain, with ``confidence_thresh=None`` and
``0.5``, with ``batch_size=5``, with and without ``store_logits``, and
``compute_embeddings(model)`` without a field. The same here, through the
registered source on the tiny checkpoint.
"""

import math
import os

import numpy as np
import pytest

from conftest import MODEL_NAME
from jina_embeddings_v4.testing.support import expected_zero_shot_labels

from jina_embeddings_v4.testing import documents  # noqa: E402

import fiftyone as fo  # noqa: E402
import fiftyone.zoo as foz  # noqa: E402

N_PAGES = 10

# Spelled out here, not read from the code: the documented defaults
RVL_CDIP = [
    "letter",
    "form",
    "email",
    "handwritten",
    "advertisement",
    "scientific report",
    "scientific publication",
    "specification",
    "file folder",
    "news article",
    "budget",
    "invoice",
    "presentation",
    "questionnaire",
    "resume",
    "memo",
]
DEFAULT_PROMPTS = [
    "a scan of a letter",
    "a scan of a form",
    "a scan of an email",
    "a scan of a handwritten document",
    "a scan of an advertisement",
    "a scan of a scientific report",
    "a scan of a scientific publication",
    "a scan of a specification",
    "a scan of a file folder",
    "a scan of a news article",
    "a scan of a budget",
    "a scan of an invoice",
    "a scan of a presentation slide",
    "a scan of a questionnaire",
    "a scan of a resume",
    "a scan of a memo",
]


@pytest.fixture(scope="module")
def dataset(zoo_source, tmp_root):
    pages = documents.write_dataset_images(
        os.path.join(tmp_root, "zoo-pattern-pages"), n=N_PAGES, seed=5,
        scale=0.4,
    )
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=p["filepath"]) for p in pages])
    yield ds
    ds.delete()


@pytest.fixture(scope="module")
def model(zoo_source):
    # exactly as FiftyOne's tests load every zoo model: no options
    return foz.load_zoo_model(MODEL_NAME)


@pytest.fixture(scope="module")
def expected(dataset, model):
    return expected_zero_shot_labels(
        model, dataset.values("filepath"), RVL_CDIP, DEFAULT_PROMPTS
    )


def test_listed_with_its_tags(zoo_source):
    assert MODEL_NAME in foz.list_zoo_models()
    zoo_model = foz.get_zoo_model(MODEL_NAME)
    for tag in ("embeddings", "zero-shot", "logits", "classification"):
        assert zoo_model.has_tag(tag), tag
    assert MODEL_NAME in foz.list_zoo_models(tags="logits")


def test_default_classes_are_the_document_types(model):
    assert model.classes == RVL_CDIP
    assert model.num_classes == 16


def test_apply_model_with_no_options(dataset, model, expected):
    dataset.apply_model(model, label_field="plain")
    assert dataset.values("plain.label") == expected
    conf = np.array(dataset.values("plain.confidence"))
    assert np.all((conf > 0) & (conf <= 1))


@pytest.mark.parametrize("thresh", [None, 0.5])
def test_confidence_thresh(dataset, model, expected, thresh):
    field = "thresh_%s" % ("none" if thresh is None else "half")
    dataset.apply_model(model, label_field=field, confidence_thresh=thresh)
    plain = foz.load_zoo_model(MODEL_NAME)
    dataset.apply_model(plain, label_field=field + "_ref")
    # FiftyOne creates no field when every label falls below the threshold
    got_labels = (
        dataset.values(field)
        if dataset.has_field(field)
        else [None] * len(dataset)
    )
    for got, ref, label in zip(
        got_labels, dataset.values(field + "_ref"), expected
    ):
        if thresh is not None and ref.confidence < thresh:
            assert got is None
        else:
            assert got.label == label
            assert got.confidence == pytest.approx(ref.confidence, abs=1e-6)


def test_batch_size_5(dataset, model, expected):
    # the class prompts' vectors are computed once, then cached
    dataset.limit(1).apply_model(model, label_field="b5")
    before = model.encoder.forward_calls
    dataset.apply_model(model, label_field="b5", batch_size=5)
    calls = model.encoder.forward_calls - before
    assert calls == math.ceil(N_PAGES / 5)
    assert dataset.values("b5.label") == expected


@pytest.mark.parametrize("store_logits", [True, False])
def test_store_logits(dataset, model, store_logits):
    field = "logits_%s" % store_logits
    dataset.apply_model(
        model,
        label_field=field,
        confidence_thresh=None,
        store_logits=store_logits,
    )
    for label in dataset.values(field):
        if store_logits:
            assert label.logits is not None
            assert label.logits.ndim == 1 and label.logits.shape == (16,)
            assert np.all(np.isfinite(label.logits))
            assert RVL_CDIP[int(np.argmax(label.logits))] == label.label
        else:
            assert label.logits is None


def test_compute_embeddings_without_a_field(dataset, model):
    embeddings = dataset.compute_embeddings(model)
    assert isinstance(embeddings, np.ndarray)
    assert embeddings.shape == (N_PAGES, model.encoder.hidden_size)
    assert embeddings.dtype == np.float32
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)
