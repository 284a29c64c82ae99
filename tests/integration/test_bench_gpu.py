"""benchmarks/bench_gpu.py stays runnable where no GPU is: its FLOP count
checked by hand, and a short --tiny run on the CPU."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from conftest import REPO_ROOT

from jina_embeddings_v4.model.flops import page_flops

BENCH_DIR = os.path.join(REPO_ROOT, "benchmarks")


def _config(**vision):
    v = dict(
        hidden_size=4,
        intermediate_size=6,
        depth=3,
        spatial_merge_size=2,
        fullatt_block_indexes=[2],
        window_size=28,
        patch_size=14,
        in_channels=3,
        temporal_patch_size=2,
        out_hidden_size=5,
    )
    v.update(vision)
    text = SimpleNamespace(
        hidden_size=8,
        num_hidden_layers=2,
        num_key_value_heads=1,
        num_attention_heads=2,
        intermediate_size=10,
    )
    return SimpleNamespace(vision_config=SimpleNamespace(**v), text_config=text)


def test_page_flops_by_hand():
    flops = page_flops(_config(), patches=16, lm_tokens=10)
    tera = 1e12
    # vision linear: 2 * 16 patches * 3 blocks * (4*4*4 + 3*4*6)
    #   + patch embedding 2 * 16 * (3*2*14*14) * 4
    #   + merger 2 * 4 merged * (16*16 + 16*5)
    vision = 2 * 16 * 3 * (64 + 72) + 2 * 16 * 1176 * 4 + 2 * 4 * (256 + 80)
    assert flops["vision_linear"] * tera == pytest.approx(vision)
    # windows of (28/14)^2 = 4 patches in 2 blocks, 1 block of all 16
    assert flops["vision_attention"] * tera == pytest.approx(
        4 * 16 * 4 * (2 * 4 + 1 * 16)
    )
    # LM: kv width 1 head * 4 = 4
    lm = 2 * 10 * 2 * (2 * 64 + 2 * 8 * 4 + 3 * 8 * 10)
    assert flops["lm_linear"] * tera == pytest.approx(lm)
    assert flops["lm_attention"] * tera == pytest.approx(2 * 100 * 8 * 2)
    parts = ("vision_linear", "vision_attention", "lm_linear", "lm_attention")
    assert flops["total"] == pytest.approx(sum(flops[p] for p in parts))


def test_full_size_page_is_about_8_6_tflop():
    # the hand count for a 3072-patch page (~780 LM tokens): ~8.6
    # TFLOP, LM linear 4.3, vision 3.9, attention 0.3
    from jina_embeddings_v4.testing.tiny_checkpoint import _FULL

    v = _FULL["vision"]
    config = _config(
        hidden_size=v["hidden_size"],
        intermediate_size=v["intermediate_size"],
        depth=v["depth"],
        fullatt_block_indexes=v["fullatt_block_indexes"],
        window_size=112,
        out_hidden_size=_FULL["hidden_size"],
    )
    config.text_config = SimpleNamespace(
        hidden_size=_FULL["hidden_size"],
        num_hidden_layers=_FULL["num_hidden_layers"],
        num_key_value_heads=_FULL["num_key_value_heads"],
        num_attention_heads=_FULL["num_attention_heads"],
        intermediate_size=_FULL["intermediate_size"],
    )
    flops = page_flops(config, patches=3072, lm_tokens=782)
    assert flops["total"] == pytest.approx(8.6, abs=0.15)
    assert flops["lm_linear"] == pytest.approx(4.3, abs=0.1)
    assert flops["vision_linear"] == pytest.approx(3.9, abs=0.1)
    attention = flops["vision_attention"] + flops["lm_attention"]
    assert attention == pytest.approx(0.3, abs=0.1)


def _run_bench(script, tmp_path, *args):
    """Runs a benchmark script with ``--json``; returns (stdout, result)."""
    out = subprocess.run(
        [sys.executable, os.path.join(BENCH_DIR, script), *args,
         "--json", str(tmp_path / "r.json")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout, json.loads((tmp_path / "r.json").read_text())


def test_tiny_run_on_cpu(tmp_path):
    stdout, result = _run_bench(
        "bench_gpu.py", tmp_path, "--tiny", "--pages", "4", "--batch-size",
        "2", "--repeats", "1", "--configs",
        "existing,stock,packed,nomask,defaults", "--no-fiftyone",
    )
    assert "every path equal to stock: PASS" in stdout

    assert set(result["rows"]) == {
        "existing: float32 b1 stock",
        "stock bfloat16 b2",
        "+ packed vision attention",
        "+ no padding mask",
        "defaults",
    }
    assert all(r["pages_per_s"] > 0 for r in result["rows"].values())
    assert result["flops"]["patches"] == 3072
    # the stock rows with plain weights; the defaults' packed for oneDNN
    # (a CPU in bf16), as the zoo model runs them
    packed = {n: r["packed_weights"] for n, r in result["rows"].items()}
    assert packed == {
        "existing: float32 b1 stock": False,
        "stock bfloat16 b2": False,
        "+ packed vision attention": False,
        "+ no padding mask": False,
        "defaults": True,
    }


def test_bench_cpu_tiny_run(tmp_path):
    """benchmarks/bench_cpu.py end to end on the tiny checkpoint: through
    compute_embeddings at batch 1 and 8, with its matmul peak, per-tower
    split and the stock-path comparison."""
    stdout, result = _run_bench(
        "bench_cpu.py", tmp_path, "--tiny", "--threads", "2"
    )
    assert "weights packed for oneDNN: True, CPU token budget 1024" in stdout
    runs = {r["batch_size"]: r for r in result["runs"]}
    assert set(runs) == {1, 8}
    assert runs[1]["pages"] == 2 and runs[8]["pages"] == 8
    assert result["peak_tflops"] > 0
    for r in runs.values():
        assert r["s_per_page"] > 0 and 0 < r["fraction_of_peak"]
        assert r["vision_s_per_page"] > 0 and r["lm_s_per_page"] > 0
        assert len(r["peaks_next_to_it"]) == 2
    # the defaults (packed weights, packed vision attention, no padding
    # mask) against transformers' stock path with plain weights
    assert result["stock"]["max_cosine_distance"] <= 1e-3
    # the stock row unpacks the weights; the comparison packs them again
    assert result["stock"]["weights_packed_after"] is True
    assert result["stored_vs_encoder"] > 0.9999
    # both bf16 paths against a float32 encoder on the same page
    reference = result["float32_reference"]
    assert 0 < reference["stock"] <= 1e-3
    assert 0 < reference["defaults"] <= 1e-3
    assert "largest cosine distance from float32" in stdout


def test_gpu_fast_path_check_refuses_a_cpu():
    """benchmarks/check_gpu_fast_paths.py is for a lent GPU (the CPU has
    the tests): on a CPU it says so and exits 2 before loading anything."""
    done = subprocess.run(
        [sys.executable, os.path.join(BENCH_DIR, "check_gpu_fast_paths.py"),
         "--device", "cpu"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert "for a CUDA device; the tests cover CPUs" in done.stderr
