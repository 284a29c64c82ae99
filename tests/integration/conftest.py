"""Test setup: an isolated FiftyOne environment for the installed package.

FiftyOne reads its configuration from the environment when first imported
(and data loader workers and the App server see only the environment), so
everything is set here, before any test module imports fiftyone.

The database is a private mongod on a free port, named by
FIFTYONE_DATABASE_URI: FiftyOne's own database service would attach to any
FiftyOne database already running for this user, whatever
FIFTYONE_DATABASE_DIR says, and other FiftyOne processes could then shut
it down in the middle of the run.
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

from jina_embeddings_v4.testing.support import (
    REPO_ROOT,
    TINY_SNAPSHOT,
    ZOO_PACKAGE,
    fiftyone_env,
    install_source,
    start_private_mongod,
)

# What the test modules import from here
__all__ = [
    "DATA_DIR",
    "GOLDENS_DIR",
    "MODEL_NAME",
    "REPO_ROOT",
    "TINY_SNAPSHOT",
    "ZOO_PACKAGE",
    "install_source",
    "new_dataset",
    "ranking",
    "run_python",
    "slow_shard_script",
    "store_kwargs",
]

DATA_DIR = os.path.join(REPO_ROOT, "tests", "data")
GOLDENS_DIR = os.path.join(DATA_DIR, "jina-v4-tiny-goldens")
MODEL_NAME = "jinaai/jina-embeddings-v4"

if "fiftyone" in sys.modules:
    raise RuntimeError("fiftyone was imported before tests/conftest.py")

_TMP = tempfile.mkdtemp(prefix="jina-v4-tests-")
# Registered first, so it runs last: after FiftyOne's own exit handlers
# and after the mongod whose database lives in this folder has stopped.
atexit.register(shutil.rmtree, _TMP, True)
os.environ.update(fiftyone_env(_TMP))
# In os.environ, so subprocesses and the App server use it too
os.environ["FIFTYONE_DATABASE_URI"] = start_private_mongod(
    os.environ["FIFTYONE_DATABASE_DIR"]
)

@pytest.fixture(scope="session")
def tmp_root():
    return _TMP


@pytest.fixture(scope="session")
def tiny_snapshot():
    return TINY_SNAPSHOT


@pytest.fixture(scope="session")
def encoder():
    """A float32 CPU encoder on the tiny fixture checkpoint, without the
    CPU token budget, so that its batches hold several pages and the tests
    exercise padding (``test_fast_paths`` tests the budget itself)."""
    from jina_embeddings_v4.model.encoder import JinaV4Encoder

    return JinaV4Encoder(
        TINY_SNAPSHOT, device="cpu", dtype="float32", cpu_max_batch_tokens=None
    )


@pytest.fixture(scope="session")
def zoo_source():
    """The source installed in FIFTYONE_MODEL_ZOO_DIR with the tiny weights,
    as a user's zoo folder looks after download."""
    return install_source(os.environ["FIFTYONE_MODEL_ZOO_DIR"])


# -- helpers the test modules share --------------------------------------


def run_python(script, timeout=300, **env):
    """Runs ``script`` (dedented) in a fresh interpreter with this
    environment plus ``env``; asserts it exits 0 and returns its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, **env),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def store_kwargs(store, folder):
    """``compute_similarity`` kwargs of a ``jina_multivector`` index in
    ``folder`` on ``store`` ("lancedb" or "qdrant" local mode)."""
    if store == "lancedb":
        return {"store": "lancedb", "uri": os.path.join(folder, "lance")}
    return {"store": "qdrant", "path": os.path.join(folder, "qdrant")}


def new_dataset(pages, name):
    """A persistent dataset ``name`` (replacing one of that name) of the
    pages written by ``documents.write_dataset_images``."""
    import fiftyone as fo

    ds = fo.Dataset(name, overwrite=True)
    ds.persistent = True
    ds.add_samples([fo.Sample(filepath=p["filepath"]) for p in pages])
    return ds


def ranking(scores, reverse=False):
    """The keys of ``scores`` (id: score), best first (worst first with
    ``reverse``)."""
    return sorted(scores, key=lambda i: scores[i], reverse=not reverse)


# A shard process as `jina-v4 embed-shard` runs it, with two hooks: once
# its model is loaded it touches `ready` and waits for `go` (so two shards
# reach their first write at the same moment), and each call of the zoo
# model's METHOD takes `delay` seconds longer (so a kill lands half way,
# and two runs overlap). Arguments: ready go delay embed-shard-args...
_SLOW_SHARD = r"""
import os, sys, time

ready, go, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])

import fiftyone.zoo as foz
from jina_embeddings_v4.cli import main
from jina_embeddings_v4.fiftyone import zoo

load_zoo_model = foz.load_zoo_model

def load_then_wait(*args, **kwargs):
    model = load_zoo_model(*args, **kwargs)
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.005)
    return model

embed = zoo.JinaEmbeddingsV4.METHOD

def slow_embed(self, images):
    time.sleep(delay)
    return embed(self, images)

foz.load_zoo_model = load_then_wait
zoo.JinaEmbeddingsV4.METHOD = slow_embed
sys.exit(main(["embed-shard"] + sys.argv[4:]))
"""


def slow_shard_script(method):
    """The slow shard process's code, slowing the zoo model's ``method``
    (a method taking a list of images)."""
    if not method.isidentifier():
        raise ValueError("not a method name: %r" % (method,))
    return _SLOW_SHARD.replace("METHOD", method)
