"""Keeps FiftyOne 1.22's "App config option has been removed" warnings
out of the user's log when the user never set the option.

| Copyright 2026, the jina-embeddings-v4 FiftyOne integration authors.
| Apache 2.0

FiftyOne logs them for its own defaults, on every copy of its App config
(each App search). Imports nothing but the standard library.
"""

import json
import logging
import os

_REMOVED_APP_OPTIONS = {
    "show_confidence": "FIFTYONE_APP_SHOW_CONFIDENCE",
    "show_index": "FIFTYONE_APP_SHOW_INDEX",
    "show_label": "FIFTYONE_APP_SHOW_LABEL",
}


class _RemovedAppOptionFilter(logging.Filter):
    """Drops FiftyOne 1.22's "`show_label` App config option has been
    removed" warnings when the user never set the option: FiftyOne logs
    them for its own defaults, on every copy of its App config (each App
    search). An option the user set still gets its warning."""

    def filter(self, record):
        if "App config option has been removed" not in str(record.msg):
            return True

        option = record.args[0] if record.args else None
        env_var = _REMOVED_APP_OPTIONS.get(option)
        if env_var is None or env_var in os.environ:
            return True

        return option in _user_app_config()


def _user_app_config():
    path = os.environ.get(
        "FIFTYONE_APP_CONFIG_PATH",
        os.path.join(os.path.expanduser("~"), ".fiftyone", "app_config.json"),
    )
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def install():
    """Adds the filter to FiftyOne's config logger (once per process)."""
    config_logger = logging.getLogger("fiftyone.core.config")
    if not any(
        type(f).__name__ == "_RemovedAppOptionFilter"
        for f in config_logger.filters
    ):
        config_logger.addFilter(_RemovedAppOptionFilter())
