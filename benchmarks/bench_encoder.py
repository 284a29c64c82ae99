"""Benchmarks the encoder: batching, one forward for both outputs, size.

The default mode runs the tiny checkpoint in float32 on the CPU and prints
items/s for texts and images at batch 1 and batch 8, and the time of one
call returning single and multi vectors (one forward per batch) over two
calls returning one each (two forwards): about 0.5 when the forward pass
dominates.

``--full-size`` builds the real architecture (3.75B parameters) with
random weights, or reuses ``--checkpoint DIR``, and compares pages/s in
bf16 at batch 8 with float32 at batch 1 (the configuration of the existing
integration) on real-size document pages, with peak GPU memory for each
on CUDA. Pointing ``--checkpoint`` at a tiny checkpoint runs the same code
path as a stand-in; its output says so.

Usage::

    python benchmarks/bench_encoder.py                 # tiny, CPU
    python benchmarks/bench_encoder.py --quick         # smoke test
    python benchmarks/bench_encoder.py --full-size     # GPU, 7.5 GB build
    python benchmarks/bench_encoder.py --full-size --checkpoint DIR
"""

import argparse
import gc
import json
import os
import random
import shutil
import sys
import tempfile
import time

import torch
from transformers import Qwen2VLImageProcessor
from transformers.models.qwen2_vl.image_processing_qwen2_vl import (
    smart_resize,
)

from _common import (
    add_threads_option,
    best_times,
    busy_warning,
    set_threads,
)
from jina_embeddings_v4.model.encoder import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    JinaV4Encoder,
    resolve_device,
)
from jina_embeddings_v4.model.snapshot import INDEX_FILE, missing_files
from jina_embeddings_v4.testing import documents
from jina_embeddings_v4.testing.support import TINY_SNAPSHOT
from jina_embeddings_v4.testing.tiny_checkpoint import write_checkpoint

BOTH_EXPECTED = 0.5
FULL_HIDDEN_SIZE = 2048
FULL_LAYERS = 36
GB = 1000**3


_WORDS = (
    "invoice receipt contract form slide total amount due payment terms "
    "customer supplier address quarterly revenue growth signed agreement "
    "the of and to in for with on by from page table chart figure section "
    "clause party date tax subtotal balance account number reference "
    "Berlin Paris 2022 2023 2024 2025 $1,234.56 net 30 days approved"
).split()


def make_texts(n, seed=0):
    """``n`` texts of 3 to about 150 words, in mixed order."""
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        # lengths cycle over short queries, paragraphs and long passages
        n_words = (3, 8, 20, 60, 150)[i % 5] + rng.randrange(5)
        texts.append(" ".join(rng.choice(_WORDS) for _ in range(n_words)))
    rng.shuffle(texts)
    return texts


def make_pages(out_dir, n, scale, seed=0):
    """Writes ``n`` synthetic document pages, returns them as RGB images
    held in memory (so file decoding is not timed)."""
    from PIL import Image

    records = documents.write_dataset_images(
        out_dir, n=n, seed=seed, scale=scale
    )
    pages = []
    for record in records:
        with Image.open(record["filepath"]) as img:
            pages.append(img.convert("RGB"))
    return pages


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _header(device):
    print(
        "torch %s, %d CPU threads, device %s%s, load average %.2f"
        % (
            torch.__version__,
            torch.get_num_threads(),
            device,
            (
                " (%s)" % torch.cuda.get_device_name(device)
                if device.type == "cuda"
                else ""
            ),
            os.getloadavg()[0],
        )
    )
    warning = busy_warning()
    if warning:
        print(warning)


# -- tiny mode -----------------------------------------------------------


def run_tiny(args, work_dir):
    device = resolve_device(args.device or "cpu")
    if args.checkpoint:
        snapshot = args.checkpoint
    elif not missing_files(TINY_SNAPSHOT):
        snapshot = TINY_SNAPSHOT
    else:
        snapshot = write_checkpoint(os.path.join(work_dir, "tiny"), seed=0)

    n_texts, n_images = (16, 8) if args.quick else (64, 32)
    repeats = args.repeats or (1 if args.quick else 3)
    _header(device)
    print("checkpoint %s" % _describe_checkpoint(snapshot))

    encoder = JinaV4Encoder(snapshot, device=device, dtype="float32")
    texts = make_texts(n_texts)
    pages = make_pages(os.path.join(work_dir, "pages"), n_images, scale=0.5)
    tokens = [encoder.count_image_tokens(p.size) for p in pages]
    print(
        "%d texts (%d-%d words), %d pages at scale 0.5 (%d-%d image "
        "tokens), float32, best of %d"
        % (
            n_texts,
            min(len(t.split()) for t in texts),
            max(len(t.split()) for t in texts),
            n_images,
            min(tokens),
            max(tokens),
            repeats,
        )
    )

    # warm-up: first calls allocate and pick kernels
    encoder.encode_texts(texts[:8], batch_size=8, return_multi=True)
    encoder.encode_images(pages[:8], batch_size=8, return_multi=True)

    print()
    print("throughput (single vectors)")
    print(
        "  %-8s %6s %12s %10s %10s"
        % ("items", "batch", "items/s", "s", "forwards")
    )
    speedups = {}
    for name, items, encode in (
        ("texts", texts, encoder.encode_texts),
        ("images", pages, encoder.encode_images),
    ):
        rates = {}
        for batch in (1, 8):
            before = encoder.forward_calls
            (seconds,) = best_times(
                [lambda: encode(items, batch_size=batch)], repeats
            )
            forwards = (encoder.forward_calls - before) // repeats
            rates[batch] = len(items) / seconds
            print(
                "  %-8s %6d %12.1f %10.3f %10d"
                % (name, batch, rates[batch], seconds, forwards)
            )
        speedups[name] = rates[8] / rates[1]

    print()
    print("one forward for both outputs (batch 8)")
    print(
        "  %-8s %10s %10s %10s %22s"
        % ("items", "single s", "multi s", "both s", "both/(single+multi)")
    )
    ratios = {}
    for name, items, encode in (
        ("texts", texts, encoder.encode_texts),
        ("images", pages, encoder.encode_images),
    ):
        t_single, t_multi, t_both = best_times(
            [
                lambda: encode(items, batch_size=8),
                lambda: encode(
                    items, batch_size=8, return_single=False, return_multi=True
                ),
                lambda: encode(items, batch_size=8, return_multi=True),
            ],
            repeats,
        )
        ratios[name] = t_both / (t_single + t_multi)
        print(
            "  %-8s %10.3f %10.3f %10.3f %22.2f"
            % (name, t_single, t_multi, t_both, ratios[name])
        )

    print()
    print("summary")
    for name in ("texts", "images"):
        print(
            "  %-7s b8/b1 speed-up %5.2fx   both/(single+multi) %.2f "
            "(expect about %.1f)"
            % (name, speedups[name], ratios[name], BOTH_EXPECTED)
        )
    return 0


# -- full-size mode ------------------------------------------------------


def _config_of(snapshot):
    with open(os.path.join(snapshot, "config.json")) as f:
        config = json.load(f)
    text = config.get("text_config") or {}
    hidden = config.get("hidden_size", text.get("hidden_size"))
    layers = config.get("num_hidden_layers", text.get("num_hidden_layers"))
    return int(hidden), int(layers)


def _weights_bytes(snapshot):
    index = os.path.join(snapshot, INDEX_FILE)
    if os.path.isfile(index):
        with open(index) as f:
            return int(json.load(f)["metadata"]["total_size"])
    return os.path.getsize(os.path.join(snapshot, "model.safetensors"))


def _is_full_size(snapshot):
    return _config_of(snapshot) == (FULL_HIDDEN_SIZE, FULL_LAYERS)


def _describe_checkpoint(snapshot):
    hidden, layers = _config_of(snapshot)
    return "%s (hidden %d, %d layers, %.1f MB of weights)" % (
        snapshot,
        hidden,
        layers,
        _weights_bytes(snapshot) / 1e6,
    )


def full_size_snapshot(args, work_dir):
    """The checkpoint for ``--full-size``: ``--checkpoint`` when complete,
    else a random full-size one written there (kept) or to ``work_dir``
    (removed at exit)."""
    target = args.checkpoint or os.path.join(work_dir, "full")
    if not missing_files(target):
        print("reusing checkpoint %s" % target)
        return target

    print(
        "writing a random full-size checkpoint (3.75B parameters, ~7.5 GB "
        "bf16) to %s ..." % target
    )
    start = time.perf_counter()
    write_checkpoint(target, seed=0, full_size=True)
    print("  written in %.0f s" % (time.perf_counter() - start))
    return target


def measure_pages(snapshot, device, dtype, batch, pages, max_pixels, repeats):
    """Loads an encoder, times ``pages`` at ``batch``, frees the encoder."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)

    start = time.perf_counter()
    encoder = JinaV4Encoder(snapshot, device=device, dtype=dtype)
    _sync(device)
    result = {
        "dtype": dtype,
        "batch": batch,
        "load_s": time.perf_counter() - start,
        "attention": encoder.attn_implementation,
    }
    if cuda:
        result["weights_bytes"] = torch.cuda.memory_allocated(device)

    seconds, result["forwards"] = _time_pages(
        encoder, pages, batch, max_pixels, repeats
    )
    result["seconds"] = seconds
    result["pages_per_s"] = len(pages) / seconds
    if cuda:
        result["peak_bytes"] = torch.cuda.max_memory_allocated(device)

    del encoder
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return result


def _time_pages(encoder, pages, batch, max_pixels, repeats):
    """Warms up on one batch, then returns (best seconds for all pages,
    forward passes per run)."""
    options = {"batch_size": batch, "max_pixels": max_pixels}
    encoder.encode_images(pages[:batch], **options)
    _sync(encoder.device)
    before = encoder.forward_calls
    (seconds,) = best_times(
        [lambda: encoder.encode_images(pages, **options)], repeats
    )
    _sync(encoder.device)
    return seconds, (encoder.forward_calls - before) // repeats


def run_full_size(args, work_dir):
    device = resolve_device(args.device)
    n_pages = 4 if args.quick else args.pages
    repeats = args.repeats or 1
    _header(device)
    if device.type != "cuda":
        print(
            "note: not on CUDA; a full-size page takes tens of seconds on a "
            "CPU and no GPU memory is reported"
        )

    snapshot = full_size_snapshot(args, work_dir)
    full = _is_full_size(snapshot)
    print("checkpoint %s" % _describe_checkpoint(snapshot))
    if not full:
        print(
            "STAND-IN: this is not the full-size architecture; the numbers "
            "below only exercise the code path and say nothing about the "
            "real model"
        )

    pages = make_pages(
        os.path.join(work_dir, "pages"), n_pages, scale=args.scale
    )
    processor = Qwen2VLImageProcessor.from_pretrained(snapshot)
    tokens = [_count_tokens(processor, p.size, args.max_pixels) for p in pages]
    print(
        "%d pages at scale %.2f (%d-%d image tokens, max_pixels %d), "
        "best of %d"
        % (
            n_pages,
            args.scale,
            min(tokens),
            max(tokens),
            args.max_pixels,
            repeats,
        )
    )

    results = []
    for dtype, batch in (("bfloat16", 8), ("float32", 1)):
        results.append(
            measure_pages(
                snapshot, device, dtype, batch, pages, args.max_pixels, repeats
            )
        )

    label = "full-size" if full else "STAND-IN, tiny"
    print()
    print("pages/s, %s, on %s" % (label, device))
    print(
        "  %-10s %6s %10s %10s %9s %9s %12s %12s"
        % (
            "dtype",
            "batch",
            "pages/s",
            "s",
            "forwards",
            "load s",
            "weights GB",
            "peak GB",
        )
    )
    for r in results:
        print(
            "  %-10s %6d %10.2f %10.2f %9d %9.1f %12s %12s"
            % (
                r["dtype"],
                r["batch"],
                r["pages_per_s"],
                r["seconds"],
                r["forwards"],
                r["load_s"],
                _gb(r.get("weights_bytes")),
                _gb(r.get("peak_bytes")),
            )
        )
    print(
        "  attention: %s"
        % ", ".join("%s %s" % (r["dtype"], r["attention"]) for r in results)
    )
    print(
        "  bf16 batch 8 / float32 batch 1: %.2fx pages/s (%s)"
        % (results[0]["pages_per_s"] / results[1]["pages_per_s"], label)
    )
    return 0


def _count_tokens(processor, size, max_pixels):
    """Image tokens of a page of ``size``, as the encoder counts them."""
    factor = processor.patch_size * processor.merge_size
    width, height = size
    h, w = smart_resize(
        height,
        width,
        factor,
        min_pixels=DEFAULT_MIN_PIXELS,
        max_pixels=max_pixels,
    )
    return (h // factor) * (w // factor)


def _gb(nbytes):
    return "-" if nbytes is None else "%.2f" % (nbytes / GB)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer items, one repeat"
    )
    parser.add_argument(
        "--full-size",
        action="store_true",
        help="the real architecture with random weights: bf16 batch 8 vs "
        "float32 batch 1 pages/s",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint folder; with --full-size it is reused when "
        "complete, else written there and kept",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="default: cpu (tiny mode); cuda when available (--full-size)",
    )
    parser.add_argument(
        "--pages",
        type=int,
        default=16,
        help="pages for --full-size (default 16; 4 with --quick)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="page scale for --full-size (1.0: 600x800 and similar)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="resize budget per page for --full-size (encoder default)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed runs per measurement, best kept (default 3 tiny, 1 "
        "full-size, 1 with --quick)",
    )
    parser.add_argument(
        "--work-dir",
        default=None,
        help="where temporary pages and checkpoints go (removed at exit)",
    )
    add_threads_option(parser)
    args = parser.parse_args(argv)
    set_threads(parser, args)
    if args.pages < 1:
        parser.error("--pages must be >= 1")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.scale <= 0:
        parser.error("--scale must be positive")
    if args.checkpoint:
        args.checkpoint = os.path.abspath(args.checkpoint)
        if not args.full_size and missing_files(args.checkpoint):
            parser.error(
                "--checkpoint %s is not a complete checkpoint"
                % args.checkpoint
            )

    work_dir = tempfile.mkdtemp(prefix="bench-encoder-", dir=args.work_dir)
    try:
        if args.full_size:
            return run_full_size(args, work_dir)
        return run_tiny(args, work_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
