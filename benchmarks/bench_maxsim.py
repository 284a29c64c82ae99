"""Benchmarks blocked MaxSim scoring against a per-pair loop and its memory.

Part (a) times :func:`late_interaction.maxsim_scores` against a plain Python
loop over (query, document) pairs on the same data and checks they agree.
Part (b) runs a large corpus (float16 document storage, as users keep it)
in a fresh subprocess so its peak resident memory can be read back from
``getrusage`` without anything from part (a) inflating it.

Usage::

    python benchmarks/bench_maxsim.py           # full sizes
    python benchmarks/bench_maxsim.py --quick   # smoke test
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

# needs only torch: importing the package pulls in no FiftyOne
from jina_embeddings_v4.scoring.late_interaction import (
    DEFAULT_BLOCK_SIZE,
    maxsim_scores,
)

SPEEDUP_TARGET = 5.0
AGREEMENT_TOL = 1e-4
MEMORY_TARGET_BYTES = 2 * 1000**3  # "2 GB"
GB = 1000**3


def _random_multivectors(n, n_tokens, dim, gen, dtype=torch.float32):
    """Returns ``n`` multi-vectors with unit-norm tokens stored as ``dtype``.

    They are views into one preallocated tensor, filled chunk by chunk, so
    float32 temporaries stay small and do not fragment the heap around the
    (possibly multi-gigabyte) float16 corpus.
    """
    storage = torch.empty((n, n_tokens, dim), dtype=dtype)
    chunk = 64
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = torch.randn(m, n_tokens, dim, generator=gen)
        x /= torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        storage[start : start + m].copy_(x)
        del x
    return list(storage.unbind(0))


def _loop_scores(queries, docs):
    scores = torch.empty(len(queries), len(docs))
    for i, q in enumerate(queries):
        for j, d in enumerate(docs):
            scores[i, j] = (q @ d.T).max(1).values.sum()
    return scores


def _best_time(fn, repeats):
    best = float("inf")
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _rss_now_bytes():
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_speed(n_q, q_len, n_d, d_len, dim, block_size, repeats):
    gen = torch.Generator().manual_seed(0)
    queries = _random_multivectors(n_q, q_len, dim, gen)
    docs = _random_multivectors(n_d, d_len, dim, gen)

    maxsim_scores(queries[:2], docs[:2], block_size=block_size)  # warm-up
    t_block, fast = _best_time(
        lambda: maxsim_scores(queries, docs, block_size=block_size), repeats
    )
    t_loop, slow = _best_time(
        lambda: _loop_scores(queries, docs), max(1, repeats - 1)
    )
    diff = (fast - slow).abs().max().item()
    return {
        "t_block": t_block,
        "t_loop": t_loop,
        "speedup": t_loop / t_block,
        "max_abs_diff": diff,
    }


def memory_child(n_q, q_len, n_d, d_len, dim, block_size):
    """Runs in a subprocess; prints one JSON line with memory figures."""
    rss_runtime = _rss_now_bytes()
    gen = torch.Generator().manual_seed(1)
    queries = _random_multivectors(n_q, q_len, dim, gen)
    docs = _random_multivectors(n_d, d_len, dim, gen, dtype=torch.float16)
    input_bytes = sum(t.nelement() * t.element_size() for t in queries)
    input_bytes += sum(t.nelement() * t.element_size() for t in docs)

    rss_before = _rss_now_bytes()
    start = time.perf_counter()
    scores = maxsim_scores(queries, docs, block_size=block_size)
    seconds = time.perf_counter() - start
    peak = _peak_rss_bytes()
    result = {
        "rss_runtime": rss_runtime,
        "input_bytes": input_bytes,
        "rss_before": rss_before,
        "peak_rss": peak,
        # Upper bound: the high-water mark may predate the call.
        "working_bytes": max(0, peak - rss_before),
        "seconds": seconds,
        "finite": bool(torch.isfinite(scores).all()),
        "shape": list(scores.shape),
    }
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        gpu_scores = maxsim_scores(
            queries, docs, block_size=block_size, device="cuda"
        )
        torch.cuda.synchronize()
        result["gpu_seconds"] = time.perf_counter() - start
        result["gpu_peak_bytes"] = torch.cuda.max_memory_allocated()
        result["gpu_cpu_max_abs_diff"] = (
            (gpu_scores - scores).abs().max().item()
        )
    print(json.dumps(result))


def run_memory(n_q, q_len, n_d, d_len, dim, block_size):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--memory-child",
        "--mem-sizes",
        ",".join(str(v) for v in (n_q, q_len, n_d, d_len, dim)),
        "--block-size",
        str(block_size),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            "memory subprocess failed (%d):\n%s"
            % (proc.returncode, proc.stderr)
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _verdict(ok):
    return "PASS" if ok else "FAIL"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes for a smoke test"
    )
    parser.add_argument("--block-size", type=int, default=DEFAULT_BLOCK_SIZE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-child", action="store_true", help="internal")
    parser.add_argument("--mem-sizes", default="", help="internal")
    args = parser.parse_args(argv)

    if args.memory_child:
        sizes = [int(v) for v in args.mem_sizes.split(",")]
        memory_child(*sizes, block_size=args.block_size)
        return 0

    dim = 128
    if args.quick:
        speed_sizes = (10, 10, 32, 300)
        mem_sizes = (50, 10, 500, 800)
    else:
        speed_sizes = (50, 10, 256, 300)
        mem_sizes = (50, 10, 10000, 800)

    print(
        "torch %s, %d CPU threads, CUDA %s, block_size %d"
        % (
            torch.__version__,
            torch.get_num_threads(),
            "yes" if torch.cuda.is_available() else "no",
            args.block_size,
        )
    )

    n_q, q_len, n_d, d_len = speed_sizes
    speed = run_speed(
        n_q, q_len, n_d, d_len, dim, args.block_size, args.repeats
    )
    speed_ok = speed["speedup"] >= SPEEDUP_TARGET
    agree_ok = speed["max_abs_diff"] <= AGREEMENT_TOL
    print()
    print(
        "(a) speed: %d queries x %d tok vs %d docs x %d tok, %d-d float32"
        % (n_q, q_len, n_d, d_len, dim)
    )
    print("  %-34s %12s" % ("metric", "value"))
    print(
        "  %-34s %11.4fs"
        % ("maxsim_scores (best of %d)" % args.repeats, speed["t_block"])
    )
    print("  %-34s %11.4fs" % ("per-pair Python loop", speed["t_loop"]))
    print(
        "  %-34s %11.1fx  %s (target >= %.0fx)"
        % ("speed-up", speed["speedup"], _verdict(speed_ok), SPEEDUP_TARGET)
    )
    print(
        "  %-34s %12.2e  %s (tol %.0e)"
        % (
            "max |blocked - loop|",
            speed["max_abs_diff"],
            _verdict(agree_ok),
            AGREEMENT_TOL,
        )
    )

    n_q, q_len, n_d, d_len = mem_sizes
    mem = run_memory(n_q, q_len, n_d, d_len, dim, args.block_size)
    data_bytes = mem["peak_rss"] - mem["rss_runtime"]
    work_ok = mem["working_bytes"] < MEMORY_TARGET_BYTES
    data_ok = data_bytes < MEMORY_TARGET_BYTES
    print()
    print(
        "(b) memory: %d queries x %d tok (float32) vs %d docs x %d tok, "
        "%d-d float16, subprocess" % (n_q, q_len, n_d, d_len, dim)
    )
    print("  %-34s %12s" % ("metric", "value"))
    print(
        "  %-34s %10.3f GB"
        % ("RSS after import torch (runtime)", mem["rss_runtime"] / GB)
    )
    print(
        "  %-34s %10.3f GB"
        % ("inputs (queries + docs)", mem["input_bytes"] / GB)
    )
    print("  %-34s %10.3f GB" % ("RSS before call", mem["rss_before"] / GB))
    print("  %-34s %10.3f GB" % ("peak RSS (ru_maxrss)", mem["peak_rss"] / GB))
    print(
        "  %-34s %10.3f GB  %s (target < 2 GB)"
        % (
            "working memory (peak - before)",
            mem["working_bytes"] / GB,
            _verdict(work_ok),
        )
    )
    print(
        "  %-34s %10.3f GB  %s (target < 2 GB)"
        % (
            "inputs + working (peak - runtime)",
            data_bytes / GB,
            _verdict(data_ok),
        )
    )
    print("  %-34s %11.2fs" % ("maxsim_scores time (CPU)", mem["seconds"]))
    print(
        "  %-34s %12s"
        % ("scores finite, shape", "%s %s" % (mem["finite"], mem["shape"]))
    )
    if "gpu_peak_bytes" in mem:
        print(
            "  %-34s %10.3f GB"
            % ("GPU max_memory_allocated", mem["gpu_peak_bytes"] / GB)
        )
        print(
            "  %-34s %11.2fs"
            % ("maxsim_scores time (GPU)", mem["gpu_seconds"])
        )
        print(
            "  %-34s %12.2e" % ("max |GPU - CPU|", mem["gpu_cpu_max_abs_diff"])
        )
    if mem["input_bytes"] >= MEMORY_TARGET_BYTES:
        print(
            "  note: the float16 inputs alone are %.3f GB, so no scorer can "
            "keep inputs + working\n  memory under 2 GB at this size; the "
            "working-memory line is the part\n  maxsim_scores controls."
            % (mem["input_bytes"] / GB)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
