"""The zoo source through real FiftyOne, its real database and zoo loading.

The source is installed the way FiftyOne keeps it (a folder in
FIFTYONE_MODEL_ZOO_DIR with the tiny checkpoint as its weights) and, in a
separate test, registered from a URL as users do.
"""

import http.server
from collections import Counter
import json
import math
import os
import shutil
import socketserver
import sys
import threading
import zipfile

import numpy as np
import pytest

from conftest import MODEL_NAME, REPO_ROOT, TINY_SNAPSHOT, ZOO_PACKAGE
from conftest import run_python
from app_driver import free_port
from jina_embeddings_v4.testing.support import SOURCE_IGNORE, expected_zero_shot_labels, install_source

from jina_embeddings_v4.testing import documents  # noqa: E402

import fiftyone as fo  # noqa: E402
import fiftyone.brain as fob  # noqa: E402
import fiftyone.zoo as foz  # noqa: E402

from jina_embeddings_v4.scoring import late_interaction as li  # noqa: E402
from jina_embeddings_v4.model import batching  # noqa: E402
from PIL import Image  # noqa: E402

N_DOCS = 24
QUERY = "invoice from 2024"


@pytest.fixture(scope="module")
def pages(tmp_root):
    out = os.path.join(tmp_root, "pages")
    return documents.write_dataset_images(out, n=N_DOCS, seed=7, scale=0.5)


@pytest.fixture(scope="module")
def dataset(pages):
    ds = fo.Dataset("jina-zoo-tests", overwrite=True)
    ds.persistent = True
    ds.add_samples(
        [fo.Sample(filepath=p["filepath"], kind=p["kind"]) for p in pages]
    )
    yield ds
    ds.delete()


@pytest.fixture(scope="module")
def model(zoo_source):
    return foz.load_zoo_model(MODEL_NAME, task="retrieval")


def _stored(dataset, field):
    return np.stack(dataset.values(field))


def _cosine(a, b):
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return a @ b.T


# -- loading and options -------------------------------------------------


def test_loads_from_zoo_folder(model):
    assert type(model).__name__ == "JinaEmbeddingsV4"
    assert type(model).__module__ == "jina_embeddings_v4.fiftyone.zoo"
    assert model.encoder.snapshot_dir == os.path.realpath(
        os.path.join(
            os.environ["FIFTYONE_MODEL_ZOO_DIR"],
            ZOO_PACKAGE,
            "jina-embeddings-v4",
        )
    )
    assert model.has_embeddings and model.can_embed_prompts
    assert model.ragged_batches is False and model.has_collate_fn


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"task": "search"}, "retrieval, text-matching, code"),
        ({"vector_mode": "dense"}, "'single', 'multi'"),
        ({"pooling_strategy": "sum"}, "'mean', 'max'"),
        ({"truncate_dim": 100}, "16, 32, 64"),
        ({"vector_mode": "multi", "truncate_dim": 32}, "single"),
        ({"dtype": "int8"}, "'auto', 'float32', 'bfloat16', 'float16'"),
        ({"max_pixels": -5}, "max_pixels must be a positive integer"),
        ({"max_pixels": "big"}, "max_pixels must be a positive integer"),
        ({"query_prompt_name": "doc"}, "query, passage"),
        ({"classes": []}, "classes is empty"),
        ({"classes": "invoice"}, "list of strings"),
        ({"classes": ["a", "b", "a"]}, "duplicates"),
        ({"classes": ["a", 3]}, "non-empty strings"),
        ({"text_prompt": 5}, "text_prompt must be a string"),
        ({"taks": "retrieval"}, "Unknown option.*valid options are"),
        ({"vision_attention": "fast"}, "'packed', 'stock'"),
        ({"drop_padding_mask": "no"}, "drop_padding_mask must be True"),
        ({"fused_lora": 1}, "fused_lora must be True or False"),
        ({"max_batch_tokens": 0}, "max_batch_tokens must be a positive"),
        ({"merge_lora": "yes"}, "merge_lora must be True or False"),
        ({"preprocess_in_loader": 1}, "preprocess_in_loader must be True"),
    ],
)
def test_invalid_options_fail_before_loading(zoo_source, kwargs, match):
    loads = _loads_now()
    with pytest.raises(ValueError, match=match):
        foz.load_zoo_model(MODEL_NAME, **kwargs)
    assert _loads_now() == loads


def _loads_now():
    module = sys.modules.get("jina_embeddings_v4.model.encoder_cache")
    return module.load_count() if module else 0


def test_download_model_is_offline_and_instant_when_complete(zoo_source):
    import time

    start = time.perf_counter()
    foz.download_zoo_model(MODEL_NAME)
    assert time.perf_counter() - start < 2.0


def test_incomplete_snapshot_offline_names_what_is_missing(tmp_path):
    zoo_dir = tmp_path / "zoo"
    dest = os.path.join(zoo_dir, ZOO_PACKAGE, "jina-embeddings-v4")
    shutil.copytree(REPO_ROOT, os.path.dirname(dest), ignore=SOURCE_IGNORE)
    shutil.copytree(TINY_SNAPSHOT, dest)
    os.remove(os.path.join(dest, "model-00001-of-00002.safetensors"))
    script = """
        import fiftyone.zoo as foz
        # a typo is reported before any download is attempted
        try:
            foz.load_zoo_model("%s", taks="retrieval")
        except Exception as e:
            print("TYPO:", e)
        try:
            foz.load_zoo_model("%s")
        except Exception as e:
            print("ERROR:", e)
    """ % (MODEL_NAME, MODEL_NAME)
    out = run_python(script, FIFTYONE_MODEL_ZOO_DIR=str(zoo_dir))
    typo = out.split("TYPO:")[1].split("ERROR:")[0]
    assert "Unknown option(s) taks" in typo and "download" not in typo
    assert "ERROR:" in out
    assert dest in out
    assert "model-00001-of-00002.safetensors" in out
    assert "network access" in out


def test_registered_from_url_like_users_do(tmp_path):
    archive = tmp_path / "serve" / "jina-embeddings-v4-fiftyone.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        # what a GitHub archive of the repo holds of the source
        staged = install_source(str(tmp_path / "staged"), snapshot=None)
        for root, _, files in os.walk(staged):
            for name in sorted(files):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, staged)
                zf.write(path, "jina-embeddings-v4-fiftyone/" + rel)

    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa
        *a, directory=str(archive.parent), **k
    )
    with socketserver.TCPServer(("127.0.0.1", 0), handler) as server:
        port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        url = "http://127.0.0.1:%d/%s" % (port, archive.name)
        script = """
            import os, shutil
            import fiftyone.zoo as foz
            foz.register_zoo_model_source(%r)
            zoo_model = foz.get_zoo_model(%r)
            path = zoo_model.get_path_in_dir(
                os.environ["FIFTYONE_MODEL_ZOO_DIR"])
            shutil.copytree(%r, path)
            model = foz.load_zoo_model(%r, task="code")
            vec = model.embed_prompt("invoice from 2024")
            print("RESULT", type(model).__name__, model.config.task,
                  vec.shape, vec.dtype)
        """ % (url, MODEL_NAME, TINY_SNAPSHOT, MODEL_NAME)
        try:
            out = run_python(
                script, FIFTYONE_MODEL_ZOO_DIR=str(tmp_path / "zoo")
            )
        finally:
            server.shutdown()

    assert "RESULT JinaEmbeddingsV4 code (64,) float32" in out


# -- embeddings ----------------------------------------------------------


def test_compute_embeddings_batched_and_exact(dataset, model):
    encoder = model.encoder
    before = encoder.forward_calls
    dataset.compute_embeddings(
        model, embeddings_field="jina_emb", batch_size=5, skip_failures=False
    )
    assert encoder.forward_calls - before == math.ceil(N_DOCS / 5)

    stored = _stored(dataset, "jina_emb")
    assert stored.shape == (N_DOCS, encoder.hidden_size)
    assert stored.dtype == np.float32
    assert np.allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-4)

    # the same vectors as the encoder gives on the files directly
    direct = encoder.encode_images(dataset.values("filepath")).single
    assert np.min(np.sum(direct * stored, axis=1)) >= 0.9999


def test_batch_size_reaches_encoder_with_workers(dataset, model):
    before = model.encoder.forward_calls
    dataset.compute_embeddings(
        model,
        embeddings_field="jina_emb_workers",
        batch_size=8,
        num_workers=2,
        skip_failures=False,
    )
    # FiftyOne's batches of 8, each cut by the encoder's token budget (on
    # a CPU at most 1024 padded tokens a pass)
    encoder = model.encoder
    tokens = [
        encoder.count_image_tokens(Image.open(p).size)
        for p in dataset.values("filepath")
    ]
    budget = encoder._batch_tokens(model.config.max_batch_tokens)
    assert budget == 1024
    passes = sum(
        len(batching.plan_batches(tokens[i : i + 8], 8, budget))
        for i in range(0, N_DOCS, 8)
    )
    assert passes > math.ceil(N_DOCS / 8)
    assert encoder.forward_calls - before == passes
    a = _stored(dataset, "jina_emb_workers")
    b = _stored(dataset, "jina_emb")
    assert np.min(np.sum(a * b, axis=1)) >= 0.9999


def test_multi_mode_and_truncation(dataset, zoo_source):
    multi = foz.load_zoo_model(
        MODEL_NAME, vector_mode="multi", pooling_strategy="max"
    )
    dataset.compute_embeddings(
        multi,
        embeddings_field="jina_multi",
        batch_size=8,
        skip_failures=False,
    )
    stored = _stored(dataset, "jina_multi")
    assert stored.shape == (N_DOCS, 128)
    first = multi.encoder.encode_images(
        [dataset.first().filepath], return_single=False, return_multi=True
    ).multi[0]
    expected = li.pool_multivector(first, "max").numpy()
    assert np.allclose(stored[0], expected, atol=1e-5)
    assert multi.embed_prompt("x").shape == (128,)

    short = foz.load_zoo_model(MODEL_NAME, truncate_dim=32)
    dataset.compute_embeddings(
        short, embeddings_field="jina_32", batch_size=8, skip_failures=False
    )
    trunc = _stored(dataset, "jina_32")
    full = _stored(dataset, "jina_emb")[:, :32]
    assert trunc.shape == (N_DOCS, 32)
    full /= np.linalg.norm(full, axis=1, keepdims=True)
    assert np.allclose(trunc, full, atol=2e-2)
    assert short.embed_prompt("x").shape == (32,)


def test_patch_embeddings(dataset, model):
    view = dataset.limit(3)
    boxes = [[0.1, 0.1, 0.5, 0.3], [0.2, 0.5, 0.6, 0.4]]
    for sample in view:
        sample["regions"] = fo.Detections(
            detections=[fo.Detection(label="r", bounding_box=b) for b in boxes]
        )
        sample.save()
    embs = view.compute_patch_embeddings(
        model, "regions", batch_size=2, skip_failures=False
    )
    assert len(embs) == 3
    for emb in embs.values():
        assert emb.shape == (2, model.encoder.hidden_size)
        assert np.all(np.isfinite(emb))


def test_prompts_and_images_share_a_space(model):
    prompts = model.embed_prompts(["invoice from 2024", "receipt"])
    assert prompts.shape == (2, model.encoder.hidden_size)
    assert prompts.dtype == np.float32
    direct = model.encoder.encode_texts(
        ["invoice from 2024"], task="retrieval", prompt_name="query"
    ).single[0]
    assert np.allclose(prompts[0], direct, atol=1e-6)
    docs = model.embed_documents(["invoice from 2024"])
    passage = model.encoder.encode_texts(
        ["invoice from 2024"], task="retrieval", prompt_name="passage"
    ).single[0]
    assert np.allclose(docs[0], passage, atol=1e-6)


# -- similarity search ---------------------------------------------------


def test_text_search_in_a_fresh_process(dataset, model):
    fob.compute_similarity(
        dataset,
        model=MODEL_NAME,
        model_kwargs={"task": "retrieval"},
        embeddings="jina_emb",
        brain_key="jina_sim",
    )
    script = """
        import fiftyone as fo
        ds = fo.load_dataset(%r)
        view = ds.sort_by_similarity(%r, k=6, brain_key="jina_sim")
        print("IDS", ",".join(view.values("id")))
    """ % (dataset.name, QUERY)
    out = run_python(script)
    ids = out.split("IDS ")[1].strip().split(",")

    query = model.embed_prompt(QUERY)
    stored = _stored(dataset, "jina_emb")
    order = np.argsort(-_cosine(stored, query[None])[:, 0], kind="stable")
    expected = [dataset.values("id")[i] for i in order[:6]]
    assert ids == expected

    in_process = dataset.sort_by_similarity(QUERY, k=6, brain_key="jina_sim")
    assert in_process.values("id") == expected


# umap-learn says a seed makes it single-threaded; fiftyone-brain's
# cluster-center representativeness divides 0 by 0 for a sample alone in
# its cluster (the NaNs tolerated below)
@pytest.mark.filterwarnings("ignore:n_jobs value .* overridden")
@pytest.mark.filterwarnings("ignore:invalid value encountered in divide")
def test_brain_methods_on_the_field(dataset):
    results = fob.compute_visualization(
        dataset,
        embeddings="jina_emb",
        method="umap",
        brain_key="jina_viz",
        num_dims=2,
        seed=51,
    )
    assert results.points.shape == (N_DOCS, 2)
    assert np.all(np.isfinite(results.points))

    fob.compute_uniqueness(dataset, embeddings="jina_emb")
    uniq = np.array(dataset.values("uniqueness"))
    assert uniq.shape == (N_DOCS,)
    assert np.all((uniq >= 0) & (uniq <= 1)) and uniq.max() == 1.0

    fob.compute_representativeness(
        dataset,
        representativeness_field="jina_represent",
        method="cluster-center",
        embeddings="jina_emb",
    )
    rep = np.array(dataset.values("jina_represent"), dtype=float)
    assert rep.shape == (N_DOCS,)
    # fiftyone-brain gives NaN to a sample alone in its k-means cluster
    # (0 / 0 in its per-cluster normalisation): tolerate a few
    finite = rep[np.isfinite(rep)]
    assert len(finite) >= N_DOCS - 2
    assert np.all((finite >= 0) & (finite <= 1))

    dups = fob.compute_near_duplicates(
        dataset, embeddings="jina_emb", threshold=1e-6
    )
    assert len(dups.neighbors_map) == 0


# -- zero-shot classification --------------------------------------------


def _expected_labels(model, filepaths, classes, text_prompt):
    prompts = [("%s %s" % (text_prompt.strip(), c)).strip() for c in classes]
    return expected_zero_shot_labels(model, filepaths, classes, prompts)


def test_zero_shot_matches_independent_maxsim(dataset, zoo_source):
    classes = ["invoice", "receipt", "form", "contract", "slide"]
    model = foz.load_zoo_model(
        MODEL_NAME, task="text-matching", classes=classes
    )
    dataset.apply_model(
        model,
        label_field="zs",
        batch_size=6,
        skip_failures=False,
        store_logits=True,
    )
    labels = dataset.values("zs.label")
    filepaths = dataset.values("filepath")
    assert labels == _expected_labels(model, filepaths, classes, "")
    confidences = np.array(dataset.values("zs.confidence"))
    assert np.all(np.isfinite(confidences))
    assert np.all((confidences > 0) & (confidences <= 1))
    logits = np.stack(dataset.values("zs.logits"))
    assert logits.shape == (N_DOCS, len(classes))
    assert np.all(np.isfinite(logits))

    # apply_model's confidence_thresh and classes filters are honoured
    common = [c for c, _ in Counter(labels).most_common(2)]
    thresh = float(np.median(confidences))
    dataset.apply_model(
        model,
        label_field="zs_thresh",
        batch_size=6,
        skip_failures=False,
        confidence_thresh=thresh,
        classes=common,
    )
    kept = 0
    for label, conf, got in zip(
        labels, confidences, dataset.values("zs_thresh")
    ):
        keep = conf >= thresh and label in common
        kept += keep
        assert (got is not None) == keep
        if keep:
            assert got.label == label
    assert 0 < kept < N_DOCS

    model.classes = ["scanned page", "photo", "chart"]
    model.text_prompt = "a picture of a"
    dataset.apply_model(
        model, label_field="zs2", batch_size=6, skip_failures=False
    )
    assert dataset.values("zs2.label") == _expected_labels(
        model, filepaths, model.classes, "a picture of a"
    )


def test_single_class_and_back_to_defaults(dataset, model):
    view = dataset.limit(3)
    model.classes = ["document"]
    view.apply_model(model, label_field="zs_one", skip_failures=False)
    assert view.values("zs_one.confidence") == [1.0, 1.0, 1.0]

    model.classes = None
    assert len(model.classes) == 16 and model.classes[0] == "letter"
    view.apply_model(model, label_field="zs_default", skip_failures=False)
    assert set(view.values("zs_default.label")) <= set(model.classes)


# -- the App -------------------------------------------------------------


@pytest.mark.slow
def test_app_text_search_equals_api(dataset):
    import urllib.request

    from bson import json_util

    if "jina_sim" not in dataset.list_brain_runs():
        pytest.skip("needs test_text_search_in_a_fresh_process")

    port = free_port()
    session = fo.launch_app(
        dataset, remote=True, address="127.0.0.1", port=port, auto=False
    )
    try:
        base = "http://127.0.0.1:%d" % port
        with urllib.request.urlopen(base + "/fiftyone", timeout=60) as r:
            assert "version" in json.loads(r.read())

        body = json.dumps(
            {
                "dataset": dataset.name,
                "view": [],
                "filters": {},
                "subscription": "jina-test",
                "extended": {
                    "query": QUERY,
                    "k": 6,
                    "brain_key": "jina_sim",
                },
            }
        ).encode()
        request = urllib.request.Request(
            base + "/sort",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=300) as r:
            # extended JSON: the server's pipeline holds ObjectIds
            stage = json_util.loads(r.read())
    finally:
        session.close()

    # the stage carries the ids the server ranked, in its cached pipeline
    assert stage["_cls"] == "fiftyone.core.stages.SortBySimilarity"
    state = dict(stage["kwargs"])["_state"]
    server_ids = [str(i) for i in state["pipeline"][0]["$match"]["_id"]["$in"]]
    api = dataset.sort_by_similarity(QUERY, k=6, brain_key="jina_sim")
    assert server_ids == api.values("id")
    view = fo.DatasetView._build(dataset, [stage])
    assert view.values("id") == api.values("id")

