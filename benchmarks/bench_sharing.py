"""Benchmarks loading, re-loading, latency and memory sharing at full size.

Builds the real Jina Embeddings v4 architecture (3.75B parameters) with
random weights once, saved in the official snapshot layout (bf16
safetensors), installs the zoo source in a throwaway FiftyOne zoo folder
with that snapshot as its weights, and measures through the real
``foz.load_zoo_model`` path:

-   cold load: the first ``load_zoo_model`` in a fresh process
-   warm re-load: a second ``load_zoo_model`` with other options in the
    same process, and the weight loads counted by ``encoder_cache``
-   text-query latency (``embed_prompt``) and page latency (``embed`` of
    one generated document page), in float32 and bf16
-   resident memory with one model, and with two differently configured
    models loaded at once

Each dtype runs in its own subprocess, one after the other, so the peak
resident memory read there belongs to that scenario alone (float32 at full
size needs about 15 GB).

Usage::

    python benchmarks/bench_sharing.py            # full size (slow)
    python benchmarks/bench_sharing.py --quick    # tiny checkpoint smoke run
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from _common import support

MODEL_NAME = "jinaai/jina-embeddings-v4"
DEFAULT_CHECKPOINT = "/tmp/jina-v4-full-random"
DEFAULT_MAX_PIXELS = 602112
DTYPES = ("float32", "bfloat16")

QUERY = "invoice from 2024"
CLASSES = ["invoice", "receipt", "form", "contract", "slide"]
# 672x896 pixels: exactly the default max_pixels budget (602112), so 768
# image tokens at the default; a smaller --page-max-pixels resizes it down.
PAGE_KIND = "invoice"
PAGE_SCALE = 1.12
TEXT_RUNS = 3

WARM_RELOAD_TARGET_S = 1.0
BF16_TEXT_TARGET_S = 0.6
MEMORY_RATIO_TARGET = 1.15

_RESULT_MARKER = "BENCH_SHARING_RESULT "
GB = 1000**3


# --------------------------------------------------------------------------
# Parent: checkpoint, zoo folder, subprocesses, table
# --------------------------------------------------------------------------


def _snapshot_missing(path):
    # snapshot.py imports neither torch nor transformers
    from jina_embeddings_v4.model.snapshot import missing_files

    return missing_files(path)


def ensure_checkpoint(path):
    """Builds the full-size random checkpoint at ``path`` unless complete.

    Returns:
        the seconds spent building, or None when an existing one was reused
    """
    missing = _snapshot_missing(path)
    if not missing:
        print("Reusing the checkpoint at %s" % path)
        return None

    if os.path.exists(path):
        raise SystemExit(
            "%s exists but is not a complete snapshot (missing: %s); "
            "remove it or pass another --checkpoint" % (path, missing)
        )

    # Written next to its final place and renamed when complete, so an
    # interrupted build never looks like a finished one.
    partial = path.rstrip("/") + ".partial"
    if os.path.exists(partial):
        shutil.rmtree(partial)

    print("Building the full-size random checkpoint at %s ..." % path)
    sys.stdout.flush()
    start = time.perf_counter()
    _run_child(["--child", "build", "--checkpoint", partial], env=None)
    os.rename(partial, path)
    seconds = time.perf_counter() - start
    print("Built in %.0f s" % seconds)
    return seconds


def child_env(tmp_dir):
    """A FiftyOne environment of its own: zoo and database in ``tmp_dir``.

    Set in the environment because FiftyOne reads its configuration once,
    when first imported.
    """
    env = dict(os.environ)
    env.pop("FIFTYONE_DATABASE_URI", None)
    env.update(support.fiftyone_env(tmp_dir))
    return env


def read_through(snapshot):
    """Reads every file of the snapshot once, so that each scenario's cold
    load starts from the same state: weights in the OS page cache, nothing
    in the process."""
    start = time.perf_counter()
    total = 0
    for root, _, files in os.walk(snapshot, followlinks=True):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                while True:
                    chunk = f.read(64 * 1024 * 1024)
                    if not chunk:
                        break
                    total += len(chunk)
    return total, time.perf_counter() - start


def _run_child(args, env):
    cmd = [sys.executable, os.path.abspath(__file__)] + args
    # stderr (logs, progress) passes through; stdout carries the result
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-3000:])
        raise SystemExit(
            "child %s failed with exit code %d" % (args, proc.returncode)
        )

    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_RESULT_MARKER):
            return json.loads(line[len(_RESULT_MARKER) :])

    return None


def run_scenario(dtype, tmp_dir, args):
    child_args = [
        "--child",
        "scenario",
        "--dtype",
        dtype,
        "--page-max-pixels",
        str(args.page_max_pixels),
        "--page-runs",
        str(args.page_runs),
    ]
    if args.skip_page:
        child_args.append("--skip-page")
    return _run_child(child_args, env=child_env(tmp_dir))


def _fmt(value, spec):
    if value is None:
        return "-"
    return format(value, spec)


def _verdict(ok):
    return "PASS" if ok else "FAIL"


def print_table(results, header):
    f32 = results.get("float32") or {}
    bf16 = results.get("bfloat16") or {}

    def both(key):
        return f32.get(key), bf16.get(key)

    warm = [v for v in both("warm_reload_s") if v is not None]
    warm_ok = bool(warm) and max(warm) < WARM_RELOAD_TARGET_S
    loads = [v for v in both("load_count") if v is not None]
    loads_ok = bool(loads) and all(v == 1 for v in loads)
    text_bf16 = bf16.get("text_s")
    text_ok = text_bf16 is not None and text_bf16 <= BF16_TEXT_TARGET_S
    ratios = [
        v
        for key in ("rss_ratio", "peak_ratio")
        for v in both(key)
        if v is not None
    ]
    ratio_ok = bool(ratios) and max(ratios) <= MEMORY_RATIO_TARGET

    rows = [
        ("cold load_zoo_model (s)", both("cold_load_s"), ".2f", "", ""),
        ("first use: text + small page (s)", both("first_use_s"), ".2f"),
        (
            "warm re-load, other options (s)",
            both("warm_reload_s"),
            ".3f",
            "< %g" % WARM_RELOAD_TARGET_S,
            _verdict(warm_ok),
        ),
        (
            "weight loads after 2 models",
            both("load_count"),
            "d",
            "1",
            _verdict(loads_ok),
        ),
        (
            "text query, median of %d (s)" % TEXT_RUNS,
            both("text_s"),
            ".3f",
            "bf16 <= %g" % BF16_TEXT_TARGET_S,
            _verdict(text_ok),
        ),
        ("  text tokens", both("text_tokens"), "d"),
        ("  CPU share (*)", both("text_cpu_share"), ".2f"),
        ("page warm-up, batch 1 (s)", both("page_warmup_s"), ".2f"),
        ("page, batch 1 (s)", both("page_s"), ".2f"),
        ("  page tokens", both("page_tokens"), "d"),
        ("  CPU share (*)", both("page_cpu_share"), ".2f"),
        ("RSS, one model used (GB)", both("rss_one"), ".2f"),
        ("RSS, two models used (GB)", both("rss_two"), ".2f"),
        ("  of which mapped files (GB)", both("rss_file_two"), ".2f"),
        (
            "  two / one",
            both("rss_ratio"),
            ".3f",
            "<= %g" % MEMORY_RATIO_TARGET,
            _verdict(ratio_ok),
        ),
        ("peak RSS, one model (GB)", both("peak_one"), ".2f"),
        ("peak RSS, two models (GB)", both("peak_two"), ".2f"),
        (
            "  two / one",
            both("peak_ratio"),
            ".3f",
            "<= %g" % MEMORY_RATIO_TARGET,
            _verdict(ratio_ok),
        ),
        ("peak RSS, whole run (GB)", both("peak_end"), ".2f"),
    ]

    print()
    print(header)
    line = "%-33s %10s %10s   %-12s %s"
    print(line % ("", "float32", "bfloat16", "target", "result"))
    print("-" * 75)
    for row in rows:
        label, (a, b), spec = row[:3]
        target, verdict = row[3:] if len(row) > 3 else ("", "")
        print(line % (label, _fmt(a, spec), _fmt(b, spec), target, verdict))
    print("-" * 75)
    print(
        "(*) CPU time / (wall time x %s threads) during the timed runs; "
        "well below 1 means other processes competed for the cores"
        % (f32 or bf16).get("threads", "?")
    )
    return warm_ok and loads_ok and text_ok and ratio_ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint",
        default=DEFAULT_CHECKPOINT,
        help="full-size random snapshot folder, built when missing "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run on the tiny test checkpoint instead",
    )
    parser.add_argument(
        "--page-max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="max_pixels of the page run; smaller is faster "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--page-runs",
        type=int,
        default=1,
        help="timed page runs after one warm-up; the median is shown",
    )
    parser.add_argument(
        "--skip-page", action="store_true", help="skip the page latency"
    )
    parser.add_argument(
        "--dtypes",
        default=",".join(DTYPES),
        help="comma-separated dtypes to run (default %(default)s)",
    )
    parser.add_argument(
        "--no-read-through",
        action="store_true",
        help="do not read the snapshot into the OS page cache before each "
        "scenario",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "build":
        return child_build(args.checkpoint)
    if args.child == "scenario":
        return child_scenario(args)

    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    unknown = sorted(set(dtypes) - set(DTYPES))
    if unknown:
        parser.error("unknown dtype(s) %s" % ", ".join(unknown))

    started = time.perf_counter()
    if args.quick:
        snapshot = support.TINY_SNAPSHOT
        build_s = None
    else:
        snapshot = os.path.abspath(args.checkpoint)
        build_s = ensure_checkpoint(snapshot)

    tmp_dir = tempfile.mkdtemp(prefix="jina-v4-bench-sharing-")
    results = {}
    try:
        # a link to the weights, so that a 7.5 GB snapshot is never copied
        support.install_source(
            os.path.join(tmp_dir, "zoo"), snapshot=snapshot, symlink=True
        )
        for dtype in dtypes:
            if not args.no_read_through:
                nbytes, seconds = read_through(snapshot)
                print(
                    "[%s] read %.2f GB of snapshot into the page cache in "
                    "%.1f s" % (dtype, nbytes / GB, seconds)
                )
            print("[%s] running scenario ..." % dtype)
            sys.stdout.flush()
            start = time.perf_counter()
            results[dtype] = run_scenario(dtype, tmp_dir, args)
            print("[%s] done in %.0f s" % (dtype, time.perf_counter() - start))
            sys.stdout.flush()
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)

    info = next((r for r in results.values() if r), {})
    header = (
        "Jina v4 %s checkpoint (%s), torch %s, %s CPU threads, page %s "
        "at max_pixels=%d"
        % (
            "tiny" if args.quick else "full-size random",
            snapshot,
            info.get("torch", "?"),
            info.get("threads", "?"),
            info.get("page_size", "-"),
            args.page_max_pixels,
        )
    )
    ok = print_table(results, header)
    if build_s is not None:
        print("checkpoint build: %.0f s" % build_s)
    print(
        "cold load = first load_zoo_model in a fresh process, with the "
        "snapshot %s the OS page cache"
        % ("not forced into" if args.no_read_through else "read into")
    )
    shares = [
        r.get(k)
        for r in results.values()
        if r
        for k in ("text_cpu_share", "page_cpu_share")
        if r.get(k) is not None
    ]
    if shares and min(shares) < 0.8:
        print(
            "WARNING: other processes competed for the CPU during timed "
            "runs (CPU share %.2f); latencies are inflated" % min(shares)
        )
    print("wall time: %.0f s" % (time.perf_counter() - started))
    print("overall: %s" % _verdict(ok))
    return 0


# --------------------------------------------------------------------------
# Children
# --------------------------------------------------------------------------


def child_build(out_dir):
    import logging

    logging.basicConfig(level=logging.INFO)
    from jina_embeddings_v4.testing.tiny_checkpoint import write_checkpoint

    write_checkpoint(out_dir, full_size=True)
    print(_RESULT_MARKER + json.dumps({"out_dir": out_dir}))
    return 0


def _rss_now():
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _rss_file():
    """The file-backed part of the resident set (mapped snapshot pages)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssFile:"):
                return int(line.split()[1]) * 1024
    return 0


def _peak_rss():
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _second_options(snapshot_dir):
    dims = _matryoshka_dims(snapshot_dir)
    dim = 512 if 512 in dims else dims[len(dims) // 2]
    return {
        "task": "text-matching",
        "classes": list(CLASSES),
        "truncate_dim": dim,
    }


def _matryoshka_dims(snapshot_dir):
    with open(os.path.join(snapshot_dir, "config.json")) as f:
        return [int(d) for d in json.load(f)["matryoshka_dims"]]


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _timed_runs(fn, n, threads):
    """Times ``n`` calls; also returns the share of ``threads`` cores the
    process got meanwhile (well below 1: other processes competed)."""
    cpu, wall = time.process_time(), time.perf_counter()
    times = [_timed(fn)[0] for _ in range(n)]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return times, cpu / (wall * threads)


def child_scenario(args):
    """One dtype: cold load, warm re-load, memory, text and page latency.

    Memory is read after each model has embedded a text and a small page:
    bf16 weights may stay memory-mapped from the snapshot and only become
    resident when first used, so reading it right after loading would
    miss them.

    Prints one JSON line with the figures on stdout.
    """
    dtype = args.dtype
    from jina_embeddings_v4.testing import documents

    import torch

    import fiftyone.zoo as foz

    zoo_dir = os.environ["FIFTYONE_MODEL_ZOO_DIR"]
    snapshot = os.path.join(
        zoo_dir, support.ZOO_PACKAGE, support.SNAPSHOT_FOLDER
    )
    threads = torch.get_num_threads()
    result = {"dtype": dtype, "torch": torch.__version__, "threads": threads}
    small_page, _ = documents.make_page(PAGE_KIND, "small", scale=0.25)

    def use(m):
        m.embed_prompt(QUERY)
        m.embed(small_page)

    # One model, cold, then used once
    cold_s, model = _timed(lambda: foz.load_zoo_model(MODEL_NAME, dtype=dtype))
    _progress(dtype, "cold load %.2f s" % cold_s)
    first_use_s, _ = _timed(lambda: use(model))
    rss_one, peak_one = _rss_now(), _peak_rss()
    _progress(dtype, "first use %.2f s" % first_use_s)

    # A second, differently configured model alongside, then used once
    cache = sys.modules["jina_embeddings_v4.model.encoder_cache"]
    options = _second_options(snapshot)
    warm_s, other = _timed(
        lambda: foz.load_zoo_model(MODEL_NAME, dtype=dtype, **options)
    )
    load_count = cache.load_count()
    _progress(dtype, "warm re-load %.3f s" % warm_s)
    use(other)
    rss_two, peak_two = _rss_now(), _peak_rss()

    result.update(
        cold_load_s=cold_s,
        first_use_s=first_use_s,
        warm_reload_s=warm_s,
        load_count=load_count,
        shared_encoder=other.encoder is model.encoder,
        other_dim=int(other.embed_prompt(QUERY).shape[-1]),
        model_dtype=str(model.encoder.dtype).replace("torch.", ""),
        rss_one=rss_one / GB,
        rss_two=rss_two / GB,
        rss_file_two=_rss_file() / GB,
        peak_one=peak_one / GB,
        peak_two=peak_two / GB,
        rss_ratio=rss_two / float(rss_one),
        peak_ratio=peak_two / float(peak_one),
    )

    # Text-query latency (model already warm)
    encoder = model.encoder
    enc_module = sys.modules["jina_embeddings_v4.model.encoder"]
    prefix = enc_module.text_prefix(
        model.config.task, model.config.query_prompt_name
    )
    result["text_tokens"] = _n_tokens(encoder, prefix + QUERY)
    times, share = _timed_runs(
        lambda: model.embed_prompt(QUERY), TEXT_RUNS, threads
    )
    result.update(
        text_s=statistics.median(times),
        text_runs_s=times,
        text_cpu_share=share,
    )
    _progress(dtype, "text query %.3f s" % result["text_s"])

    # Page latency: one warm-up at the full size, then the timed runs
    if not args.skip_page:
        page, _ = documents.make_page(PAGE_KIND, "bench", scale=PAGE_SCALE)
        template = _n_tokens(encoder, enc_module.IMAGE_PROMPT_HEAD)
        template += _n_tokens(encoder, enc_module.IMAGE_PROMPT_TAIL)
        result["page_size"] = "%dx%d" % page.size
        result["page_tokens"] = template + encoder.count_image_tokens(
            page.size, max_pixels=args.page_max_pixels
        )
        if args.page_max_pixels != model.config.max_pixels:
            model = foz.load_zoo_model(
                MODEL_NAME, dtype=dtype, max_pixels=args.page_max_pixels
            )
        warmup_s, _ = _timed(lambda: model.embed(page))
        _progress(dtype, "page warm-up %.2f s" % warmup_s)
        times, share = _timed_runs(
            lambda: model.embed(page), max(1, args.page_runs), threads
        )
        result.update(
            page_warmup_s=warmup_s,
            page_s=statistics.median(times),
            page_runs_s=times,
            page_cpu_share=share,
        )
        _progress(dtype, "page %.2f s" % result["page_s"])

    result["peak_end"] = _peak_rss() / GB
    result["final_load_count"] = cache.load_count()
    print(_RESULT_MARKER + json.dumps(result))
    sys.stdout.flush()
    return 0


def _n_tokens(encoder, text):
    return len(encoder.tokenizer(text, add_special_tokens=False)["input_ids"])


def _progress(dtype, text):
    sys.stderr.write("[%s] %s\n" % (dtype, text))
    sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
