"""The facts every layer shares, defined once: names, tasks, pixel budget,
the options that define a vector space, and a positive-integer check.

| Copyright 2026, the jina-embeddings-v4 FiftyOne integration authors.
| Apache 2.0

Imports nothing heavy (no torch, no FiftyOne): the zoo hooks, the CLI and
the App's form read it on every call.
"""

# the zoo model and the similarity backend, as users name them
MODEL_NAME = "jinaai/jina-embeddings-v4"
BACKEND_NAME = "jina_multivector"
PACKAGE_NAME = "jina_embeddings_v4"

# where fiftyone-brain imports the backend's config class from, in any
# process of an environment where this package is installed
BACKEND_CONFIG_CLS = (
    PACKAGE_NAME + ".index.backend.JinaMultivectorSimilarityConfig"
)

# the task LoRA adapters of the checkpoint
TASKS = ("retrieval", "text-matching", "code")
DEFAULT_TASK = "retrieval"

VECTOR_MODES = ("single", "multi")
POOLING_STRATEGIES = ("mean", "max")
MATRYOSHKA_DIMS = (128, 256, 512, 1024, 2048)
PROMPT_NAMES = ("query", "passage")

# the image processor's pixel budget: an image becomes at most
# max_pixels / 784 tokens (28x28 pixels each)
DEFAULT_MAX_PIXELS = 602112
DEFAULT_MIN_PIXELS = 3136

# The load_zoo_model() options that change which vector a page or a query
# gets, with their defaults: two models agreeing on these embed into one
# space. dtype, device and the fast paths change speed, not the space.
VECTOR_SPACE_DEFAULTS = {
    "task": DEFAULT_TASK,
    "vector_mode": "single",
    "pooling_strategy": "mean",
    "truncate_dim": None,
    "query_prompt_name": "query",
    "passage_prompt_name": "passage",
    "max_pixels": DEFAULT_MAX_PIXELS,
    "min_pixels": DEFAULT_MIN_PIXELS,
}


def vector_space(options):
    """The vector-space options of a model, from a dict of
    ``load_zoo_model`` kwargs (missing ones take their defaults) or from
    an object with those attributes (a model config).

    Returns:
        a dict with the keys of :data:`VECTOR_SPACE_DEFAULTS`
    """
    if isinstance(options, dict):
        get = options.get
    else:

        def get(name, default):
            return getattr(options, name, default)

    return {
        name: get(name, default)
        for name, default in VECTOR_SPACE_DEFAULTS.items()
    }


def space_differences(ours, theirs):
    """The names whose values differ between two vector spaces; a key
    missing from one side (a record from an older release) counts as its
    default."""
    return sorted(
        name
        for name, default in VECTOR_SPACE_DEFAULTS.items()
        if ours.get(name, default) != theirs.get(name, default)
    )


def check_positive_int(name, value, allow_none=False):
    """Raises a ValueError naming ``name`` unless ``value`` is a positive
    integer (bools are not integers here), or None when ``allow_none``.

    Returns:
        the value, as an ``int`` (or None)
    """
    if value is None and allow_none:
        return None

    is_int = isinstance(value, int) or type(value).__name__ in (
        "int64",
        "int32",
    )
    if isinstance(value, bool) or not is_int or value < 1:
        below = is_int and not isinstance(value, bool)
        raise ValueError(
            "%s must be a positive integer%s%s, got %r"
            % (
                name,
                " or None" if allow_none else "",
                " (%s must be >= 1)" % name if below else "",
                value,
            )
        )

    return int(value)
