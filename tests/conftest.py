"""Test setup: an isolated FiftyOne environment and the repo as a package.

FiftyOne reads its configuration from the environment when first imported
(and data loader workers and the App server see only the environment), so
everything is set here, before any test module imports fiftyone.
"""

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(REPO_ROOT, "tests", "data")
TINY_SNAPSHOT = os.path.join(DATA_DIR, "jina-v4-tiny")
GOLDENS_DIR = os.path.join(DATA_DIR, "jina-v4-tiny-goldens")

# The repo imported directly, for unit tests of its modules. FiftyOne
# imports its own copy, from the zoo folder, as "jina_embeddings_v4": the
# different name keeps the two apart.
SOURCE_PACKAGE = "jina_v4_src"
ZOO_PACKAGE = "jina_embeddings_v4"
MODEL_NAME = "jinaai/jina-embeddings-v4"

_TMP = tempfile.mkdtemp(prefix="jina-v4-tests-")
# Registered before fiftyone is imported, so it runs after FiftyOne's own
# exit handler has stopped the database that lives in this folder.
atexit.register(shutil.rmtree, _TMP, True)
os.environ.update(
    FIFTYONE_DO_NOT_TRACK="true",
    FIFTYONE_DATABASE_DIR=os.path.join(_TMP, "db"),
    FIFTYONE_MODEL_ZOO_DIR=os.path.join(_TMP, "zoo"),
    FIFTYONE_DATABASE_VALIDATION="false",
    FIFTYONE_SHOW_PROGRESS_BARS="false",
    HF_HUB_OFFLINE="1",
    TOKENIZERS_PARALLELISM="false",
)
os.environ.pop("FIFTYONE_DATABASE_URI", None)


def import_repo_as_package(name=SOURCE_PACKAGE):
    """Imports the repo root as a package named ``name``."""
    if name in sys.modules:
        return sys.modules[name]

    spec = importlib.util.spec_from_file_location(
        name,
        os.path.join(REPO_ROOT, "__init__.py"),
        submodule_search_locations=[REPO_ROOT],
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


import_repo_as_package()

_SOURCE_FILES_IGNORED = shutil.ignore_patterns(
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


def install_source(zoo_dir, folder=ZOO_PACKAGE, snapshot=TINY_SNAPSHOT):
    """Copies the source into a zoo folder, with a snapshot as weights."""
    dest = os.path.join(zoo_dir, folder)
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    shutil.copytree(REPO_ROOT, dest, ignore=_SOURCE_FILES_IGNORED)
    if snapshot is not None:
        shutil.copytree(snapshot, os.path.join(dest, "jina-embeddings-v4"))
    return dest


@pytest.fixture(scope="session")
def tmp_root():
    return _TMP


@pytest.fixture(scope="session")
def src():
    """The repo's modules, imported directly."""
    return import_repo_as_package()


@pytest.fixture(scope="session")
def tiny_snapshot():
    return TINY_SNAPSHOT


@pytest.fixture(scope="session")
def encoder(src):
    """A float32 CPU encoder on the tiny fixture checkpoint."""
    from jina_v4_src.encoder import JinaV4Encoder

    return JinaV4Encoder(TINY_SNAPSHOT, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def zoo_source():
    """The source installed in FIFTYONE_MODEL_ZOO_DIR with the tiny weights,
    as a user's zoo folder looks after download."""
    return install_source(os.environ["FIFTYONE_MODEL_ZOO_DIR"])
