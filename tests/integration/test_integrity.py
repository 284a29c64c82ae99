"""Nothing lost, nothing mixed (issue 20's cases that this file covers):
fields the project writes are its own, table names are injective in the
brain key, queries of the wrong type raise with what is accepted."""

import os

import numpy as np
import pytest

from conftest import MODEL_NAME

from jina_embeddings_v4.fiftyone import heatmaps as fh
from jina_embeddings_v4.index.backend import default_table_name
from jina_embeddings_v4.testing import documents

import fiftyone as fo
import fiftyone.brain as fob
import fiftyone.zoo as foz

KWARGS = {"task": "retrieval", "dtype": "float32"}


@pytest.fixture(scope="module")
def dataset(zoo_source, tmp_root):
    pages = documents.write_dataset_images(
        os.path.join(tmp_root, "integrity-pages"), n=5, seed=41, scale=0.4
    )
    ds = fo.Dataset("jina-integrity", overwrite=True)
    ds.add_samples(
        [
            fo.Sample(
                filepath=p["filepath"],
                ground_truth=fo.Classification(label=p["kind"]),
                tags=["keep"],
            )
            for p in pages
        ]
    )
    yield ds
    ds.delete()


def _index(ds, tmp_root, key, **kwargs):
    return fob.compute_similarity(
        ds,
        model=MODEL_NAME,
        model_kwargs=KWARGS,
        backend="jina_multivector",
        brain_key=key,
        uri=os.path.join(tmp_root, "integrity-lance"),
        batch_size=5,
        **kwargs,
    )


@pytest.mark.parametrize("field", ["ground_truth", "filepath", "tags"])
def test_a_field_of_the_user_is_refused_before_anything_is_written(
    dataset, tmp_root, field
):
    before = dataset.values(field)
    runs = dataset.list_brain_runs()
    with pytest.raises(ValueError, match="Field '%s'.*left as it is" % field):
        _index(dataset, tmp_root, "bad_" + field, heatmap_field=field)
    assert dataset.values(field) == before
    assert dataset.list_brain_runs() == runs


def test_a_search_never_clears_a_field_it_does_not_own(dataset, tmp_root):
    index = _index(dataset, tmp_root, "owned", heatmap_field="query_heatmap")
    dataset.sort_by_similarity("invoice", k=2, brain_key="owned")
    assert len(dataset.exists("query_heatmap")) == 2
    field = dataset.get_field("query_heatmap")
    assert field.info["jina_v4"]["owner"] == "jina_embeddings_v4"

    # the user points the saved run at a field of theirs afterwards
    before = dataset.values("ground_truth.label")
    index.config.heatmap_field = "ground_truth"
    with pytest.raises(ValueError, match="Field 'ground_truth'"):
        index.sort_by_similarity("invoice", k=2)
    index.use_view(dataset.limit(0))  # the empty view that wiped it
    with pytest.raises(ValueError, match="Field 'ground_truth'"):
        index.sort_by_similarity("receipt", k=2)
    assert dataset.values("ground_truth.label") == before


def test_compute_heatmaps_refuses_a_heatmap_field_it_did_not_write(dataset):
    dataset.add_sample_field(
        "user_maps", fo.EmbeddedDocumentField, embedded_doc_type=fo.Heatmap
    )
    first = dataset.first()
    first["user_maps"] = fo.Heatmap(map=np.zeros((2, 2)))
    first.save()
    model = foz.load_zoo_model(MODEL_NAME, **KWARGS)
    with pytest.raises(ValueError, match="did not write"):
        model.compute_heatmaps(dataset, "invoice", heatmap_field="user_maps")
    assert dataset.first()["user_maps"].map.shape == (2, 2)


def test_table_names_are_injective_in_the_brain_key(dataset):
    names = {default_table_name(dataset, k) for k in ("clé", "cl_", "cl", "cl-")}
    assert len(names) == 4
    for name in names:
        assert name.startswith("fiftyone_%s_cl" % dataset._doc.id)
        assert all(c.isalnum() or c == "_" for c in name)


def test_two_keys_that_read_alike_keep_their_own_rows(dataset, tmp_root):
    a = _index(dataset, tmp_root, "clé")
    b = _index(dataset, tmp_root, "cl_")
    assert a.config.table_name != b.config.table_name
    ids = dataset.values("id")
    b.remove_from_index(sample_ids=ids[:2])
    assert a.total_index_size == len(ids)
    assert b.total_index_size == len(ids) - 2
    dataset.delete_brain_run("cl_")
    assert a.total_index_size == len(ids)
    assert len(dataset.sort_by_similarity("invoice", k=3, brain_key="clé")) == 3


def test_queries_of_the_wrong_type_raise_with_what_is_accepted(
    dataset, tmp_root
):
    index = _index(dataset, tmp_root, "types")
    with pytest.raises(ValueError, match="Unsupported query of type dict"):
        index.sort_by_similarity({"invoice": 1}, k=2)
    sample_id = dataset.first().id
    with pytest.raises(ValueError, match="mixes sample ids and texts"):
        index.sort_by_similarity([sample_id, "invoice"], k=2)
    vector = np.full(index.get_embeddings()[0].shape[1], np.nan, np.float32)
    with pytest.raises(ValueError, match="NaN"):
        index.sort_by_similarity(vector, k=2)


def test_a_long_query_is_not_copied_whole_into_each_heatmap():
    long_query = "invoice " * 20000
    short = fh.query_attribute(long_query)
    assert len(short) == fh.QUERY_ATTR_MAX
    assert short.endswith("\u2026") and long_query.startswith(short[:-1])
    assert fh.query_attribute("invoice") == "invoice"
