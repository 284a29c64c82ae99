"""Benchmarks compute_embeddings through FiftyOne against the bare encoder.

Installs the zoo source with the tiny checkpoint as its weights in a
temporary FiftyOne zoo folder (with a private temporary database), loads
it with ``foz.load_zoo_model`` and times, in one process and on the same
images and batch size:

(a) ``model.encoder.encode_images(filepaths, batch_size=B)``, and
(b) ``dataset.compute_embeddings(model, batch_size=B)``, with FiftyOne's
    default data loader workers and with ``num_workers=0``.

All are warmed up first, then run alternately; the best of the repeats
counts. It prints the throughput ratio (b)/(a) against the 0.9 target,
and the forward passes a ``compute_embeddings`` call makes for batch sizes
1, 4 and 8 next to the ``ceil(n / B)`` that honouring batch_size means.

Usage::

    python benchmarks/bench_fiftyone.py            # 48 pages, batch 8
    python benchmarks/bench_fiftyone.py --quick    # smoke test
"""

import argparse
import atexit
import importlib.util
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_SNAPSHOT = os.path.join(_REPO_ROOT, "tests", "data", "jina-v4-tiny")
MODEL_NAME = "jinaai/jina-embeddings-v4"
ZOO_FOLDER = "jina_embeddings_v4"
SNAPSHOT_FOLDER = "jina-embeddings-v4"
TARGET_RATIO = 0.9
BATCH_SIZES = (1, 4, 8)

# What a user's zoo folder holds of this repository: the source only
_NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".ci",
    ".pytest_cache",
    "__pycache__",
    "*.pyc",
    "benchmarks",
    "examples",
    "scripts",
    "tests",
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
    atexit.register(shutil.rmtree, tmp, True)  # runs after the stop below
    db_dir = os.path.join(tmp, "db")
    uri = _start_mongod(db_dir)
    os.environ.update(
        FIFTYONE_DATABASE_DIR=db_dir,
        FIFTYONE_DATABASE_URI=uri,
        FIFTYONE_MODEL_ZOO_DIR=os.path.join(tmp, "zoo"),
        FIFTYONE_DO_NOT_TRACK="true",
        FIFTYONE_DATABASE_VALIDATION="false",
        FIFTYONE_SHOW_PROGRESS_BARS="false",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return tmp


def _start_mongod(db_dir, timeout=60):
    """Starts FiftyOne's bundled mongod on ``db_dir``; stops it at exit."""
    spec = importlib.util.find_spec("fiftyone")  # without importing it
    mongod = os.path.join(
        spec.submodule_search_locations[0], "db", "bin", "mongod"
    )
    os.makedirs(db_dir)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    log_path = os.path.join(db_dir, "mongod.log")
    proc = subprocess.Popen(
        [
            mongod,
            "--dbpath",
            db_dir,
            "--bind_ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--nounixsocket",
            "--logpath",
            log_path,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(_stop, proc)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                "mongod exited with %d; see %s" % (proc.returncode, log_path)
            )
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("mongod did not listen on %d" % port)
            time.sleep(0.2)
    return "mongodb://127.0.0.1:%d" % port


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tiny_snapshot(tmp):
    """The tiny checkpoint of the tests, or a fresh one when it is absent."""
    if os.path.isfile(os.path.join(TINY_SNAPSHOT, "config.json")):
        return TINY_SNAPSHOT

    # tiny_checkpoint has no relative imports; load just that file
    spec = importlib.util.spec_from_file_location(
        "_bench_tiny_checkpoint",
        os.path.join(_REPO_ROOT, "tiny_checkpoint.py"),
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_checkpoint(os.path.join(tmp, "tiny"), seed=0)


def install_source(zoo_dir, snapshot):
    """Lays the source out in ``zoo_dir`` as FiftyOne keeps a downloaded
    remote source, with ``snapshot`` as the model's weights folder."""
    dest = os.path.join(zoo_dir, ZOO_FOLDER)
    shutil.copytree(_REPO_ROOT, dest, ignore=_NOT_SOURCE)
    shutil.copytree(snapshot, os.path.join(dest, SNAPSHOT_FOLDER))
    return dest


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


def _verdict(ok):
    return "PASS" if ok else "FAIL"


def run(args, tmp):
    warning = busy_warning()  # before any work of our own

    import fiftyone as fo
    import fiftyone.utils.torch as fout
    import fiftyone.zoo as foz

    sys.path.insert(0, os.path.join(_REPO_ROOT, "examples"))
    import documents

    n = args.n
    batch = args.batch_size
    repeats = args.repeats
    default_workers = fout.recommend_num_workers(None)

    install_source(os.environ["FIFTYONE_MODEL_ZOO_DIR"], tiny_snapshot(tmp))
    records = documents.write_dataset_images(
        os.path.join(tmp, "pages"), n=n, seed=0, scale=0.5
    )
    dataset = fo.Dataset("bench-fiftyone-%d" % os.getpid())
    dataset.add_samples([fo.Sample(filepath=r["filepath"]) for r in records])
    filepaths = dataset.values("filepath")

    load_options = {}
    if args.dtype:
        load_options["dtype"] = args.dtype
    model = foz.load_zoo_model(MODEL_NAME, **load_options)
    encoder = model.encoder
    config = model.config
    tokens = [
        encoder.count_image_tokens(
            (r["width"], r["height"]), config.max_pixels, config.min_pixels
        )
        for r in records
    ]

    print(
        "fiftyone %s, torch %s, %d CPU threads, load average %.2f"
        % (
            fo.__version__,
            torch.__version__,
            torch.get_num_threads(),
            os.getloadavg()[0],
        )
    )
    print(
        "model %s from the zoo folder (%s), %s on %s, tiny checkpoint"
        % (
            type(model).__name__,
            type(model).__module__,
            str(encoder.dtype).replace("torch.", ""),
            encoder.device,
        )
    )
    print(
        "%d pages at scale 0.5 (%d-%d image tokens), batch_size %d, "
        "default num_workers here %d, best of %d"
        % (n, min(tokens), max(tokens), batch, default_workers, repeats)
    )
    if warning:
        print(warning)

    def direct():
        return encoder.encode_images(
            filepaths,
            task=config.task,
            batch_size=batch,
            truncate_dim=config.truncate_dim,
            max_pixels=config.max_pixels,
            min_pixels=config.min_pixels,
        ).single

    def direct_fiftyone_batches():
        # the batches FiftyOne forms: dataset order, so not length-sorted
        return np.concatenate(
            [
                encoder.encode_images(
                    filepaths[i : i + batch],
                    task=config.task,
                    batch_size=batch,
                    truncate_dim=config.truncate_dim,
                    max_pixels=config.max_pixels,
                    min_pixels=config.min_pixels,
                ).single
                for i in range(0, n, batch)
            ]
        )

    def through_fiftyone(num_workers, field="bench_emb", batch_size=batch):
        dataset.compute_embeddings(
            model,
            embeddings_field=field,
            batch_size=batch_size,
            num_workers=num_workers,
        )

    paths = [
        ("(a) encoder.encode_images(filepaths)", direct),
        ("    encoder, FiftyOne's batches", direct_fiftyone_batches),
        (
            "(b) compute_embeddings, workers %d" % default_workers,
            lambda: through_fiftyone(None),
        ),
        ("(b) compute_embeddings, workers 0", lambda: through_fiftyone(0)),
    ]
    forwards = []
    for _, fn in paths:  # warm-up, and forward passes per run
        before = encoder.forward_calls
        fn()
        forwards.append(encoder.forward_calls - before)
    times = best_times([fn for _, fn in paths], repeats)

    print()
    print("throughput")
    print(
        "  %-38s %7s %9s %8s %9s %6s"
        % ("path", "s", "images/s", "extra s", "forwards", "ratio")
    )
    for (name, _), seconds, calls in zip(paths, times, forwards):
        print(
            "  %-38s %7.3f %9.1f %8.3f %9d %6.2f"
            % (
                name,
                seconds,
                n / seconds,
                seconds - times[0],
                calls,
                times[0] / seconds,
            )
        )

    stored = np.stack(dataset.values("bench_emb"))
    reference = direct()
    agreement = float(np.min(np.sum(stored * reference, axis=1)))

    print()
    print("ratio (b)/(a), images/s through FiftyOne / encoder's own")
    verdicts = []
    for k, label in (
        (2, "num_workers default (%d)" % default_workers),
        (3, "num_workers 0"),
    ):
        ratio = times[0] / times[k]
        verdicts.append(ratio >= TARGET_RATIO)
        print(
            "  %-34s %5.2f  %s (target >= %.1f)"
            % (label, ratio, _verdict(ratio >= TARGET_RATIO), TARGET_RATIO)
        )
    print(
        "  %-34s %5.2f  (FiftyOne overhead only)"
        % ("default vs encoder, same batches", times[1] / times[2])
    )
    print(
        "  %-34s %.5f (min cosine, stored vs encoder)"
        % ("stored embeddings agree", agreement)
    )

    print()
    print("batch_size honoured: forward passes of one compute_embeddings")
    print(
        "  %-10s %10s %16s %16s %7s"
        % (
            "batch_size",
            "expected",
            "workers %d" % default_workers,
            "workers 0",
            "",
        )
    )
    honoured = True
    for size in BATCH_SIZES:
        expected = math.ceil(n / size)
        counts = []
        for workers in (None, 0):
            before = encoder.forward_calls
            through_fiftyone(
                workers, field="bench_b%d" % size, batch_size=size
            )
            counts.append(encoder.forward_calls - before)
        ok = all(c == expected for c in counts)
        honoured = honoured and ok
        print(
            "  %-10d %10d %16d %16d %7s"
            % (size, expected, counts[0], counts[1], "OK" if ok else "WRONG")
        )

    print()
    print(
        "summary: ratio %s (default workers), %s (workers 0); batch_size "
        "honoured %s"
        % (
            _verdict(verdicts[0]),
            _verdict(verdicts[1]),
            _verdict(honoured),
        )
    )
    dataset.delete()
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, default=None, help="pages (default 48, 16 quick)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="batch size (default 8)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed runs of each path, best kept (default 3, 1 quick)",
    )
    parser.add_argument(
        "--dtype",
        default=None,
        choices=("auto", "float32", "bfloat16", "float16"),
        help="passed to load_zoo_model (default: the model's own, auto)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer pages, one repeat"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's own choice)",
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    if args.n is None:
        args.n = 16 if args.quick else 48
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    for name in ("n", "batch_size", "repeats"):
        if getattr(args, name) < 1:
            parser.error("--%s must be >= 1" % name.replace("_", "-"))

    tmp = isolate_fiftyone()
    return run(args, tmp)


if __name__ == "__main__":
    sys.exit(main())
