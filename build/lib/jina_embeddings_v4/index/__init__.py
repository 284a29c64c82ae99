"""The ``jina_multivector`` similarity backend and its stores.

``backend.py`` is fiftyone-brain's side (config, method, index),
``capture.py`` takes the pages FiftyOne feeds the model during a build,
``store.py`` is the small store interface with one module per engine.
"""

from ..options import BACKEND_CONFIG_CLS, BACKEND_NAME


def register():
    """Makes ``backend="jina_multivector"`` known to fiftyone-brain in this
    process (parameters already configured for it are kept). Brain runs
    saved with it load in any process by the config class's dotted path,
    without this call."""
    import fiftyone.brain as fob

    entry = fob.brain_config.similarity_backends.setdefault(BACKEND_NAME, {})
    entry["config_cls"] = BACKEND_CONFIG_CLS
