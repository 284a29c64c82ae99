"""Helpers shared by the tests and the benchmarks of a checkout.

Importing this module has no side effects: it sets no environment
variables, starts no process and does not import FiftyOne.
tests/conftest.py builds the test environment from it; the benchmarks
import it too. The paths below are a checkout's (an editable install):
``tests/data``, ``tests/.cache``.
"""

import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import time

from .. import zoo_source

REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
TINY_SNAPSHOT = os.path.join(REPO_ROOT, "tests", "data", "jina-v4-tiny")

# The zoo folder FiftyOne keeps the source in (the manifest's name), and
# the weights folder inside it (the manifest's base_filename)
ZOO_PACKAGE = zoo_source.SOURCE_NAME
SNAPSHOT_FOLDER = zoo_source.WEIGHTS_FOLDER

# What of this checkout is not part of the zoo source, as a user's zoo
# folder holds it
SOURCE_IGNORE = shutil.ignore_patterns(
    ".venv",
    ".git",
    "tests",
    "benchmarks",
    "examples",
    "__pycache__",
    "*.pyc",
    ".ci",
    "scripts",
    ".pytest_cache",
)


CI_ENV = "JINA_V4_CI"


def system_deps_required():
    """In CI (``JINA_V4_CI=1``, set by .ci/run) the tests that need system
    packages (Debian's chromium, PDFs from Debian packages) must run: a
    missing one is a failure, not a skip."""
    return os.environ.get(CI_ENV) == "1"


# Real PDFs from Debian packages (scripts/setup_test_system.sh fetches them
# into tests/.cache, or they are installed)
DEBIAN_PDFS = (
    "usr/share/doc/libtasn1-doc/libtasn1.pdf",
    "usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf",
)
DEBIAN_PDF_CACHE = os.path.join(
    REPO_ROOT, "tests", ".cache", "debian-pdfs", "root"
)


def debian_pdfs():
    """The paths of the Debian PDFs that are here, extracted or installed."""
    found = []
    for rel in DEBIAN_PDFS:
        for root in (DEBIAN_PDF_CACHE, "/"):
            path = os.path.join(root, rel)
            if os.path.isfile(path):
                found.append(path)
                break
    return found


def fiftyone_env(tmp_dir):
    """Environment variables that give FiftyOne a database folder and a zoo
    folder in ``tmp_dir`` and keep it, and the Hugging Face Hub, quiet and
    offline. FiftyOne reads them once, when first imported."""
    return {
        "FIFTYONE_DO_NOT_TRACK": "true",
        "FIFTYONE_DATABASE_DIR": os.path.join(tmp_dir, "db"),
        "FIFTYONE_MODEL_ZOO_DIR": os.path.join(tmp_dir, "zoo"),
        "FIFTYONE_DATABASE_VALIDATION": "false",
        "FIFTYONE_SHOW_PROGRESS_BARS": "false",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def install_source(
    zoo_dir, folder=ZOO_PACKAGE, snapshot=TINY_SNAPSHOT, symlink=False
):
    """Lays the source out in ``zoo_dir`` as FiftyOne keeps a remote source
    downloaded by URL (this checkout's files, the package's copy included),
    with ``snapshot`` as the model's weights folder.

    Args:
        zoo_dir: the zoo folder (FIFTYONE_MODEL_ZOO_DIR)
        folder: the source's folder in it; replaced when it exists
        snapshot: the weights, or None to install the source alone
        symlink: link to ``snapshot`` instead of copying it (for a
            full-size checkpoint)

    Returns:
        the source's folder
    """
    dest = os.path.join(zoo_dir, folder)
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    shutil.copytree(REPO_ROOT, dest, ignore=SOURCE_IGNORE)
    if snapshot is not None:
        weights = os.path.join(dest, SNAPSHOT_FOLDER)
        if symlink:
            os.symlink(os.path.abspath(snapshot), weights)
        else:
            shutil.copytree(snapshot, weights)
    return dest


def expected_zero_shot_labels(model, filepaths, classes, prompts):
    """Zero-shot labels computed independently of the zoo model: the
    encoder's multi vectors of the class prompts and of each page, and mean
    MaxSim one pair at a time."""
    import numpy as np

    enc = model.encoder
    class_multi = enc.encode_texts(
        prompts,
        task=model.config.task,
        prompt_name="query",
        return_single=False,
        return_multi=True,
    ).multi
    pages = enc.encode_images(
        filepaths,
        task=model.config.task,
        return_single=False,
        return_multi=True,
    ).multi
    labels = []
    for page in pages:
        scores = [float((q @ page.T).max(axis=1).mean()) for q in class_multi]
        labels.append(classes[int(np.argmax(scores))])
    return labels


def start_private_mongod(db_dir, timeout=60):
    """Starts FiftyOne's bundled ``mongod`` on ``db_dir`` and a free local
    port; returns its URI, for FIFTYONE_DATABASE_URI.

    FiftyOne's own database service attaches to any FiftyOne database
    already running for this user, whatever FIFTYONE_DATABASE_DIR says, so
    concurrent FiftyOne processes would share (and could shut down) one
    database. A ``mongod`` of our own avoids that. Call this before
    fiftyone is imported: it reads FIFTYONE_DATABASE_URI then.

    ``mongod`` is stopped at exit by this process (not by forked children
    such as data loader workers). atexit runs its handlers last in, first
    out: register the removal of ``db_dir`` (or a folder above it) before
    calling this, and it runs after ``mongod`` has stopped. ``mongod`` runs
    in a session of its own, so a Ctrl-C at the terminal interrupts the
    caller (pytest, say), which cleans up with the database still there.
    """
    mongod = _find_mongod()
    os.makedirs(db_dir, exist_ok=True)
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
        start_new_session=True,
    )
    atexit.register(_stop, proc, os.getpid())
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                "mongod exited with %d:\n%s"
                % (proc.returncode, _tail(log_path))
            )
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                _stop(proc, os.getpid())
                raise RuntimeError(
                    "mongod did not listen on port %d within %d s:\n%s"
                    % (port, timeout, _tail(log_path))
                )
            time.sleep(0.2)
    return "mongodb://127.0.0.1:%d" % port


def _find_mongod():
    """FiftyOne's ``mongod``, where FiftyOne looks for it, found without
    importing fiftyone (that would read its configuration too early)."""
    candidates = []
    spec = importlib.util.find_spec("fiftyone")
    if spec is not None and spec.submodule_search_locations:
        package_dir = spec.submodule_search_locations[0]
        candidates.append(os.path.join(package_dir, "db", "bin", "mongod"))
    candidates.append(
        os.path.join(os.path.expanduser("~"), ".fiftyone", "bin", "mongod")
    )
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path

    raise RuntimeError(
        "FiftyOne's mongod not found; looked for %s" % " and ".join(candidates)
    )


def _stop(proc, owner_pid):
    if os.getpid() != owner_pid or proc.poll() is not None:
        return

    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(path, n_chars=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n_chars:]
    except OSError:
        return "(no log at %s)" % path
