"""What the benchmarks share: timing, --threads, and tests/ on sys.path.

The benchmarks run as scripts, so this folder is first on sys.path. Each
imports this module first; it puts tests/ on sys.path, so that ``import
support`` (also offered here as ``_common.support``) gives them
tests/support.py: the repository's paths, its import as a package, the zoo
folder install and a private FiftyOne database, as the tests use them.
"""

import os
import sys
import time

TESTS_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"
)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

import support  # noqa: E402

__all__ = [
    "TESTS_DIR",
    "add_threads_option",
    "best_times",
    "busy_warning",
    "set_threads",
    "support",
]


def add_threads_option(parser):
    """Adds ``--threads`` (torch's CPU threads) to an argument parser."""
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's own choice)",
    )


def set_threads(parser, args):
    """Applies ``--threads`` once the arguments are parsed."""
    if args.threads is None:
        return
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    import torch

    torch.set_num_threads(args.threads)


def best_times(fns, repeats):
    """Runs each function ``repeats`` times, interleaved, so slow drift of
    the machine hits all alike; returns the best seconds of each."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def busy_warning():
    """A warning line when other work already loads the CPUs (then the
    threads of the processes contend and timings swing several-fold)."""
    import torch  # here, so that importing this module stays light

    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    if load < cpus:
        return None
    hint = "rerun later"
    if torch.get_num_threads() > 1:
        hint += " or with --threads 1"
    return (
        "WARNING: load average %.1f on %d CPUs before starting: other work "
        "is running, so timings are unreliable (%s)" % (load, cpus, hint)
    )
