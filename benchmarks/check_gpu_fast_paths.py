"""On a CUDA device: the fast paths against the stock path on the tiny
checkpoint, and the fallback when a fast kernel fails there.

The tests run these checks on the CPU (``tests/integration/
test_fast_paths.py``); this script runs them where the CUDA-only code
(the varlen attention kernel, the fused LoRA update in cuBLAS) actually
runs, without FiftyOne or a database, for a lent GPU::

    python benchmarks/check_gpu_fast_paths.py [--device cuda:0]

Prints one line per check and exits 1 when any fails:

- float32 and bf16: each fast path alone and the defaults against the
  stock path on the goldens' images and texts (1e-6 in float32, 1e-3 in
  bf16), and the official goldens (the same bounds);
- the varlen kernel made to fail (as a kernel built for another GPU
  would): the batch still equals the stock path, one warning names the
  switches, and the device stays on the stock path.
"""

import argparse
import json
import logging
import os
import sys

import numpy as np
import torch
from PIL import Image

from jina_embeddings_v4.model import attention
from jina_embeddings_v4.model import encoder as jenc
from jina_embeddings_v4.testing.compare import cosine_distance as distance
from jina_embeddings_v4.testing.compare import worst_distance as worst
from jina_embeddings_v4.testing.support import REPO_ROOT, TINY_SNAPSHOT

GOLDENS = os.path.join(REPO_ROOT, "tests", "data", "jina-v4-tiny-goldens")
BOUND = {"float32": 1e-6, "bfloat16": 1e-3}


class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, name, ok, detail=""):
        print("%-4s %s %s" % ("ok" if ok else "FAIL", name, detail), flush=True)
        if not ok:
            self.failed += 1


def goldens():
    with open(os.path.join(GOLDENS, "goldens_meta.json")) as f:
        meta = json.load(f)
    images = [
        Image.open(os.path.join(GOLDENS, m["png"])).convert("RGB")
        for m in meta["images"]
    ]
    return meta, np.load(os.path.join(GOLDENS, "goldens.npz")), images


class Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    device = jenc.resolve_device(args.device)
    if device.type != "cuda":
        parser.error("this check is for a CUDA device; the tests cover CPUs")
    print("torch %s, %s, varlen kernel: %s"
          % (torch.__version__, torch.cuda.get_device_name(device),
             getattr(attention.varlen_kernel(
                 torch.zeros(1, dtype=torch.bfloat16, device=device)),
                 "__name__", None)))
    meta, z, images = goldens()
    texts = [t["text"] for t in meta["texts"]]
    checks = Checks()
    paths = {
        "packed vision attention": jenc.FastPaths("packed", False, False, False),
        "no padding mask": jenc.FastPaths("stock", True, False, False),
        "prefetch": jenc.FastPaths("stock", False, True, False),
        "fused LoRA": jenc.FastPaths("stock", False, False, True),
        "defaults": jenc.FastPaths(),
    }
    for dtype, bound in BOUND.items():
        enc = jenc.JinaV4Encoder(TINY_SNAPSHOT, device=device, dtype=dtype)
        kwargs = dict(task="retrieval", batch_size=3, return_multi=True)
        stock = enc.encode_images(
            images, fast_paths=jenc.FastPaths.stock(), **kwargs
        )
        stock_t = enc.encode_texts(
            texts, fast_paths=jenc.FastPaths.stock(), return_multi=True
        )
        for name, fast in paths.items():
            out = enc.encode_images(images, fast_paths=fast, **kwargs)
            out_t = enc.encode_texts(texts, fast_paths=fast, return_multi=True)
            w = max(worst(out, stock), worst(out_t, stock_t))
            checks.check("%s %s equals stock" % (dtype, name), w <= bound,
                         "(%.2e, bound %.0e)" % (w, bound))
        out = enc.encode_images(images, task="retrieval", batch_size=6)
        g = max(
            float(distance(out.single[i], z["image/%s/retrieval/single"
                                             % m["id"]]))
            for i, m in enumerate(meta["images"])
        )
        checks.check("%s defaults meet the goldens" % dtype, g <= bound,
                     "(%.2e)" % g)

        if dtype == "bfloat16":
            fallback(enc, images, checks, device)
        del enc
        torch.cuda.empty_cache()
    print("%d failed" % checks.failed)
    return 1 if checks.failed else 0


def fallback(enc, images, checks, device):
    stock = enc.encode_images(
        images[:2], fast_paths=jenc.FastPaths.stock(), return_multi=True
    )

    def kernel_failure(*args, **kwargs):
        raise RuntimeError(
            "CUDA error: no kernel image is available for execution on the "
            "device"
        )

    saved = attention.varlen_kernel
    attention.varlen_kernel = lambda query: kernel_failure
    handler = Warnings()
    logging.getLogger(jenc.__name__).addHandler(handler)
    jenc._FELL_BACK.clear()
    calls = enc.forward_calls
    try:
        first = enc.encode_images(images[:2], return_multi=True)
        second = enc.encode_images(images[:2], return_multi=True)
    finally:
        attention.varlen_kernel = saved
        logging.getLogger(jenc.__name__).removeHandler(handler)
    w = max(worst(first, stock), worst(second, stock))
    checks.check("fallback: the batch equals the stock path", w <= 1e-6,
                 "(%.2e)" % w)
    said = [m for m in handler.messages if "fast path failed" in m]
    checks.check("fallback: one warning naming the switches",
                 len(said) == 1 and "vision_attention='stock'" in said[0],
                 said[0][:300] if said else "(none)")
    checks.check("fallback: the device stays on the stock path",
                 jenc._FELL_BACK == {str(device)}
                 and enc.forward_calls - calls == 3,
                 "(%s, %d passes)" % (sorted(jenc._FELL_BACK),
                                      enc.forward_calls - calls))
    jenc._FELL_BACK.clear()


if __name__ == "__main__":
    sys.exit(main())
