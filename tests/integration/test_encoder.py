"""The native encoder on the tiny checkpoint, against the official outputs.

The goldens were produced by the official Jina v4 inference code on the
same checkpoint (float32, CPU, batch size 1); see tests/data/README.md.
"""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import GOLDENS_DIR, TINY_SNAPSHOT

from jina_embeddings_v4.model import encoder as jenc
from jina_embeddings_v4.model import snapshot as jsnap
from jina_embeddings_v4.testing import tiny_checkpoint
from jina_embeddings_v4.testing.compare import cosine_distance

TASKS = ("retrieval", "text-matching", "code")
MAX_COSINE_DISTANCE = 1e-6


@pytest.fixture(scope="module")
def goldens():
    with open(os.path.join(GOLDENS_DIR, "goldens_meta.json")) as f:
        meta = json.load(f)
    return meta, np.load(os.path.join(GOLDENS_DIR, "goldens.npz"))


def _golden_image(meta_image):
    path = os.path.join(GOLDENS_DIR, meta_image["png"])
    return Image.open(path).convert("RGB")


# -- reproduction of the official outputs ------------------------------


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("prompt_name", ["query", "passage"])
def test_texts_match_official_outputs(encoder, goldens, task, prompt_name):
    meta, z = goldens
    # text-matching is symmetric: both sides use "Query: "
    golden_prompt = "query" if task == "text-matching" else prompt_name
    for text in meta["texts"]:
        out = encoder.encode_texts(
            [text["text"]],
            task=task,
            prompt_name=prompt_name,
            return_multi=True,
        )
        key = "text/%s/%s/%s" % (text["id"], golden_prompt, task)
        assert cosine_distance(out.single[0], z[key + "/single"]) <= (
            MAX_COSINE_DISTANCE
        )
        golden_multi = z[key + "/multi"]
        assert out.multi[0].shape == golden_multi.shape
        assert np.max(cosine_distance(out.multi[0], golden_multi)) <= (
            MAX_COSINE_DISTANCE
        )
        for dim in encoder.matryoshka_dims:
            trunc = encoder.encode_texts(
                [text["text"]],
                task=task,
                prompt_name=prompt_name,
                truncate_dim=dim,
            ).single[0]
            golden = z["%s/trunc%d" % (key, dim)]
            assert trunc.shape == (dim,)
            assert cosine_distance(trunc, golden) <= MAX_COSINE_DISTANCE


@pytest.mark.parametrize("task", TASKS)
def test_images_match_official_outputs(encoder, goldens, task):
    meta, z = goldens
    for image in meta["images"]:
        out = encoder.encode_images(
            [_golden_image(image)], task=task, return_multi=True
        )
        key = "image/%s/%s" % (image["id"], task)
        assert cosine_distance(out.single[0], z[key + "/single"]) <= (
            MAX_COSINE_DISTANCE
        )
        assert out.multi[0].shape == z[key + "/multi"].shape
        assert (
            np.max(cosine_distance(out.multi[0], z[key + "/multi"]))
            <= MAX_COSINE_DISTANCE
        )


def test_input_ids_and_grids_match_official(encoder, goldens):
    meta, z = goldens
    for text in meta["texts"]:
        for prompt in ("query", "passage"):
            prefix = "Query: " if prompt == "query" else "Passage: "
            ids = encoder.tokenizer(
                prefix + text["text"], add_special_tokens=False
            )["input_ids"]
            golden = z["text/%s/%s/input_ids" % (text["id"], prompt)]
            assert ids == golden.tolist()

    for image in meta["images"]:
        inputs = encoder._image_inputs(
            [_golden_image(image)],
            jenc.DEFAULT_MAX_PIXELS,
            jenc.DEFAULT_MIN_PIXELS,
        )
        golden_ids = z["image/%s/input_ids" % image["id"]]
        assert inputs["input_ids"][0].tolist() == golden_ids.tolist()
        assert inputs["image_grid_thw"][0].tolist() == image["image_grid_thw"]


# -- pooling, computed independently -------------------------------------


def test_image_single_vector_is_mean_over_vision_span(encoder, goldens):
    meta, z = goldens
    tok = encoder.tokenizer
    start = tok.convert_tokens_to_ids("<|vision_start|>")
    end = tok.convert_tokens_to_ids("<|vision_end|>")
    wrong_distances = []
    for image in meta["images"]:
        ids = z["image/%s/input_ids" % image["id"]].tolist()
        hidden = z["image/%s/retrieval/hidden" % image["id"]]
        i, j = ids.index(start), ids.index(end)
        assert j - i - 1 == image["n_image_tokens"]
        expected = hidden[i : j + 1].mean(axis=0)
        expected /= np.linalg.norm(expected)
        ours = encoder.encode_images([_golden_image(image)]).single[0]
        assert cosine_distance(ours, expected) <= MAX_COSINE_DISTANCE
        wrong_distances.append(cosine_distance(ours, hidden.mean(axis=0)))

    # pooling over every token instead is measurably different
    assert max(wrong_distances) > 1e-2


def test_text_single_vector_is_mean_over_all_tokens(encoder, goldens):
    meta, z = goldens
    hidden = z["text/code/query/code/hidden"]
    expected = hidden.mean(axis=0)
    expected /= np.linalg.norm(expected)
    text = [t for t in meta["texts"] if t["id"] == "code"][0]["text"]
    ours = encoder.encode_texts([text], task="code").single[0]
    assert cosine_distance(ours, expected) <= MAX_COSINE_DISTANCE


def test_shapes_and_unit_norms(encoder):
    img = Image.new("RGB", (300, 200), (250, 240, 230))
    out = encoder.encode_images([img, img], return_multi=True)
    assert out.single.shape == (2, encoder.hidden_size)
    assert out.single.dtype == np.float32
    assert np.allclose(np.linalg.norm(out.single, axis=1), 1.0, atol=1e-5)
    for multi in out.multi:
        assert multi.dtype == np.float32
        assert multi.shape[1] == 128
        assert np.allclose(np.linalg.norm(multi, axis=1), 1.0, atol=1e-5)

    texts = encoder.encode_texts(["a", "bb cc"], return_multi=True)
    assert texts.single.shape == (2, encoder.hidden_size)
    assert np.allclose(np.linalg.norm(texts.single, axis=1), 1.0, atol=1e-5)


def test_multi_vector_token_counts(encoder):
    tok = encoder.tokenizer
    template = len(
        tok(jenc.IMAGE_PROMPT_HEAD, add_special_tokens=False)["input_ids"]
    ) + len(tok(jenc.IMAGE_PROMPT_TAIL, add_special_tokens=False)["input_ids"])
    # The tiny tokenizer splits "Describe the image." into more pieces
    # than the real one: 14 template tokens here, 11 there.
    assert template == 14
    for size, n_image_tokens in (((300, 200), 77), ((64, 64), 4)):
        out = encoder.encode_images(
            [Image.new("RGB", size)], return_single=False, return_multi=True
        )
        assert out.multi[0].shape == (n_image_tokens + template, 128)

    text = "invoice from 2024"
    n_prefixed = len(
        tok("Query: " + text, add_special_tokens=False)["input_ids"]
    )
    out = encoder.encode_texts([text], return_single=False, return_multi=True)
    assert out.multi[0].shape == (n_prefixed, 128)


def test_one_forward_returns_both_outputs(encoder):
    texts = ["alpha", "beta gamma"]
    before = encoder.forward_calls
    both = encoder.encode_texts(texts, return_multi=True, batch_size=8)
    assert encoder.forward_calls == before + 1
    single = encoder.encode_texts(texts).single
    multi = encoder.encode_texts(texts, return_single=False, return_multi=True)
    assert np.allclose(both.single, single, atol=1e-6)
    for a, b in zip(both.multi, multi.multi):
        assert np.allclose(a, b, atol=1e-6)


# -- tasks, prefixes, Matryoshka -----------------------------------------


def test_tasks_differ_and_switching_back_restores(encoder):
    img = Image.new("RGB", (120, 90), (10, 120, 200))
    first = encoder.encode_images([img], task="retrieval").single[0]
    others = [
        encoder.encode_images([img], task=t).single[0]
        for t in ("text-matching", "code")
    ]
    for other in others:
        assert cosine_distance(first, other) > 1e-3
    assert cosine_distance(others[0], others[1]) > 1e-3
    again = encoder.encode_images([img], task="retrieval").single[0]
    assert np.array_equal(first, again)


def test_prefixes(encoder):
    assert jenc.text_prefix("retrieval", "query") == "Query: "
    assert jenc.text_prefix("retrieval", "passage") == "Passage: "
    assert jenc.text_prefix("code", "passage") == "Passage: "
    assert jenc.text_prefix("text-matching", "passage") == "Query: "
    q = encoder.encode_texts(["x"], task="retrieval", prompt_name="query")
    p = encoder.encode_texts(["x"], task="retrieval", prompt_name="passage")
    assert cosine_distance(q.single[0], p.single[0]) > 1e-4
    tq = encoder.encode_texts(["x"], task="text-matching", prompt_name="query")
    tp = encoder.encode_texts(
        ["x"], task="text-matching", prompt_name="passage"
    )
    assert np.array_equal(tq.single, tp.single)


def test_matryoshka_is_truncate_then_normalize(encoder):
    full = encoder.encode_texts(["matryoshka doll"]).single[0]
    for dim in encoder.matryoshka_dims:
        short = encoder.encode_texts(
            ["matryoshka doll"], truncate_dim=dim
        ).single[0]
        expected = full[:dim] / np.linalg.norm(full[:dim])
        assert np.allclose(short, expected, atol=1e-6)


# -- batching ------------------------------------------------------------


def test_batch_and_order_invariance(encoder):
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        for h, w in ((60, 60), (200, 120), (90, 300), (150, 150), (40, 90))
    ]
    alone = [encoder.encode_images([img], return_multi=True) for img in images]
    batched = encoder.encode_images(images, batch_size=5, return_multi=True)
    reverse = encoder.encode_images(
        images[::-1], batch_size=2, return_multi=True
    )
    for i in range(len(images)):
        assert cosine_distance(alone[i].single[0], batched.single[i]) < 1e-4
        j = len(images) - 1 - i
        assert cosine_distance(alone[i].single[0], reverse.single[j]) < 1e-4
        assert batched.multi[i].shape == alone[i].multi[0].shape
        assert (
            np.max(cosine_distance(batched.multi[i], alone[i].multi[0]))
            < 1e-4
        )

    texts = ["short", "a much longer text " * 8, "mid length text", ""]
    alone = [encoder.encode_texts([t]).single[0] for t in texts]
    batched = encoder.encode_texts(texts, batch_size=4).single
    for a, b in zip(alone, batched):
        assert cosine_distance(a, b) < 1e-4


def test_batches_are_sorted_by_length(encoder):
    before = encoder.forward_calls
    texts = ["a " * n for n in (1, 50, 2, 49, 3, 48)]
    encoder.encode_texts(texts, batch_size=2)
    assert encoder.forward_calls == before + 3


# -- validation ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"task": "search"}, "retrieval, text-matching, code"),
        ({"prompt_name": "document"}, "query, passage"),
        ({"truncate_dim": 48}, "16, 32, 64"),
        ({"truncate_dim": True}, "16, 32, 64"),
        ({"batch_size": 0}, "batch_size"),
        ({"return_single": False}, "return_single and/or return_multi"),
    ],
)
def test_invalid_text_arguments(encoder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        encoder.encode_texts(["x"], **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"task": "ocr"}, "retrieval, text-matching, code"),
        ({"max_pixels": 0}, "max_pixels must be a positive integer"),
        ({"min_pixels": 10**7}, "must not exceed"),
    ],
)
def test_invalid_image_arguments(encoder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        encoder.encode_images([Image.new("RGB", (64, 64))], **kwargs)


def test_empty_inputs(encoder):
    out = encoder.encode_texts([], return_multi=True, truncate_dim=16)
    assert out.single.shape == (0, 16) and out.multi == []
    out = encoder.encode_images([], return_multi=True)
    assert out.single.shape == (0, encoder.hidden_size) and out.multi == []


def test_non_string_text_rejected(encoder):
    with pytest.raises(ValueError, match="item 1 is int"):
        encoder.encode_texts(["ok", 3])


def test_invalid_dtype():
    with pytest.raises(ValueError, match="auto, float32, bfloat16, float16"):
        jenc.resolve_dtype("int8", torch.device("cpu"))


def test_half_precision_keeps_rope_frequencies_in_float32():
    enc = jenc.JinaV4Encoder(TINY_SNAPSHOT, device="cpu", dtype="bfloat16")
    buffers = dict(enc._peft_model.named_buffers())
    inv_freq = [n for n in buffers if n.endswith("inv_freq")]
    assert len(inv_freq) >= 2  # text and vision rotary embeddings
    assert all(buffers[n].dtype == torch.float32 for n in inv_freq)
    params = dict(enc._peft_model.named_parameters())
    assert {p.dtype for p in params.values()} == {torch.bfloat16}
    assert any(".lora_" in n for n in params)


def test_transformers_version_guard():
    for ok in ("5.5.4", "5.24.0", "5.10.0.dev0", "6.0.0"):
        jenc.check_transformers_version(ok)
    for old in ("4.57.6", "5.0.0", "5.5.0", "5.4.9rc1"):
        with pytest.raises(ImportError, match=">= 5.5.4"):
            jenc.check_transformers_version(old)


def test_dtype_auto_choices():
    cpu = torch.device("cpu")
    expected = torch.bfloat16 if jenc.cpu_has_native_bf16() else torch.float32
    assert jenc.resolve_dtype("auto", cpu) == expected
    # half precision on MPS, as the device supports it (issue 19; was
    # float32): bf16 from macOS 14, float16 before, and where MPS is absent
    mps_auto = torch.bfloat16 if jenc.mps_supports_bf16() else torch.float16
    assert jenc.resolve_dtype("auto", torch.device("mps")) == mps_auto
    assert jenc.resolve_dtype("float32", cpu) == torch.float32
    assert jenc.resolve_dtype(torch.bfloat16, cpu) == torch.bfloat16


# -- snapshots -------------------------------------------------------------


def test_missing_files_are_named(tmp_path):
    snap = tmp_path / "snap"
    shutil.copytree(TINY_SNAPSHOT, snap)
    os.remove(snap / "model-00002-of-00002.safetensors")
    os.remove(snap / "adapters" / "adapter_model.safetensors")
    with pytest.raises(jsnap.SnapshotError) as info:
        jenc.JinaV4Encoder(str(snap), device="cpu", dtype="float32")
    message = str(info.value)
    assert str(snap) in message
    assert "model-00002-of-00002.safetensors" in message
    assert "adapters/adapter_model.safetensors" in message
    assert "network access" in message


def test_booby_trapped_code_is_never_executed(tmp_path, encoder):
    snap = tmp_path / "trapped"
    shutil.copytree(TINY_SNAPSHOT, snap)
    marker = tmp_path / "executed"
    trap = "open(%r, 'w').write('pwned')\nraise SystemExit(1)\n" % str(marker)
    for name in (
        "modeling_jina_embeddings_v4.py",
        "configuration_jina_embeddings_v4.py",
        "custom_lora_module.py",
    ):
        (snap / name).write_text(trap)
    config = json.loads((snap / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "configuration_jina_embeddings_v4.JinaEmbeddingsV4Config",
        "AutoModel": "modeling_jina_embeddings_v4.JinaEmbeddingsV4Model",
    }
    (snap / "config.json").write_text(json.dumps(config))
    # a pickle that would run code if loaded
    (snap / "pytorch_model.bin").write_bytes(b"not loaded")

    trapped = jenc.JinaV4Encoder(str(snap), device="cpu", dtype="float32")
    out = trapped.encode_texts(["safe"]).single
    assert not marker.exists()
    assert np.allclose(out, encoder.encode_texts(["safe"]).single, atol=1e-6)


def test_adapter_tensors_must_all_apply(tmp_path):
    from safetensors.torch import load_file, save_file

    snap = tmp_path / "bad_adapter"
    shutil.copytree(TINY_SNAPSHOT, snap)
    path = snap / "adapters" / "adapter_model.safetensors"
    state = load_file(str(path))
    renamed = {
        k.replace("language_model.layers", "model.layers"): v
        for k, v in state.items()
    }
    save_file(renamed, str(path))
    with pytest.raises(jsnap.SnapshotError, match="not applied"):
        jenc.JinaV4Encoder(str(snap), device="cpu", dtype="float32")


def test_written_checkpoint_loads_like_a_download(tmp_path):
    flat = tiny_checkpoint.write_checkpoint(str(tmp_path / "flat"), seed=3)
    nested = tiny_checkpoint.write_checkpoint(
        str(tmp_path / "nested"), seed=3, nested_text_config=True
    )
    assert jsnap.missing_files(flat) == []
    with open(os.path.join(nested, "config.json")) as f:
        assert "text_config" in json.load(f)
    with open(os.path.join(flat, "model.safetensors.index.json")) as f:
        keys = json.load(f)["weight_map"]
    assert "model.layers.0.self_attn.q_proj.weight" in keys
    assert "visual.blocks.0.attn.qkv.weight" in keys
    assert "multi_vector_projector.weight" in keys
    assert len(set(keys.values())) == 2

    a = jenc.JinaV4Encoder(flat, device="cpu", dtype="float32")
    b = jenc.JinaV4Encoder(nested, device="cpu", dtype="float32")
    img = Image.new("RGB", (100, 80), (200, 30, 30))
    for task in TASKS:
        va = a.encode_images([img], task=task).single
        vb = b.encode_images([img], task=task).single
        assert np.allclose(va, vb, atol=1e-6)
    r = a.encode_texts(["x"], task="retrieval").single[0]
    c = a.encode_texts(["x"], task="code").single[0]
    assert cosine_distance(r, c) > 1e-3
