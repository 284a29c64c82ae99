"""One copy of the weights per process, shared by every zoo-model instance."""

import gc
import sys
import weakref

import numpy as np
import pytest
from PIL import Image

from conftest import MODEL_NAME, TINY_SNAPSHOT

import fiftyone as fo  # noqa: E402
import fiftyone.brain as fob  # noqa: E402
import fiftyone.zoo as foz  # noqa: E402

from jina_embeddings_v4.model.encoder import JinaV4Encoder  # noqa: E402


@pytest.fixture
def cache(zoo_source, monkeypatch):
    module = sys.modules.get("jina_embeddings_v4.model.encoder_cache")
    if module is None:
        foz.load_zoo_model(MODEL_NAME)
        module = sys.modules["jina_embeddings_v4.model.encoder_cache"]
    gc.collect()
    monkeypatch.setenv(module.KEEP_WARM_ENV, "0")
    return module


def _weight_ptr(model):
    embed = model.encoder._modules.model.get_input_embeddings()
    return embed.weight.data_ptr()


def test_models_with_different_settings_share_weights(cache):
    a = foz.load_zoo_model(MODEL_NAME, task="retrieval", dtype="float32")
    loads = cache.load_count()
    b = foz.load_zoo_model(
        MODEL_NAME,
        task="text-matching",
        dtype="float32",
        classes=["invoice", "receipt"],
        truncate_dim=32,
    )
    c = foz.load_zoo_model(
        MODEL_NAME, task="code", dtype="float32", vector_mode="multi"
    )
    assert cache.load_count() == loads
    assert a.encoder is b.encoder is c.encoder
    assert _weight_ptr(a) == _weight_ptr(b) == _weight_ptr(c)


def test_switching_tasks_gives_each_tasks_own_vectors(cache):
    models = {
        task: foz.load_zoo_model(MODEL_NAME, task=task, dtype="float32")
        for task in ("retrieval", "text-matching", "code")
    }
    image = Image.new("RGB", (140, 100), (30, 90, 200))
    alone = JinaV4Encoder(TINY_SNAPSHOT, device="cpu", dtype="float32")
    for _ in range(2):  # interleaved, twice
        for task, model in models.items():
            expected_text = alone.encode_texts(
                ["invoice from 2024"], task=task, prompt_name="query"
            ).single[0]
            expected_image = alone.encode_images([image], task=task).single[0]
            assert np.array_equal(
                model.embed_prompt("invoice from 2024"), expected_text
            )
            assert np.array_equal(model.embed(image), expected_image)


def test_dropping_all_models_frees_the_encoder(cache):
    # settings no other test uses, so no other model shares this encoder
    kwargs = {"dtype": "bfloat16", "attn_implementation": "eager"}
    a = foz.load_zoo_model(MODEL_NAME, task="retrieval", **kwargs)
    b = foz.load_zoo_model(MODEL_NAME, task="code", **kwargs)
    ref = weakref.ref(a.encoder)
    assert b.encoder is ref()
    del a
    gc.collect()
    assert ref() is not None  # b still uses it
    del b
    gc.collect()
    assert ref() is None
    assert all(
        e.attn_implementation != "eager" for e in cache.loaded_encoders()
    )


def test_keep_warm_period_then_release(cache, monkeypatch):
    monkeypatch.setenv(cache.KEEP_WARM_ENV, "600")
    model = foz.load_zoo_model(
        MODEL_NAME, task="retrieval", dtype="float16", device="cpu"
    )
    ref = weakref.ref(model.encoder)
    loads = cache.load_count()
    del model
    gc.collect()
    assert ref() is not None  # kept warm for the next request
    again = foz.load_zoo_model(MODEL_NAME, task="code", dtype="float16")
    assert again.encoder is ref() and cache.load_count() == loads
    del again
    gc.collect()
    cache.release_all()
    gc.collect()
    assert ref() is None


def test_text_queries_do_not_reload_weights(cache, tmp_path):
    ds = fo.Dataset()
    for i in range(6):
        path = str(tmp_path / ("%d.png" % i))
        Image.new("RGB", (60 + 10 * i, 80), (40 * i, 20, 200)).save(path)
        ds.add_sample(fo.Sample(filepath=path))

    model = foz.load_zoo_model(MODEL_NAME)
    ds.compute_embeddings(model, embeddings_field="emb", batch_size=3)
    fob.compute_similarity(
        ds, model=MODEL_NAME, embeddings="emb", brain_key="sim"
    )
    del model
    gc.collect()

    ds.sort_by_similarity("first query", k=2, brain_key="sim")
    loads = cache.load_count()
    encoder = cache.loaded_encoders()
    calls = [e.forward_calls for e in encoder]
    view = ds.sort_by_similarity("second query", k=2, brain_key="sim")
    assert len(view) == 2
    assert cache.load_count() == loads
    # the second query cost one forward pass, no load
    assert sum(e.forward_calls for e in encoder) == sum(calls) + 1
    ds.delete()
