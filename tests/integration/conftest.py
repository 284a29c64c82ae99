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
import sys
import tempfile

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
