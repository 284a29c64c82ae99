"""The zoo hooks FiftyOne calls for the App's "apply zoo model" form."""

import pytest

from conftest import MODEL_NAME

import fiftyone.zoo as foz  # noqa: E402


@pytest.fixture(scope="module")
def zoo_model(zoo_source):
    return foz.get_zoo_model(MODEL_NAME)


def test_manifest_entry(zoo_model):
    assert zoo_model.name == MODEL_NAME
    for tag in (
        "embeddings",
        "zero-shot",
        "logits",
        "torch",
        "visual-document-retrieval",
    ):
        assert tag in zoo_model.tags
    assert zoo_model.supports_cpu and zoo_model.supports_gpu
    assert "transformers>=5.5.4,<6" in zoo_model.requirements.packages


def test_resolve_input_offers_the_real_options(zoo_model):
    prop = zoo_model.resolve_input(None)
    fields = prop.type.properties
    assert set(fields) == {
        "task",
        "classes",
        "text_prompt",
        "vector_mode",
        "pooling_strategy",
        "truncate_dim",
        "max_pixels",
    }
    choices = fields["task"].type.values
    assert choices == ["retrieval", "text-matching", "code"]
    assert fields["task"].default == "retrieval"
    dims = fields["truncate_dim"].type.values
    assert dims == ["none", "128", "256", "512", "1024", "2048"]
    assert fields["max_pixels"].default == 602112


def test_parse_parameters_turns_form_strings_into_kwargs(zoo_model):
    params = {
        "task": "text-matching",
        "classes": " invoice, receipt ,, form ",
        "text_prompt": "",
        "truncate_dim": "512",
        "max_pixels": "401408",
    }
    zoo_model.parse_parameters(None, params)
    assert params == {
        "task": "text-matching",
        "classes": ["invoice", "receipt", "form"],
        "truncate_dim": 512,
        "max_pixels": 401408,
    }

    params = {"classes": " , ", "truncate_dim": "none"}
    zoo_model.parse_parameters(None, params)
    assert params == {}


def test_form_values_load_a_working_model(zoo_model):
    params = {"task": "code", "classes": "invoice, receipt"}
    zoo_model.parse_parameters(None, params)
    model = foz.load_zoo_model(MODEL_NAME, **params)
    assert model.classes == ["invoice", "receipt"]
    assert model.config.task == "code"
