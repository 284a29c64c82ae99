"""The on-disk snapshot of jinaai/jina-embeddings-v4: check and download.

Kept free of torch and transformers: FiftyOne calls ``download_model`` on
every ``load_zoo_model`` (a folder-valued ``base_filename`` never counts as
downloaded), so the complete-snapshot path must be instant and offline.
"""

import json
import logging
import os

from ..options import MODEL_NAME

logger = logging.getLogger(__name__)

REPO_ID = MODEL_NAME

# The revision whose behaviour this integration reproduces; set the
# environment variable to fetch another (e.g. "main").
DEFAULT_REVISION = "4a58ca57710c49f51896e4bc820e202fbf64904b"
REVISION_ENV = "FIFTYONE_JINA_V4_REVISION"

INDEX_FILE = "model.safetensors.index.json"
SINGLE_WEIGHTS_FILE = "model.safetensors"
REQUIRED_FILES = (
    "config.json",
    "preprocessor_config.json",
    "adapters/adapter_config.json",
    "adapters/adapter_model.safetensors",
)
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))

# Weights, adapters, tokenizer and configs only: no code from the hub (we
# never execute it) and no pickled weights (safetensors only).
ALLOW_PATTERNS = (
    "*.json",
    "*.safetensors",
    "*.txt",
    "adapters/*.json",
    "adapters/*.safetensors",
)


class SnapshotError(ValueError):
    """Raised when a snapshot folder is missing files or is malformed."""


def weight_map(path):
    """Which file holds each weight of the snapshot at ``path``:
    ``{key: file name}`` from its index, or None for a snapshot in one
    file (``model.safetensors``). Raises OSError or ValueError when the
    index can not be read."""
    index = os.path.join(path, INDEX_FILE)
    if not os.path.isfile(index):
        return None
    with open(index) as f:
        return json.load(f)["weight_map"]


def missing_files(path):
    """Lists what a complete snapshot at ``path`` would have but lacks.

    Args:
        path: the snapshot folder

    Returns:
        a list of relative paths (empty when the snapshot is complete)
    """
    if not os.path.isdir(path):
        return ["(the folder itself)"]

    missing = [f for f in REQUIRED_FILES if not _isfile(path, f)]
    if not any(all(_isfile(path, f) for f in g) for g in TOKENIZER_FILES):
        missing.append("tokenizer.json (or vocab.json + merges.txt)")

    if _isfile(path, INDEX_FILE):
        try:
            with open(os.path.join(path, INDEX_FILE)) as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
        except (ValueError, KeyError, TypeError) as e:
            return missing + ["%s (unreadable: %s)" % (INDEX_FILE, e)]

        missing.extend(s for s in shards if not _isfile(path, s))
    elif not _isfile(path, SINGLE_WEIGHTS_FILE):
        missing.append("%s and the safetensors shards it lists" % INDEX_FILE)

    return missing


def require_complete(path):
    """Raises :class:`SnapshotError` naming what is missing at ``path``."""
    missing = missing_files(path)
    if missing:
        raise SnapshotError(incomplete_message(path, missing))


def incomplete_message(path, missing, cause=None):
    """The error text for an incomplete snapshot: what, where, how to fix."""
    text = (
        "The Jina Embeddings v4 snapshot at '%s' is incomplete; missing: "
        "%s. To fix it, run once with network access so that it can be "
        "downloaded from the Hugging Face Hub (%s), or copy a complete "
        "local snapshot of %s into that folder"
        % (path, ", ".join(missing), REPO_ID, REPO_ID)
    )
    if cause is not None:
        text += ". The download failed with: %s: %s" % (
            type(cause).__name__,
            cause,
        )

    return text


def ensure_snapshot(path, revision=None):
    """Makes sure a complete snapshot is at ``path``, downloading if not.

    Returns at once, without network, when the snapshot is complete.

    Args:
        path: the snapshot folder
        revision (None): a hub revision to download; defaults to the
            ``FIFTYONE_JINA_V4_REVISION`` environment variable, else
            :data:`DEFAULT_REVISION`

    Raises:
        SnapshotError: if the snapshot is incomplete and cannot be
            downloaded
    """
    missing = missing_files(path)
    if not missing:
        return path

    revision = revision or os.environ.get(REVISION_ENV) or DEFAULT_REVISION
    logger.info("Downloading %s (revision %s) to %s", REPO_ID, revision, path)
    try:
        from huggingface_hub import snapshot_download

        snapshot_download(
            repo_id=REPO_ID,
            revision=revision,
            local_dir=path,
            allow_patterns=list(ALLOW_PATTERNS),
        )
    except Exception as e:
        raise SnapshotError(incomplete_message(path, missing, cause=e)) from e

    require_complete(path)
    return path


def _isfile(root, rel):
    return os.path.isfile(os.path.join(root, rel))
