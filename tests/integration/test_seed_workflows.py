"""The existing integration's documented workflows, call for call.

Users of the integration this project replaces run exactly these calls
(its README); each must work unchanged with this source. Only the data
differs: generated pages instead of a hub dataset.
"""

import os

import numpy as np
import pytest

from conftest import MODEL_NAME

from jina_embeddings_v4.testing import documents  # noqa: E402

import fiftyone as fo  # noqa: E402
import fiftyone.brain as fob  # noqa: E402
import fiftyone.zoo as foz  # noqa: E402

N = 22


@pytest.fixture(scope="module")
def dataset(zoo_source, tmp_root):
    pages = documents.write_dataset_images(
        os.path.join(tmp_root, "seed-pages"), n=N, seed=21, scale=0.35
    )
    ds = fo.Dataset("seed-workflows", overwrite=True)
    ds.add_samples(
        [
            fo.Sample(filepath=p["filepath"], needle_texts=p["kind"])
            for p in pages
        ]
    )
    yield ds
    ds.delete()


def test_basic_workflow(dataset):
    model = foz.load_zoo_model(MODEL_NAME, task="retrieval")
    dataset.compute_embeddings(model=model, embeddings_field="jina_embeddings")
    dim = model.encoder.hidden_size  # 2048 on the real model
    assert dataset.first()["jina_embeddings"].shape == (dim,)

    text_img_index = fob.compute_similarity(
        dataset,
        model=MODEL_NAME,
        embeddings_field="jina_embeddings",
        brain_key="jina_sim",
    )
    sims = text_img_index.sort_by_similarity("invoice from 2024", k=10)
    assert len(sims) == 10

    query = model.embed_prompt("invoice from 2024")
    stored = np.stack(dataset.values("jina_embeddings"))
    order = np.argsort(-(stored @ query), kind="stable")[:10]
    ids = dataset.values("id")
    assert sims.values("id") == [ids[i] for i in order]


def test_advanced_embedding_workflows(dataset):
    results = fob.compute_visualization(
        dataset,
        method="umap",
        brain_key="jina_viz",
        embeddings="jina_embeddings",
        num_dims=2,
    )
    assert results.points.shape == (N, 2)

    fob.compute_similarity(
        dataset,
        backend="sklearn",
        brain_key="jina_sim_sklearn",
        embeddings="jina_embeddings",
    )
    sample_id = dataset.first().id
    similar_samples = dataset.sort_by_similarity(
        sample_id, brain_key="jina_sim_sklearn", k=10
    )
    assert similar_samples.first().id == sample_id

    fob.compute_representativeness(
        dataset,
        representativeness_field="jina_represent",
        method="cluster-center",
        embeddings="jina_embeddings",
    )
    representative_view = dataset.sort_by("jina_represent", reverse=True)
    assert len(representative_view) == N

    fob.compute_uniqueness(dataset, embeddings="jina_embeddings")
    unique_view = dataset.sort_by("uniqueness", reverse=True)
    assert 0 <= unique_view.last()["uniqueness"] <= 1


def test_zero_shot_workflow(dataset):
    classes = dataset.distinct("needle_texts")
    model = foz.load_zoo_model(
        MODEL_NAME, classes=classes, task="text-matching"
    )
    model.classes = classes
    model.text_prompt = "An optional text prompt prepended to the classes"
    dataset.apply_model(model, label_field="needle_text_predictions")
    labels = dataset.values("needle_text_predictions.label")
    assert len(labels) == N and set(labels) <= set(classes)


def test_dynamic_classification_with_one_model(dataset):
    model = foz.load_zoo_model(MODEL_NAME, task="retrieval")
    tasks = [
        (["invoice", "receipt", "form", "contract"], "This is a", "doc_type"),
        (
            ["high_priority", "medium_priority", "low_priority"],
            "The priority level is",
            "priority",
        ),
        (
            ["english", "spanish", "french", "german", "chinese"],
            "The document language is",
            "language",
        ),
    ]
    for classes, prompt, field in tasks:
        model.classes = classes
        model.text_prompt = prompt
        dataset.apply_model(model, label_field=field)
        labels = dataset.values(field + ".label")
        assert len(labels) == N and set(labels) <= set(classes)
