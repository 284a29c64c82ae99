"""Where an exact unmerge reads a layer's base weight from, by hand."""

import json
import os

import pytest
import torch
from safetensors.torch import save_file

from jina_embeddings_v4.model import exact_unmerge as xu


@pytest.mark.parametrize(
    "peft_name, key",
    [
        ("base_model.model.model.language_model.layers.3.self_attn.q_proj",
         "model.layers.3.self_attn.q_proj.weight"),
        ("base_model.model.model.visual.blocks.0.attn.proj",
         "visual.blocks.0.attn.proj.weight"),
        ("base_model.model.multi_vector_projector",
         "multi_vector_projector.weight"),
        # names the checkpoint layout does not have
        ("base_model.model.model.lm_head", None),
        ("model.language_model.layers.0.mlp.up_proj", None),
    ],
)
def test_checkpoint_key_by_hand(peft_name, key):
    assert xu.checkpoint_key(peft_name) == key


def test_snapshot_tensors_in_one_file_and_in_shards(tmp_path):
    a = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)
    b = torch.ones(4, dtype=torch.float32)

    single = tmp_path / "single"
    single.mkdir()
    save_file({"x.weight": a, "y.weight": b}, str(single / "model.safetensors"))

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    save_file({"x.weight": a}, str(sharded / "part-1.safetensors"))
    save_file({"y.weight": b}, str(sharded / "part-2.safetensors"))
    with open(sharded / "model.safetensors.index.json", "w") as f:
        json.dump({"weight_map": {"x.weight": "part-1.safetensors",
                                  "y.weight": "part-2.safetensors"}}, f)

    for folder in (single, sharded):
        tensors = xu.SnapshotTensors(str(folder))
        assert torch.equal(tensors.get("x.weight"), a)
        assert tensors.get("x.weight").dtype == torch.bfloat16
        assert torch.equal(tensors.get("y.weight"), b)
        with pytest.raises(KeyError, match="z.weight"):
            tensors.get("z.weight")
        tensors.close()

    (single / "model.safetensors").unlink()
    with pytest.raises(OSError):
        xu.SnapshotTensors(str(single)).get("x.weight")


def test_a_file_changed_since_the_stamps_is_refused(tmp_path):
    a = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3)
    path = tmp_path / "model.safetensors"
    save_file({"x.weight": a}, str(path))
    stamps = xu.stamps(str(tmp_path))
    assert list(stamps) == [str(path)]
    st = path.stat()
    assert stamps[str(path)] == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    assert torch.equal(xu.SnapshotTensors(str(tmp_path), stamps).get("x.weight"), a)
    # the same name, other weights (a new download in place)
    save_file({"x.weight": a + 1}, str(path))
    os.utime(path, ns=(1, 1))
    with pytest.raises(OSError, match="changed since the model was loaded"):
        xu.SnapshotTensors(str(tmp_path), stamps).get("x.weight")
    # without stamps it reads what is there
    assert torch.equal(xu.SnapshotTensors(str(tmp_path)).get("x.weight"), a + 1)


def test_stamps_of_an_unreadable_index_are_empty(tmp_path):
    (tmp_path / "model.safetensors.index.json").write_text("{not json")
    assert xu.stamps(str(tmp_path)) == {}
    # and then nothing is read back (unmerge() subtracts instead)
    with pytest.raises(ValueError):
        xu.SnapshotTensors(str(tmp_path), {}).get("x.weight")


def test_a_folder_with_both_layouts_is_not_read_back(tmp_path):
    # which of the two the load used is not certain: nothing is read
    a = torch.ones(2, dtype=torch.bfloat16)
    save_file({"x.weight": a}, str(tmp_path / "model.safetensors"))
    save_file({"x.weight": a + 1}, str(tmp_path / "part-1.safetensors"))
    with open(tmp_path / "model.safetensors.index.json", "w") as f:
        json.dump({"weight_map": {"x.weight": "part-1.safetensors"}}, f)
    with pytest.raises(OSError, match="both model.safetensors and"):
        xu.SnapshotTensors(str(tmp_path)).get("x.weight")
