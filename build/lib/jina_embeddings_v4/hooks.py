"""The zoo hooks FiftyOne calls through the source's root ``__init__.py``:
``download_model``, ``load_model``, ``resolve_input`` and
``parse_parameters``.

| Copyright 2026, the jina-embeddings-v4 FiftyOne integration authors.
| Apache 2.0

FiftyOne runs these on every zoo call, so importing this module stays
light: torch, transformers and fiftyone are imported inside the hooks.
Loading the model writes nothing outside FiftyOne's own folders.
"""

import sys

from . import options

# this package, as imported in this process: the zoo source's root
# __init__.py puts it back into sys.modules after FiftyOne has named the
# source's module after it
PACKAGE = sys.modules[__package__]


def download_model(model_name, model_path):
    """Downloads the snapshot unless it is complete already.

    Returns at once, with no network, when ``model_path`` holds a complete
    snapshot; an incomplete one that cannot be downloaded raises an error
    naming the folder, what is missing and how to fix it.

    Args:
        model_name: the zoo model name
        model_path: the folder to download into
    """
    from .fiftyone.zoo import validate_pending_options
    from .model.snapshot import ensure_snapshot

    validate_pending_options(model_path)
    ensure_snapshot(model_path)


def load_model(model_name, model_path, **kwargs):
    """Loads the model; every kwarg of ``load_zoo_model`` is passed on.

    Args:
        model_name: the zoo model name
        model_path: the snapshot folder
        **kwargs: options of :class:`jina_embeddings_v4.fiftyone.zoo.JinaEmbeddingsV4Config` (``task``,
            ``vector_mode``, ``pooling_strategy``, ``truncate_dim``,
            ``classes``, ``text_prompt``, ...)

    Returns:
        a :class:`jina_embeddings_v4.fiftyone.zoo.JinaEmbeddingsV4`
    """
    from .fiftyone.zoo import load_model as _load
    from .index import register

    register()

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
        list(options.TASKS),
        default=options.DEFAULT_TASK,
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
        list(options.VECTOR_MODES),
        default="single",
        label="Vector mode",
        description="single: 2048-d vectors; multi: 128-d pooled multi "
        "vectors",
        view=types.DropdownView(),
    )
    inputs.enum(
        "pooling_strategy",
        list(options.POOLING_STRATEGIES),
        default="mean",
        label="Pooling (multi mode)",
        view=types.DropdownView(),
    )
    inputs.enum(
        "truncate_dim",
        ["none"] + [str(d) for d in options.MATRYOSHKA_DIMS],
        default="none",
        label="Matryoshka dimension (single mode)",
        view=types.DropdownView(),
    )
    inputs.int(
        "max_pixels",
        default=options.DEFAULT_MAX_PIXELS,
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
