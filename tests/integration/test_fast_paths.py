"""The GPU-minded fast paths: exact where they are the default, each equal
to the stock path on the same batch, and the official outputs still met
in batches that mix page sizes (float32 at 1e-6, bf16 at 1e-3)."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import GOLDENS_DIR, TINY_SNAPSHOT

from jina_embeddings_v4.model import attention
from jina_embeddings_v4.model import batching
from jina_embeddings_v4.model import encoder as jenc
from jina_embeddings_v4.model import exact_unmerge
from jina_embeddings_v4.testing.compare import cosine_distance, worst_distance

TASKS = ("retrieval", "text-matching", "code")


@pytest.fixture(scope="module")
def goldens():
    with open(os.path.join(GOLDENS_DIR, "goldens_meta.json")) as f:
        meta = json.load(f)
    images = [
        Image.open(os.path.join(GOLDENS_DIR, m["png"])).convert("RGB")
        for m in meta["images"]
    ]
    return meta, np.load(os.path.join(GOLDENS_DIR, "goldens.npz")), images


# -- pure pieces -------------------------------------------------------------


def test_plan_batches_by_count_and_tokens():
    lengths = [10, 50, 30, 50, 20]
    # longest first, ties in input order: 1, 3, 2, 4, 0
    assert batching.plan_batches(lengths, 2) == [[1, 3], [2, 4], [0]]
    # 3 * 50 > 120: the third item opens a new batch
    assert batching.plan_batches(lengths, 8, 120) == [[1, 3], [2, 4, 0]]
    # an item longer than the budget goes alone
    assert batching.plan_batches([500, 5], 8, 100) == [[0], [1]]
    assert batching.plan_batches([], 4) == []
    with pytest.raises(ValueError, match="max_batch_tokens"):
        batching.validate_max_batch_tokens(0)


def test_right_padded():
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert jenc._right_padded(mask)
    assert not jenc._right_padded(torch.tensor([[0, 1, 1]]))


@pytest.mark.parametrize("lengths", [[64, 64, 64], [64, 40, 64, 25], [7]])
def test_padded_sdpa_equals_one_call_per_window(lengths):
    gen = torch.Generator().manual_seed(0)
    total, heads, dim = sum(lengths), 4, 16
    q, k, v = (
        torch.randn(1, heads, total, dim, generator=gen) for _ in range(3)
    )
    cu = torch.tensor([0] + list(np.cumsum(lengths)))
    out = attention.padded_sdpa(q, k, v, cu, scaling=dim**-0.5)
    assert out.shape == (1, total, heads, dim)
    start = 0
    for n in lengths:
        window = F.scaled_dot_product_attention(
            q[:, :, start : start + n],
            k[:, :, start : start + n],
            v[:, :, start : start + n],
            scale=dim**-0.5,
        ).transpose(1, 2)
        assert torch.allclose(out[:, start : start + n], window, atol=1e-6)
        start += n


def test_images_prepared_one_at_a_time_equal_a_batch(encoder, goldens):
    _, _, images = goldens
    together = encoder._image_inputs(images, 602112, 3136)
    apart = [encoder.prepare_image(img) for img in images]
    pixels, grids = batching.stack_prepared(apart)
    assert torch.equal(pixels, together["pixel_values"])
    assert torch.equal(grids, together["image_grid_thw"])


# -- the defaults meet the official outputs in mixed batches --------------------


@pytest.mark.parametrize("task", TASKS)
def test_defaults_reproduce_goldens_in_mixed_batches(encoder, goldens, task):
    meta, z, images = goldens
    # all six pages (40 to 600 pixels wide) in one batch
    out = encoder.encode_images(
        images, task=task, batch_size=len(images), return_multi=True
    )
    assert encoder._modules.model.visual.config._attn_implementation == (
        attention.PACKED
    )
    for i, image in enumerate(meta["images"]):
        key = "image/%s/%s" % (image["id"], task)
        assert cosine_distance(out.single[i], z[key + "/single"]) <= 1e-6
        assert np.max(cosine_distance(out.multi[i], z[key + "/multi"])) <= 1e-6

    golden_prompt = "query"
    texts = [t["text"] for t in meta["texts"]]
    out = encoder.encode_texts(
        texts, task=task, batch_size=len(texts), return_multi=True
    )
    for i, text in enumerate(meta["texts"]):
        key = "text/%s/%s/%s" % (text["id"], golden_prompt, task)
        assert cosine_distance(out.single[i], z[key + "/single"]) <= 1e-6
        assert np.max(cosine_distance(out.multi[i], z[key + "/multi"])) <= 1e-6


# -- each fast path alone equals the stock path on the same batch ---------------


@pytest.mark.parametrize(
    "fast",
    [
        jenc.FastPaths("packed", False, False, False),
        jenc.FastPaths("stock", True, False, False),
        jenc.FastPaths("stock", False, True, False),
        jenc.FastPaths("stock", False, False, True),
        jenc.FastPaths(),
    ],
    ids=["vision-packed", "no-padding-mask", "prefetch", "fused-lora", "all"],
)
def test_each_fast_path_equals_stock(encoder, goldens, fast):
    _, _, images = goldens
    stock = jenc.FastPaths.stock()
    kwargs = dict(task="retrieval", batch_size=3, return_multi=True)
    ref = encoder.encode_images(images, fast_paths=stock, **kwargs)
    out = encoder.encode_images(images, fast_paths=fast, **kwargs)
    assert worst_distance(out, ref) <= 1e-6

    texts = ["a", "an invoice from 2024", "ein Vertrag " * 20]
    ref = encoder.encode_texts(texts, fast_paths=stock, return_multi=True)
    out = encoder.encode_texts(texts, fast_paths=fast, return_multi=True)
    assert worst_distance(out, ref) <= 1e-6


def test_token_budget_splits_batches_without_changing_vectors(
    encoder, goldens
):
    _, _, images = goldens
    calls = encoder.forward_calls
    ref = encoder.encode_images(images, batch_size=6, return_multi=True)
    assert encoder.forward_calls - calls == 1
    calls = encoder.forward_calls
    # the biggest page alone exceeds 600 tokens: 3 passes at this budget
    tokens = sorted(
        (encoder.count_image_tokens(i.size) for i in images), reverse=True
    )
    budget = max(tokens[0], 2 * tokens[1])
    out = encoder.encode_images(
        images, batch_size=6, return_multi=True, max_batch_tokens=budget
    )
    assert encoder.forward_calls - calls == len(
        batching.plan_batches(tokens, 6, budget)
    ) > 1
    assert worst_distance(out, ref) <= 1e-6


def test_cpu_token_budget_holds_whatever_the_caller_passes(encoder, goldens):
    """By default a CPU pass holds at most ``cpu_max_batch_tokens`` (one
    full page), even with ``max_batch_tokens=None``; the vectors do not
    change (the fixture encoder has no CPU budget)."""
    _, _, images = goldens
    tokens = [encoder.count_image_tokens(i.size) for i in images]
    ref = encoder.encode_images(images, batch_size=6, return_multi=True)

    capped = jenc.JinaV4Encoder(TINY_SNAPSHOT, device="cpu", dtype="float32")
    assert capped.cpu_max_batch_tokens == batching.CPU_MAX_BATCH_TOKENS == 1024
    for max_batch_tokens in (None, 65536):
        calls = capped.forward_calls
        out = capped.encode_images(
            images,
            batch_size=6,
            return_multi=True,
            max_batch_tokens=max_batch_tokens,
        )
        passes = batching.plan_batches(tokens, 6, 1024)
        assert capped.forward_calls - calls == len(passes) > 1
        assert all(len(b) * max(tokens[i] for i in b) <= 1024
                   or len(b) == 1 for b in passes)
        assert worst_distance(out, ref) <= 1e-6

    with pytest.raises(ValueError, match="cpu_max_batch_tokens"):
        jenc.JinaV4Encoder(TINY_SNAPSHOT, device="cpu", cpu_max_batch_tokens=0)


def _all_arrays_equal(a, b):
    return np.array_equal(a.single, b.single) and all(
        np.array_equal(x, y) for x, y in zip(a.multi, b.multi)
    )


def test_packed_weights_are_bit_equal_and_one_copy(goldens):
    """bf16 on a CPU packs the linear weights for oneDNN by default: the
    outputs equal the plain weights' bit for bit, through merging and
    unmerging LoRA, and the plain weights are not kept beside the packed
    ones."""
    _, _, images = goldens
    enc = jenc.JinaV4Encoder(TINY_SNAPSHOT, device="cpu", dtype="bfloat16")
    assert enc.pack_weights and enc._packed.packed
    assert len(enc._packed.layers) > 0
    assert all(m.weight.numel() == 0 for m in enc._packed.layers)
    texts = ["an invoice from 2024", "ein Vertrag " * 20]

    def run():
        return (
            enc.encode_images(images, batch_size=6, return_multi=True),
            enc.encode_texts(texts, return_multi=True),
        )

    packed = run()
    enc.set_pack_weights(False)
    assert not enc._packed.packed
    assert all(m.weight.numel() > 0 for m in enc._packed.layers)
    plain = run()
    for a, b in zip(packed, plain):
        assert _all_arrays_equal(a, b)

    enc.set_pack_weights(True)
    enc.set_merge_lora(True)
    merged_packed = run()
    assert enc._packed.packed and enc._merged_task == "retrieval"
    enc.set_pack_weights(False)
    for a, b in zip(merged_packed, run()):
        assert _all_arrays_equal(a, b)
    enc.set_pack_weights(True)
    enc.set_merge_lora(False)
    assert enc._packed.packed and enc._merged_task is None
    unmerged_packed = run()
    enc.set_pack_weights(False)
    for a, b in zip(unmerged_packed, run()):
        assert _all_arrays_equal(a, b)
    # unmerging reads the base weights back from the snapshot: the very
    # weights it started from
    for a, b in zip(unmerged_packed, plain):
        assert _all_arrays_equal(a, b)


def test_task_switches_of_a_merged_bf16_encoder_leave_no_drift(goldens, caplog):
    """peft unmerges by subtracting the rounded delta, so in bf16 every
    task switch of a merged encoder moved its weights; the base weights
    are read back from the snapshot instead. After many switches the
    merged outputs equal the first ones bit for bit, and unmerged, the
    weights and outputs equal a fresh encoder's."""
    _, _, images = goldens
    fresh = jenc.JinaV4Encoder(
        TINY_SNAPSHOT, device="cpu", dtype="bfloat16", pack_weights=False
    )
    plain = fresh.encode_images(images[:3], return_multi=True)
    enc = jenc.JinaV4Encoder(
        TINY_SNAPSHOT, device="cpu", dtype="bfloat16", merge_lora=True,
        pack_weights=False,
    )
    layers = list(exact_unmerge._lora_layers(enc._peft_model))
    assert len(layers) > 10
    tensors = exact_unmerge.SnapshotTensors(TINY_SNAPSHOT)
    for name, module in layers:
        key = exact_unmerge.checkpoint_key(name)
        weight = module.get_base_layer().weight
        assert tuple(tensors.get(key).shape) == tuple(weight.shape), name

    first = enc.encode_images(images[:3], return_multi=True)
    assert not _all_arrays_equal(first, plain)
    with caplog.at_level("WARNING"):
        for _ in range(5):
            enc.encode_texts(["a page"], task="text-matching")
            enc.encode_texts(["a page"], task="code")
        assert _all_arrays_equal(
            enc.encode_images(images[:3], return_multi=True), first
        )
        enc.set_merge_lora(False)
    assert "subtraction" not in caplog.text
    assert _all_arrays_equal(
        enc.encode_images(images[:3], return_multi=True), plain
    )
    theirs = dict(fresh._peft_model.named_parameters())
    for name, p in enc._peft_model.named_parameters():
        assert torch.equal(p, theirs[name]), name


@pytest.mark.parametrize("change", ["removed", "touched"])
def test_unmerging_without_the_snapshot_subtracts_and_warns(
    goldens, tmp_path, caplog, change
):
    """When the weight files are gone after the load, or changed (here:
    their modification time; a new download in place would change it), a
    task switch still unmerges, by peft's subtraction: the vectors come
    back within bf16's tolerance but not bit for bit, and a warning says
    why and what to do."""
    _, _, images = goldens
    snapshot = str(tmp_path / "snapshot")
    shutil.copytree(TINY_SNAPSHOT, snapshot)
    enc = jenc.JinaV4Encoder(
        snapshot, device="cpu", dtype="bfloat16", merge_lora=True
    )
    first = enc.encode_images(images[:3], return_multi=True)
    for name in os.listdir(snapshot):
        if name.endswith(".safetensors"):
            path = os.path.join(snapshot, name)
            if change == "removed":
                os.remove(path)
            else:
                os.utime(path, ns=(1, 1))
    with caplog.at_level("WARNING"):
        enc.encode_texts(["a page"], task="code")
        again = enc.encode_images(images[:3], return_multi=True)
    assert enc._merged_task == "retrieval"
    assert "unmerged by subtraction" in caplog.text
    if change == "touched":
        assert "changed since the model was loaded" in caplog.text
    assert "Keep the snapshot in place, or use merge_lora=False" in caplog.text
    assert not _all_arrays_equal(again, first)
    assert worst_distance(again, first) <= 1e-3


def test_pack_weights_where_unsupported_is_refused(encoder):
    assert not encoder.pack_weights  # float32: plain weights
    with pytest.raises(ValueError, match="pack_weights=None"):
        jenc.JinaV4Encoder(
            TINY_SNAPSHOT, device="cpu", dtype="float32", pack_weights=True
        )
    with pytest.raises(ValueError, match="bfloat16"):
        encoder.set_pack_weights(True)
    with pytest.raises(ValueError, match="pack_weights"):
        jenc.JinaV4Encoder(TINY_SNAPSHOT, device="cpu", pack_weights="yes")


def test_bad_fast_path_values(encoder):
    with pytest.raises(ValueError, match="'packed', 'stock'"):
        encoder.encode_texts(["x"], fast_paths=jenc.FastPaths("fast"))
    with pytest.raises(ValueError, match="merge_lora"):
        jenc.JinaV4Encoder(TINY_SNAPSHOT, device="cpu", merge_lora="yes")


# -- merged LoRA -----------------------------------------------------------------


@pytest.fixture(scope="module")
def merged():
    return jenc.JinaV4Encoder(
        TINY_SNAPSHOT, device="cpu", dtype="float32", merge_lora=True
    )


def test_merged_lora_float32_equals_unmerged_and_switches_tasks(
    encoder, merged, goldens
):
    _, _, images = goldens
    for task in ("retrieval", "code", "retrieval", "text-matching"):
        ref = encoder.encode_images(images[:3], task=task, return_multi=True)
        out = merged.encode_images(images[:3], task=task, return_multi=True)
        assert merged._merged_task == task
        assert worst_distance(out, ref) <= 1e-6


def test_set_merge_lora_unmerges_and_merges_again(encoder, merged, goldens):
    _, _, images = goldens
    ref = encoder.encode_images(images[:2], return_multi=True)
    merged.encode_images(images[:2])
    assert merged._merged_task == "retrieval"
    merged.set_merge_lora(False)
    assert merged._merged_task is None
    assert worst_distance(merged.encode_images(images[:2], return_multi=True), ref) <= 1e-6
    assert merged._merged_task is None
    merged.set_merge_lora(True)
    assert worst_distance(merged.encode_images(images[:2], return_multi=True), ref) <= 1e-6
    assert merged._merged_task == "retrieval"
    with pytest.raises(ValueError, match="merge_lora"):
        merged.set_merge_lora(1)


def test_bf16_defaults_and_merged_lora_within_1e3_of_goldens(goldens):
    meta, z, images = goldens
    for merge in (False, True):
        enc = jenc.JinaV4Encoder(
            TINY_SNAPSHOT, device="cpu", dtype="bfloat16", merge_lora=merge
        )
        for task in ("retrieval", "code"):
            out = enc.encode_images(
                images, task=task, batch_size=6, return_multi=True
            )
            for i, image in enumerate(meta["images"]):
                key = "image/%s/%s" % (image["id"], task)
                assert cosine_distance(out.single[i], z[key + "/single"]) <= 1e-3
            texts = [t["text"] for t in meta["texts"]]
            out = enc.encode_texts(texts, task=task, batch_size=8)
            for i, text in enumerate(meta["texts"]):
                key = "text/%s/query/%s" % (text["id"], task)
                assert cosine_distance(out.single[i], z[key + "/single"]) <= 1e-3


def test_fused_lora_in_bf16_within_1e3_of_peft_and_covers_every_lora(goldens):
    """In bf16 the fused step rounds the LoRA sum once where peft rounds
    it three times: the vectors move (so the step ran), within 1e-3."""
    _, _, images = goldens
    enc = jenc.JinaV4Encoder(TINY_SNAPSHOT, device="cpu", dtype="bfloat16")
    lora_layers = [
        m for m in enc._peft_model.modules() if hasattr(m, "lora_A")
    ]
    assert len(enc._fused_lora.layers) == len(lora_layers) > 0
    peft_paths = jenc.FastPaths()
    fused = jenc.FastPaths(fused_lora=True)
    assert not peft_paths.fused_lora  # off by default
    kwargs = dict(task="retrieval", batch_size=3, return_multi=True)
    ref = enc.encode_images(images, fast_paths=peft_paths, **kwargs)
    out = enc.encode_images(images, fast_paths=fused, **kwargs)
    worst = worst_distance(out, ref)
    assert 0 < worst <= 1e-3
    texts = ["a", "an invoice from 2024"]
    ref = enc.encode_texts(texts, fast_paths=peft_paths, return_multi=True)
    out = enc.encode_texts(texts, fast_paths=fused, return_multi=True)
    assert worst_distance(out, ref) <= 1e-3


# -- a fast path that fails on the hardware ---------------------------------


def test_a_failing_fast_path_falls_back_to_stock_once(
    encoder, goldens, monkeypatch, caplog
):
    """As a varlen kernel or flash-attn would fail on a GPU no test has run:
    the batch still comes out (equal to the stock path), one warning names
    the fast paths and the switches, and the process stays on stock."""
    _, _, images = goldens
    stock = encoder.encode_images(
        images[:2], fast_paths=jenc.FastPaths.stock(), return_multi=True
    )

    def kernel_failure(*args, **kwargs):
        raise RuntimeError(
            "CUDA error: no kernel image is available for execution on the "
            "device"
        )

    monkeypatch.setattr(attention, "padded_sdpa", kernel_failure)
    monkeypatch.setattr(jenc, "_FELL_BACK", set())
    calls = encoder.forward_calls
    with caplog.at_level("WARNING", logger=jenc.__name__):
        first = encoder.encode_images(images[:2], return_multi=True)
        second = encoder.encode_images(images[:2], return_multi=True)

    assert worst_distance(first, stock) <= 1e-6
    assert worst_distance(second, stock) <= 1e-6
    warnings = [r.getMessage() for r in caplog.records
                if "fast path failed" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "vision_attention='packed'" in warnings[0]
    assert "drop_padding_mask=True" in warnings[0]
    assert "vision_attention='stock', drop_padding_mask=False" in warnings[0]
    assert "no kernel image" in warnings[0]
    assert jenc._FELL_BACK == {"cpu"}
    # one failed pass and its retry, then straight to stock
    assert encoder.forward_calls - calls == 3


def test_out_of_memory_is_not_a_fast_path_failure(encoder, goldens, monkeypatch):
    _, _, images = goldens

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(attention, "padded_sdpa", out_of_memory)
    monkeypatch.setattr(jenc, "_FELL_BACK", set())
    with pytest.raises(torch.OutOfMemoryError):
        encoder.encode_images(images[:2], return_multi=True)
    assert jenc._FELL_BACK == set()


def test_auto_device_order():
    assert jenc.auto_device_type(cuda=True, mps=True) == "cuda"
    assert jenc.auto_device_type(cuda=False, mps=True) == "mps"
    assert jenc.auto_device_type(cuda=False, mps=False) == "cpu"
    assert jenc.resolve_device().type == ("cuda" if torch.cuda.is_available()
                                          else "cpu")


def test_a_task_switch_stopped_part_way_leaves_no_mixed_weights(
    goldens, monkeypatch
):
    """A switch interrupted in the middle of the unmerge (Ctrl-C here)
    leaves some layers restored and some merged; the next call, even for
    the task that was active, activates it from scratch: its vectors equal
    the first ones bit for bit."""
    _, _, images = goldens
    enc = jenc.JinaV4Encoder(
        TINY_SNAPSHOT, device="cpu", dtype="bfloat16", merge_lora=True
    )
    first = enc.encode_images(images[:3], return_multi=True)
    read = exact_unmerge.SnapshotTensors.get
    calls = []

    def interrupted(self, key):
        calls.append(key)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return read(self, key)

    monkeypatch.setattr(exact_unmerge.SnapshotTensors, "get", interrupted)
    with pytest.raises(KeyboardInterrupt):
        enc.encode_texts(["a page"], task="code")
    monkeypatch.setattr(exact_unmerge.SnapshotTensors, "get", read)
    assert len(calls) == 4
    assert _all_arrays_equal(
        enc.encode_images(images[:3], return_multi=True), first
    )
    # and the same after an interrupted set_merge_lora(False)
    calls.clear()
    monkeypatch.setattr(exact_unmerge.SnapshotTensors, "get", interrupted)
    with pytest.raises(KeyboardInterrupt):
        enc.set_merge_lora(False)
    monkeypatch.setattr(exact_unmerge.SnapshotTensors, "get", read)
    assert enc.merge_lora
    assert _all_arrays_equal(
        enc.encode_images(images[:3], return_multi=True), first
    )
