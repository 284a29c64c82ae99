"""What the benchmarks share: timing, --threads and an isolated FiftyOne.

The benchmarks run as scripts (Python puts this folder first on sys.path)
and import the installed package; ``_common.support`` is
``jina_embeddings_v4.testing.support``: the checkout's paths, the zoo
folder install and a private FiftyOne database, as the tests use them.
"""

import atexit
import os
import shutil
import sys
import tempfile
import time

from jina_embeddings_v4.testing import support

__all__ = [
    "add_threads_option",
    "best_times",
    "busy_warning",
    "isolate_fiftyone",
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


def isolate_fiftyone():
    """Gives FiftyOne a database and zoo folder of its own.

    Must run before fiftyone is imported: it reads its configuration from
    the environment then. FiftyOne's own database service would attach to
    any FiftyOne database already running for this user (whatever its
    folder), so this starts a private ``mongod`` on a free local port and
    points ``FIFTYONE_DATABASE_URI`` at it. Returns the temporary folder.
    """
    if "fiftyone" in sys.modules:
        raise RuntimeError("fiftyone was imported before isolate_fiftyone")

    tmp = tempfile.mkdtemp(prefix="bench-fiftyone-")
    atexit.register(shutil.rmtree, tmp, True)  # runs after mongod's stop
    os.environ.update(support.fiftyone_env(tmp))
    os.environ["FIFTYONE_DATABASE_URI"] = support.start_private_mongod(
        os.environ["FIFTYONE_DATABASE_DIR"]
    )
    return tmp
