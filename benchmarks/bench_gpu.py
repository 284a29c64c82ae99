"""GPU throughput of the encoder: each fast path measured alone, MFU, where
the time goes, peak memory, FiftyOne's overhead, and exactness.

One command on one GPU (under 4 minutes on an H200, building the random
full-size checkpoint included)::

    python benchmarks/bench_gpu.py                    # CUDA, full size
    python benchmarks/bench_gpu.py --checkpoint DIR   # reuse (or keep) it
    python benchmarks/bench_gpu.py --tiny             # CPU, tiny, < 2 min

It embeds document pages of exactly 3072 patches (672x896 pixels, the
default ``max_pixels``: 768 image tokens) from PIL images, as users call
``encode_images``, in one process, and prints:

- pages/s of the existing integration's configuration (float32, batch 1,
  transformers' own path), of the new defaults, and of each optimisation
  alone: half precision and batching on top of the existing
  configuration; packed vision attention, no padding mask, the prefetch
  thread, the fused LoRA step and merged LoRA on top of the stock
  half-precision batch (the stock rows run with plain weights; on a CPU
  in bf16 the defaults' weights are packed for oneDNN);
- MFU: the model's FLOPs per page (linear layers and attention, counted
  from the checkpoint's config; LoRA excluded) times pages/s over the
  device's dense bf16 peak (``--peak-tflops``; known for H100/H200/A100);
- vision tower vs language model vs the rest (preprocessing, host work)
  per page, from synchronised forward hooks in a separate pass;
- peak GPU memory of each configuration;
- ``compute_embeddings`` through FiftyOne (private database, the zoo
  source installed with this checkpoint) vs the encoder alone on the same
  files (``--no-fiftyone`` skips it);
- the largest cosine distance between each fast path and the stock path
  on one batch of mixed page sizes (single and multi vectors), against
  1e-6 in float32 and 1e-3 in half precision, next to the stock path's own
  spread (the same pages one at a time) and each path's distance from the
  float32 stock outputs: in half precision a path also passes when that
  distance is at most 1.25x the stock path's (as accurate as stock).

``--tiny`` runs all of it on the CPU with the tests' tiny checkpoint: the
code path and the relative cost of the fast paths on a CPU, not GPU
figures. ``--json PATH`` also writes the results.
"""

import argparse
import gc
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

from _common import (
    add_threads_option,
    busy_warning,
    isolate_fiftyone,
    set_threads,
)
from jina_embeddings_v4.model.encoder import (
    FastPaths,
    JinaV4Encoder,
    resolve_device,
    resolve_dtype,
)
from jina_embeddings_v4.model.flops import page_flops
from jina_embeddings_v4.model.snapshot import missing_files
from jina_embeddings_v4.testing import documents
from jina_embeddings_v4.testing.compare import worst_distance
from jina_embeddings_v4.testing.support import (
    TINY_SNAPSHOT,
    install_source,
)
from jina_embeddings_v4.testing.tiny_checkpoint import write_checkpoint

MODEL_NAME = "jinaai/jina-embeddings-v4"
PAGE_SIZE = (672, 896)  # width, height: 48 x 64 patches = 3072
GB = 1024**3
# dense bf16 tensor-core peaks (TFLOP/s), from the vendors' data sheets
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0}
TOLERANCE = {torch.float32: 1e-6}
HALF_TOLERANCE = 1e-3
# a half-precision path whose distance from float32 is within this factor
# of the stock path's is as accurate as the stock path
F32_SLACK = 1.25


# -- FLOPs ---------------------------------------------------------------


def peak_tflops(device, override):
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_TFLOPS.items():
        if key in name:
            return value
    return None


# -- pages ---------------------------------------------------------------


def make_pages(n):
    """``n`` synthetic document pages of exactly 3072 patches, as RGB PIL
    images in memory (file decoding is not timed)."""
    pages = []
    for i in range(n):
        kind = documents.KINDS[i % len(documents.KINDS)]
        image, _ = documents.make_page(kind, seed=i, scale=1.0)
        pages.append(image.convert("RGB").resize(PAGE_SIZE))
    return pages


MIXED_SCALES = (0.35, 0.6, 0.35, 0.6, 0.35, 1.4, 0.6, 0.35)


def make_mixed_pages(n=len(MIXED_SCALES)):
    """One batch of ``n`` pages of mixed kinds, sizes and shapes (ragged
    vision windows, padding in the language model); the sixth is above
    ``max_pixels``."""
    pages = []
    for i, scale in enumerate(MIXED_SCALES[:n]):
        kind = documents.KINDS[i % len(documents.KINDS)]
        image, _ = documents.make_page(kind, seed=100 + i, scale=scale)
        pages.append(image.convert("RGB"))
    return pages


# -- measuring -----------------------------------------------------------


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(encoder, pages, batch, fast_paths):
    """Seconds of one ``encode_images(pages)`` call, and its peak GPU
    memory (None on a CPU)."""
    device = encoder.device
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    encoder.encode_images(pages, batch_size=batch, fast_paths=fast_paths)
    sync(device)
    seconds = time.perf_counter() - start
    peak = (
        torch.cuda.max_memory_allocated(device)
        if device.type == "cuda"
        else None
    )
    return seconds, peak


class Split:
    """Synchronised wall time inside the vision tower and inside the whole
    backbone forward, by forward hooks (a pass of its own: the syncs cost
    a little)."""

    def __init__(self, encoder):
        self.device = encoder.device
        self.seconds = {"vision": 0.0, "backbone": 0.0}
        self._start = {}
        self._handles = []
        for name, module in (
            ("vision", encoder.backbone.visual),
            ("backbone", encoder.backbone),
        ):
            self._handles.append(
                module.register_forward_pre_hook(self._enter(name))
            )
            self._handles.append(module.register_forward_hook(self._leave(name)))

    def _enter(self, name):
        def hook(module, args):
            sync(self.device)
            self._start[name] = time.perf_counter()

        return hook

    def _leave(self, name):
        def hook(module, args, output):
            sync(self.device)
            self.seconds[name] += time.perf_counter() - self._start[name]

        return hook

    def close(self):
        for h in self._handles:
            h.remove()


def split_times(encoder, pages, batch, fast_paths):
    """Seconds per page: vision tower, language model, and the rest."""
    encoder.encode_images(pages[:batch], batch_size=batch, fast_paths=fast_paths)
    split = Split(encoder)
    try:
        start = time.perf_counter()
        encoder.encode_images(pages, batch_size=batch, fast_paths=fast_paths)
        sync(encoder.device)
        wall = time.perf_counter() - start
    finally:
        split.close()
    n = len(pages)
    vision = split.seconds["vision"]
    lm = split.seconds["backbone"] - vision
    return {
        "vision_s": vision / n,
        "lm_s": lm / n,
        "other_s": (wall - split.seconds["backbone"]) / n,
    }


def _vs(out, ref):
    return None if ref is None else worst_distance(out, ref)


# -- the configurations --------------------------------------------------


def stock_with(**changes):
    paths = FastPaths.stock()
    for key, value in changes.items():
        setattr(paths, key, value)
    return paths


CONFIG_KEYS = (
    "existing",
    "half",
    "batch",
    "stock",
    "packed",
    "nomask",
    "prefetch",
    "fused",
    "merged",
    "defaults",
    "defaults-merged",
)


def configurations(half, batch, keys=CONFIG_KEYS):
    """(name, dtype, batch, FastPaths, merge_lora, baseline name, packed),
    for the ``keys`` of :data:`CONFIG_KEYS`; ``packed``: the encoder's
    default weight packing (True: oneDNN-packed on a CPU in bf16) or plain
    weights, as the stock path has (False)."""
    f32 = torch.float32
    existing = "existing: float32 b1 stock"
    base = "stock %s b%d" % (_dtype_name(half), batch)
    table = {
        "existing": (existing, f32, 1, FastPaths.stock(), False, None),
        "half": (
            "+ %s alone" % _dtype_name(half),
            half, 1, FastPaths.stock(), False, existing,
        ),
        "batch": (
            "+ batch %d alone" % batch,
            f32, batch, FastPaths.stock(), False, existing,
        ),
        "stock": (base, half, batch, FastPaths.stock(), False, existing),
        "packed": (
            "+ packed vision attention",
            half, batch, stock_with(vision_attention="packed"), False, base,
        ),
        "nomask": (
            "+ no padding mask",
            half, batch, stock_with(drop_padding_mask=True), False, base,
        ),
        "prefetch": (
            "+ prefetch thread",
            half, batch, stock_with(prefetch=True), False, base,
        ),
        "fused": (
            "+ fused LoRA step",
            half, batch, stock_with(fused_lora=True), False, base,
        ),
        "merged": ("+ merged LoRA", half, batch, FastPaths.stock(), True, base),
        "defaults": ("defaults", half, batch, FastPaths(), False, base),
        "defaults-merged": (
            "defaults + merged LoRA", half, batch, FastPaths(), True, base,
        ),
    }
    defaults = ("defaults", "defaults-merged")
    return [table[k] + (k in defaults,) for k in CONFIG_KEYS if k in keys]


def use(encoder, merge, packed, default_packing):
    """Sets the encoder up for one configuration: LoRA merged or not,
    weights packed as by default (``packed``) or plain; the task's LoRA
    activated (merged) now, so that no timed run includes the merge."""
    want = default_packing if packed else False
    if encoder.pack_weights != want:
        encoder.set_pack_weights(want)
    encoder.set_merge_lora(merge)
    encoder.encode_texts(["warm-up"], task="retrieval")


def _dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def _gb(value):
    return "-" if value is None else "%.1f" % (value / GB)


def load_encoder(snapshot, device, dtype):
    if device.type == "cuda":
        torch.cuda.empty_cache()
    start = time.perf_counter()
    encoder = JinaV4Encoder(snapshot, device=device, dtype=dtype)
    sync(device)
    return encoder, time.perf_counter() - start


def free(encoder):
    device = encoder.device
    del encoder
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure_encoder(args, snapshot, device, half):
    pages = make_pages(args.pages)
    slow_pages = pages[: max(args.batch_size, args.pages // 4)]
    mixed = make_mixed_pages(args.mixed)
    rows, equal, split, flops, floors = {}, [], {}, None, {}
    f32_ref = None  # the float32 stock outputs, when float32 runs first

    by_dtype = {}
    for config in configurations(half, args.batch_size, args.configs):
        by_dtype.setdefault(config[1], []).append(config)

    loads = {}
    for dtype in (torch.float32, half):
        if dtype not in by_dtype:
            continue
        encoder, loads[_dtype_name(dtype)] = load_encoder(
            snapshot, device, dtype
        )
        print(
            "loaded %s in %.1f s (LM attention %s)"
            % (_dtype_name(dtype), loads[_dtype_name(dtype)],
               encoder.attn_implementation)
        )
        if flops is None and not args.equality_only:
            probe = encoder.encode_images(
                pages[:1], return_multi=True, fast_paths=FastPaths.stock()
            )
            patches = 4 * encoder.count_image_tokens(PAGE_SIZE)
            flops = page_flops(encoder.config, patches, len(probe.multi[0]))
            flops["patches"] = patches
            flops["lm_tokens"] = len(probe.multi[0])

        group = by_dtype[dtype]
        slow = dtype == torch.float32 and device.type == "cuda"
        items = slow_pages if slow else pages
        default_packing = encoder.pack_weights
        use(encoder, False, False, default_packing)
        stock_ref = None
        if not args.no_equality:
            stock_ref = encoder.encode_images(
                mixed,
                batch_size=len(mixed),
                return_multi=True,
                fast_paths=FastPaths.stock(),
            )
            # the stock path's own rounding spread: the same pages one at
            # a time (different padding and kernel shapes, same maths)
            alone = encoder.encode_images(
                mixed,
                batch_size=1,
                return_multi=True,
                fast_paths=FastPaths.stock(),
            )
            floor = worst_distance(alone, stock_ref)
            floors[_dtype_name(dtype)] = floor
            if dtype == torch.float32:
                f32_ref = stock_ref
            equal.append(
                {
                    "name": "stock, one page at a time",
                    "dtype": _dtype_name(dtype),
                    "distance": floor,
                    "tolerance": None,
                    "vs_float32": _vs(alone, f32_ref),
                }
            )
            equal.append(
                {
                    "name": "stock, batch of %d" % len(mixed),
                    "dtype": _dtype_name(dtype),
                    "distance": 0.0,
                    "tolerance": None,
                    "vs_float32": _vs(stock_ref, f32_ref),
                }
            )
        for name, _, batch, paths, merge, base, packed in group:
            use(encoder, merge, packed, default_packing)
            # warm-up, and equality with the stock path of this dtype on
            # one batch of mixed pages
            if not args.equality_only:
                encoder.encode_images(items[:batch], batch_size=batch,
                                      fast_paths=paths)
            if stock_ref is not None:
                out = encoder.encode_images(
                    mixed,
                    batch_size=len(mixed),
                    return_multi=True,
                    fast_paths=paths,
                )
                equal.append(
                    {
                        "name": name,
                        "dtype": _dtype_name(dtype),
                        "distance": worst_distance(out, stock_ref),
                        "vs_float32": _vs(out, f32_ref),
                        "tolerance": TOLERANCE.get(dtype, HALF_TOLERANCE),
                    }
                )
            rows[name] = {
                "dtype": _dtype_name(dtype),
                "batch": batch,
                "pages": len(items),
                "seconds": float("inf"),
                "peak_bytes": None,
                "baseline": base,
                "fast_paths": vars(paths).copy(),
                "merge_lora": merge,
                "packed_weights": encoder.pack_weights,
            }

        # timed runs interleaved over the configurations, best kept, so
        # slow drift of the machine hits all alike
        if args.equality_only:
            for name, *_ in group:
                del rows[name]
            free(encoder)
            continue
        for _ in range(args.repeats):
            for name, _, batch, paths, merge, _, packed in group:
                use(encoder, merge, packed, default_packing)
                seconds, peak = time_once(encoder, items, batch, paths)
                row = rows[name]
                row["seconds"] = min(row["seconds"], seconds)
                if peak is not None:
                    row["peak_bytes"] = max(row["peak_bytes"] or 0, peak)
        for name, *_ in group:
            row = rows[name]
            row["pages_per_s"] = row["pages"] / row["seconds"]
            print("  %-30s %8.2f pages/s" % (name, row["pages_per_s"]))

        if dtype == half and not args.no_split:
            for name, paths, packed in (
                ("stock", FastPaths.stock(), False),
                ("defaults", FastPaths(), True),
            ):
                use(encoder, False, packed, default_packing)
                split[name] = split_times(
                    encoder, pages, args.batch_size, paths
                )
        free(encoder)

    return rows, equal, split, flops, loads, floors


def measure_fiftyone(args, snapshot, device, half):
    """compute_embeddings through FiftyOne vs the encoder alone, same
    files, same batch size, the zoo model loaded with its defaults."""
    import fiftyone as fo
    import fiftyone.zoo as foz

    install_source(
        os.environ["FIFTYONE_MODEL_ZOO_DIR"],
        snapshot=snapshot,
        symlink=True,
    )
    pages_dir = os.path.join(args.work_dir, "pages")
    os.makedirs(pages_dir, exist_ok=True)
    paths = []
    for i, page in enumerate(make_pages(args.pages)):
        path = os.path.join(pages_dir, "page-%04d.png" % i)
        page.save(path)
        paths.append(path)

    dataset = fo.Dataset("bench-gpu-%d" % os.getpid())
    dataset.add_samples([fo.Sample(filepath=p) for p in paths])
    model = foz.load_zoo_model(
        MODEL_NAME, device=str(device), dtype=_dtype_name(half)
    )
    encoder = model.encoder
    batch = args.batch_size

    def direct():
        encoder.encode_images(paths, batch_size=batch)

    def through_fiftyone():
        dataset.compute_embeddings(
            model, embeddings_field="emb", batch_size=batch, progress=False
        )

    best = {}
    for name, fn in (("encoder", direct), ("fiftyone", through_fiftyone)):
        fn()  # warm-up
        sync(device)
        best[name] = float("inf")
    for _ in range(args.repeats):
        for name, fn in (("encoder", direct), ("fiftyone", through_fiftyone)):
            start = time.perf_counter()
            fn()
            sync(device)
            best[name] = min(best[name], time.perf_counter() - start)
    stored = np.stack(dataset.values("emb"))
    reference = encoder.encode_images(paths, batch_size=batch).single
    agreement = float(np.min(np.sum(stored * reference, axis=1)))
    dataset.delete()
    return {
        "encoder_pages_per_s": args.pages / best["encoder"],
        "fiftyone_pages_per_s": args.pages / best["fiftyone"],
        "ratio": best["encoder"] / best["fiftyone"],
        "min_cosine_stored_vs_encoder": agreement,
    }


# -- report --------------------------------------------------------------


def report_rows(args, half, rows, flops, label, peak):
    print()
    print(
        "pages/s at %d patches (%d LM tokens), %s; best of %d"
        % (flops["patches"], flops["lm_tokens"], label, args.repeats)
    )
    print(
        "  model FLOPs per page: %.2f TFLOP (vision linear %.2f, vision "
        "attention %.2f, LM linear %.2f, LM attention %.2f)"
        % (
            flops["total"],
            flops["vision_linear"],
            flops["vision_attention"],
            flops["lm_linear"],
            flops["lm_attention"],
        )
    )
    print(
        "  %-30s %-9s %5s %6s %9s %8s %8s %8s"
        % ("configuration", "dtype", "batch", "pages", "pages/s",
           "vs base", "MFU", "peak GB")
    )
    for name, r in rows.items():
        base = rows.get(r["baseline"]) if r["baseline"] else None
        ratio = (
            "%.2fx" % (r["pages_per_s"] / base["pages_per_s"]) if base else "-"
        )
        mfu = (
            "%.1f%%" % (100 * r["pages_per_s"] * flops["total"] / peak)
            if peak
            else "-"
        )
        print(
            "  %-30s %-9s %5d %6d %9.2f %8s %8s %8s"
            % (name, r["dtype"], r["batch"], r["pages"], r["pages_per_s"],
               ratio, mfu, _gb(r["peak_bytes"]))
        )


def report(args, device, half, rows, equal, split, flops, loads, fo_result,
           peak, floors):
    label = "%s checkpoint on %s" % ("tiny" if args.tiny else "full-size",
                                     device)
    if rows:
        report_rows(args, half, rows, flops, label, peak)
    summary = []
    for name in ("existing: float32 b1 stock",
                 "stock %s b%d" % (_dtype_name(half), args.batch_size)):
        if name in rows and "defaults" in rows:
            ratio = rows["defaults"]["pages_per_s"] / rows[name]["pages_per_s"]
            summary.append("defaults %.2fx %s" % (ratio, name))
            print("  defaults / %s: %.2fx pages/s" % (name, ratio))
    if rows and peak:
        print("  MFU against %.0f TFLOP/s dense bf16" % peak)
    elif rows:
        print("  MFU: no peak known for this device (--peak-tflops)")
    print("  load seconds: %s" % ", ".join(
        "%s %.1f" % item for item in loads.items()))

    print()
    if split:
        print("where a page's time goes (%s, batch %d), ms per page"
              % (_dtype_name(half), args.batch_size))
        print("  %-10s %8s %8s %8s %8s"
              % ("path", "vision", "LM", "other", "total"))
    for name, s in split.items():
        total = s["vision_s"] + s["lm_s"] + s["other_s"]
        print(
            "  %-10s %8.1f %8.1f %8.1f %8.1f"
            % (name, 1e3 * s["vision_s"], 1e3 * s["lm_s"],
               1e3 * s["other_s"], 1e3 * total)
        )

    if fo_result:
        print()
        print(
            "compute_embeddings through FiftyOne vs the encoder alone "
            "(zoo defaults, %s, batch %d, %d PNG files)"
            % (_dtype_name(half), args.batch_size, args.pages)
        )
        print(
            "  encoder %.2f pages/s, FiftyOne %.2f pages/s, ratio %.2f; "
            "stored vs encoder min cosine %.6f"
            % (fo_result["encoder_pages_per_s"],
               fo_result["fiftyone_pages_per_s"], fo_result["ratio"],
               fo_result["min_cosine_stored_vs_encoder"])
        )

    print()
    if equal:
        print("each path vs the stock path of its dtype (and vs float32 "
              "stock), one batch of %d mixed pages, largest cosine distance "
              "(single and multi vectors)" % args.mixed)
    ok = True
    print("  %-30s %-9s %10s %10s  %s"
          % ("path", "dtype", "vs stock", "vs f32", "verdict"))
    # in half precision the stock path is itself only so exact: a path
    # passes within the tolerance of the stock path, or within the stock
    # path's own spread (the same pages one at a time), or when its
    # distance from the float32 outputs is at most F32_SLACK times the
    # stock path's (as accurate as the stock path in that precision)
    stock_f32 = {}
    for e in equal:
        if e["tolerance"] is None and e.get("vs_float32") is not None:
            stock_f32[e["dtype"]] = max(
                stock_f32.get(e["dtype"], 0.0), e["vs_float32"]
            )
    for e in equal:
        f32 = e.get("vs_float32")
        f32_text = "-" if f32 is None else "%.2e" % f32
        if e["tolerance"] is None:
            print("  %-30s %-9s %10.2e %10s  (the stock path)"
                  % (e["name"], e["dtype"], e["distance"], f32_text))
            continue
        limit = max(e["tolerance"], floors.get(e["dtype"], 0.0))
        passed = e["distance"] <= limit
        how = "<= %.2e" % limit
        if not passed and f32 is not None and e["dtype"] in stock_f32:
            passed = f32 <= F32_SLACK * stock_f32[e["dtype"]]
            how = "vs f32 %.2fx stock's %.2e, <= %.2fx" % (
                f32 / stock_f32[e["dtype"]], stock_f32[e["dtype"]], F32_SLACK
            )
        e["passed"] = passed
        ok = ok and passed
        print("  %-30s %-9s %10.2e %10s  %s (%s)"
              % (e["name"], e["dtype"], e["distance"], f32_text,
                 "PASS" if passed else "FAIL", how))
    print()
    if equal:
        summary.append("every path equal to stock: %s"
                       % ("PASS" if ok else "FAIL"))
    print("summary: %s" % "; ".join(summary))
    return ok


def snapshot_for(args):
    if args.tiny:
        if args.checkpoint:
            return args.checkpoint
        if not missing_files(TINY_SNAPSHOT):
            return TINY_SNAPSHOT
        return write_checkpoint(os.path.join(args.work_dir, "tiny"), seed=0)

    target = args.checkpoint or os.path.join(args.work_dir, "full")
    if not missing_files(target):
        print("reusing checkpoint %s" % target)
        return target
    print("writing a random full-size checkpoint (3.75B parameters) to %s"
          % target)
    start = time.perf_counter()
    write_checkpoint(target, seed=0, full_size=True)
    print("  written in %.0f s" % (time.perf_counter() - start))
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true",
                        help="the tests' tiny checkpoint on the CPU")
    parser.add_argument("--checkpoint", default=None,
                        help="a checkpoint folder to reuse (written there "
                        "when incomplete)")
    parser.add_argument("--device", default=None,
                        help="default: cuda, or cpu with --tiny")
    parser.add_argument("--pages", type=int, default=None,
                        help="pages per timed run (default 48; 16 --tiny)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per configuration, interleaved, "
                        "best kept (default 2; 3 --tiny)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's dense bf16 peak, for MFU")
    parser.add_argument("--no-fiftyone", action="store_true",
                        help="skip compute_embeddings through FiftyOne")
    parser.add_argument(
        "--configs",
        default=",".join(CONFIG_KEYS),
        help="configurations to time, comma-separated (default all: %s)"
        % ",".join(CONFIG_KEYS),
    )
    parser.add_argument("--no-equality", action="store_true",
                        help="skip the comparison with the stock path")
    parser.add_argument("--mixed", type=int, default=len(MIXED_SCALES),
                        help="pages of the equality batch (default %d)"
                        % len(MIXED_SCALES))
    parser.add_argument("--equality-only", action="store_true",
                        help="only the comparison with the stock path")
    parser.add_argument("--no-split", action="store_true",
                        help="skip the vision / LM time split")
    parser.add_argument("--json", default=None, help="also write results")
    add_threads_option(parser)
    args = parser.parse_args(argv)
    set_threads(parser, args)
    if args.pages is None:
        args.pages = 16 if args.tiny else 48
    if args.repeats is None:
        args.repeats = 3 if args.tiny else 2
    if not 1 <= args.mixed <= len(MIXED_SCALES):
        parser.error("--mixed must be 1 to %d" % len(MIXED_SCALES))
    if args.equality_only:
        args.no_split = args.no_fiftyone = True
        args.no_equality = False
    for name in ("pages", "batch_size", "repeats"):
        if getattr(args, name) < 1:
            parser.error("--%s must be >= 1" % name.replace("_", "-"))

    device = resolve_device(args.device or ("cpu" if args.tiny else None))
    if not args.tiny and device.type != "cuda" and args.device is None:
        parser.error(
            "no CUDA device: the full-size run needs a GPU (a page takes "
            "tens of seconds on a CPU); use --tiny for the CPU, or "
            "--device cpu to run the full size there anyway"
        )
    args.configs = [k.strip() for k in args.configs.split(",") if k.strip()]
    unknown = sorted(set(args.configs) - set(CONFIG_KEYS))
    if unknown or not args.configs:
        parser.error("--configs: unknown %s; choose from %s"
                     % (",".join(unknown) or "(none given)",
                        ",".join(CONFIG_KEYS)))
    if not args.no_fiftyone:
        args.work_dir = isolate_fiftyone()  # before fiftyone is imported
    else:
        args.work_dir = tempfile.mkdtemp(prefix="bench-gpu-")

    started = time.perf_counter()
    half = resolve_dtype("auto", device)
    if half == torch.float32:
        half = torch.bfloat16
    print(
        "torch %s, device %s%s, %d CPU threads, load average %.2f"
        % (
            torch.__version__,
            device,
            " (%s)" % torch.cuda.get_device_name(device)
            if device.type == "cuda" else "",
            torch.get_num_threads(),
            os.getloadavg()[0],
        )
    )
    warning = busy_warning()
    if warning:
        print(warning)
    snapshot = snapshot_for(args)
    rows, equal, split, flops, loads, floors = measure_encoder(
        args, snapshot, device, half
    )
    fo_result = None
    if not args.no_fiftyone:
        fo_result = measure_fiftyone(args, snapshot, device, half)
    peak = peak_tflops(device, args.peak_tflops)
    ok = report(args, device, half, rows, equal, split, flops, loads,
                fo_result, peak, floors)
    print("total %.0f s" % (time.perf_counter() - started))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "device": str(device),
                    "tiny": args.tiny,
                    "rows": rows,
                    "equality": equal,
                    "split": split,
                    "flops": flops,
                    "load_s": loads,
                    "fiftyone": fo_result,
                    "peak_tflops": peak,
                },
                f,
                indent=2,
                default=str,
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
