"""The zoo source's own files: ``manifest.json`` and the root
``__init__.py`` that FiftyOne runs, as this repository's root holds them
(a test keeps the two copies equal), so that ``jina-v4 install-tiny`` and
the demo can lay a zoo source out from the installed package alone.
"""

import json
import os

from .. import options

# the manifest's name: FiftyOne keeps the source in <model_zoo_dir>/<name>
SOURCE_NAME = options.PACKAGE_NAME
# the manifest's base_filename: the weights folder inside the source
WEIGHTS_FOLDER = "jina-embeddings-v4"

MANIFEST = {
    "name": "jina_embeddings_v4",
    "models": [
        {
            "base_name": "jinaai/jina-embeddings-v4",
            "base_filename": "jina-embeddings-v4",
            "author": "Jina AI",
            "license": "Qwen Research License (model weights, see the model card); Apache-2.0 (this integration)",
            "source": "https://huggingface.co/jinaai/jina-embeddings-v4",
            "description": "Jina Embeddings v4: universal multimodal, multilingual embeddings for visually rich documents. Runs natively on transformers 5 and peft (no remote code): 2048-d Matryoshka single vectors, 128-d multi vectors with exact late-interaction zero-shot classification, batched inference.",
            "size_bytes": 7612497024,
            "requirements": {
                "packages": [
                    "torch>=2.5",
                    "torchvision>=0.20",
                    "transformers>=5.5.4,<6",
                    "peft>=0.17,<1",
                    "safetensors>=0.4.3",
                    "huggingface_hub>=1.0,<2"
                ],
                "cpu": {
                    "support": True
                },
                "gpu": {
                    "support": True
                }
            },
            "tags": [
                "classification",
                "embeddings",
                "zero-shot",
                "logits",
                "torch",
                "visual-document-retrieval",
                "multimodal",
                "transformers"
            ],
            "date_added": "2026-11-29 00:00:00"
        }
    ]
}

_ROOT_INIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "root_init.py.in")


def manifest_text():
    """``manifest.json`` as written to disk."""
    return json.dumps(MANIFEST, indent=4, ensure_ascii=False) + "\n"


def root_init_text():
    """The root ``__init__.py`` of the zoo source."""
    with open(_ROOT_INIT) as f:
        return f.read()


def source_dir(zoo_dir):
    """Where FiftyOne keeps this source in a model zoo folder."""
    return os.path.join(zoo_dir, SOURCE_NAME)


def weights_dir(zoo_dir):
    """Where the model's weights go in a model zoo folder."""
    return os.path.join(source_dir(zoo_dir), WEIGHTS_FOLDER)


def write_source(zoo_dir):
    """Writes the source's ``manifest.json`` and ``__init__.py`` into
    ``<zoo_dir>/jina_embeddings_v4`` (weights there are kept).

    Returns:
        the source folder
    """
    dest = source_dir(zoo_dir)
    os.makedirs(dest, exist_ok=True)
    for name, text in (
        ("manifest.json", manifest_text()),
        ("__init__.py", root_init_text()),
    ):
        tmp = os.path.join(dest, name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, os.path.join(dest, name))

    return dest
