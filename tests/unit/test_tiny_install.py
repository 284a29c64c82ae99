"""``jina-v4 install-tiny``: the zoo source with tiny random weights, never
over the real model's weights."""

import json
import os

from jina_embeddings_v4 import cli, zoo_source
from jina_embeddings_v4.testing.tiny_checkpoint import is_tiny_snapshot


def test_install_tiny_writes_source_and_weights(tmp_path, capsys):
    assert cli.main(["install-tiny", "--zoo-dir", str(tmp_path)]) == 0
    weights = zoo_source.weights_dir(str(tmp_path))
    assert is_tiny_snapshot(weights)
    assert os.path.isfile(os.path.join(weights, "adapters",
                                       "adapter_model.safetensors"))
    src = zoo_source.source_dir(str(tmp_path))
    assert os.path.isfile(os.path.join(src, "manifest.json"))
    assert "FIFTYONE_MODEL_ZOO_DIR=%s" % tmp_path in capsys.readouterr().out
    # again: replaced, still tiny
    assert cli.main(["install-tiny", "--zoo-dir", str(tmp_path)]) == 0
    assert is_tiny_snapshot(weights)


def test_install_tiny_never_replaces_real_weights(tmp_path, capsys):
    weights = zoo_source.weights_dir(str(tmp_path))
    os.makedirs(weights)
    with open(os.path.join(weights, "config.json"), "w") as f:
        json.dump({"hidden_size": 2048}, f)
    assert cli.main(["install-tiny", "--zoo-dir", str(tmp_path)]) == 2
    assert "real model's weights" in capsys.readouterr().err
    with open(os.path.join(weights, "config.json")) as f:
        assert json.load(f) == {"hidden_size": 2048}
    assert not os.path.exists(os.path.join(weights, "adapters"))
