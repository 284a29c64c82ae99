"""FiftyOne remote zoo model source: Jina Embeddings v4.

| Copyright 2026, the jina-embeddings-v4 FiftyOne integration authors.
| Apache 2.0

FiftyOne re-executes this file on every zoo call, so it stays light: heavy
modules (torch, transformers, fiftyone) are imported inside the hooks.
"""

import logging
import os
import sys

logger = logging.getLogger(__name__)

TASKS = ("retrieval", "text-matching", "code")
VECTOR_MODES = ("single", "multi")
POOLING_STRATEGIES = ("mean", "max")
TRUNCATE_DIMS = (128, 256, 512, 1024, 2048)


def download_model(model_name, model_path):
    """Downloads the snapshot unless it is complete already.

    Returns at once, with no network, when ``model_path`` holds a complete
    snapshot; an incomplete one that cannot be downloaded raises an error
    naming the folder, what is missing and how to fix it.

    Args:
        model_name: the zoo model name
        model_path: the folder to download into
    """
    from .core.snapshot import ensure_snapshot
    from .zoo import validate_pending_options

    validate_pending_options(model_path)
    ensure_snapshot(model_path)


def load_model(model_name, model_path, **kwargs):
    """Loads the model; every kwarg of ``load_zoo_model`` is passed on.

    Args:
        model_name: the zoo model name
        model_path: the snapshot folder
        **kwargs: options of :class:`zoo.JinaEmbeddingsV4Config` (``task``,
            ``vector_mode``, ``pooling_strategy``, ``truncate_dim``,
            ``classes``, ``text_prompt``, ...)

    Returns:
        a :class:`zoo.JinaEmbeddingsV4`
    """
    _make_importable_for_workers()
    _make_importable_in_new_processes()
    _register_similarity_backend()
    from .zoo import load_model as _load

    return _load(model_path, **kwargs)


def resolve_input(model_name, ctx):
    """The options offered by the App's "apply zoo model" operator form.

    Args:
        model_name: the zoo model name
        ctx: an ``ExecutionContext``

    Returns:
        a ``fiftyone.operators.types.Property``
    """
    import fiftyone.operators.types as types

    inputs = types.Object()
    inputs.enum(
        "task",
        list(TASKS),
        default="retrieval",
        label="Task",
        description="Task LoRA: retrieval (documents), text-matching "
        "(zero-shot labels), code",
        view=types.DropdownView(),
    )
    inputs.str(
        "classes",
        default=None,
        required=False,
        label="Classes",
        description="Comma-separated class names for zero-shot labels, "
        "e.g. invoice, receipt, form",
    )
    inputs.str(
        "text_prompt",
        default="",
        required=False,
        label="Text prompt",
        description="Optional text put before each class, e.g. 'a scan of a'",
    )
    inputs.enum(
        "vector_mode",
        list(VECTOR_MODES),
        default="single",
        label="Vector mode",
        description="single: 2048-d vectors; multi: 128-d pooled multi "
        "vectors",
        view=types.DropdownView(),
    )
    inputs.enum(
        "pooling_strategy",
        list(POOLING_STRATEGIES),
        default="mean",
        label="Pooling (multi mode)",
        view=types.DropdownView(),
    )
    inputs.enum(
        "truncate_dim",
        ["none"] + [str(d) for d in TRUNCATE_DIMS],
        default="none",
        label="Matryoshka dimension (single mode)",
        view=types.DropdownView(),
    )
    inputs.int(
        "max_pixels",
        default=602112,
        label="Max pixels per image",
        description="Bounds image tokens (max_pixels / 784), time and memory",
    )
    return types.Property(inputs)


def parse_parameters(model_name, ctx, params):
    """Turns the App form's strings into ``load_zoo_model`` kwargs, in place.

    Args:
        model_name: the zoo model name
        ctx: an ``ExecutionContext``
        params: the dict of parameters to edit
    """
    classes = params.get("classes")
    if isinstance(classes, str):
        names = [c.strip() for c in classes.split(",") if c.strip()]
        params["classes"] = names or None

    dim = params.get("truncate_dim")
    if isinstance(dim, str):
        text = dim.strip().lower()
        params["truncate_dim"] = None if text in ("", "none") else int(text)

    for name in ("max_pixels",):
        value = params.get(name)
        if isinstance(value, str) and value.strip():
            params[name] = int(value)

    for name in ("classes", "text_prompt", "truncate_dim"):
        if params.get(name) in ("", None):
            params.pop(name, None)


SIMILARITY_BACKEND = "jina_multivector"


def _register_similarity_backend():
    # backend="jina_multivector" in fob.compute_similarity() from here on;
    # parameters the user configured for it in fiftyone-brain are kept
    import fiftyone.brain as fob

    entry = fob.brain_config.similarity_backends.setdefault(
        SIMILARITY_BACKEND, {}
    )
    entry["config_cls"] = (
        __name__ + ".index.backend.JinaMultivectorSimilarityConfig"
    )


def _make_importable_in_new_processes():
    # brain runs of the jina_multivector backend name their config class
    # by dotted path; see site_hook.py for what this writes and how to
    # undo it
    if "." in __name__:
        return

    from .site_hook import install

    install(__name__, os.path.dirname(os.path.abspath(__file__)))


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
        import json

        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _quiet_removed_app_option_warnings():
    config_logger = logging.getLogger("fiftyone.core.config")
    if not any(
        type(f).__name__ == "_RemovedAppOptionFilter"
        for f in config_logger.filters
    ):
        config_logger.addFilter(_RemovedAppOptionFilter())


_quiet_removed_app_option_warnings()


def _make_importable_for_workers():
    # Data loader workers started with "spawn" (macOS, Windows) unpickle
    # our GetItem by module name: they need this package's parent folder
    # on sys.path, which spawn copies from the parent process.
    package_dir = os.path.dirname(os.path.abspath(__file__))
    parent = os.path.dirname(package_dir)
    if __name__ == os.path.basename(package_dir) and parent not in sys.path:
        sys.path.append(parent)
