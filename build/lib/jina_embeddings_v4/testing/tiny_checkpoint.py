"""Writes a tiny random Jina v4 checkpoint in the official snapshot layout.

The result is laid out exactly like a ``jinaai/jina-embeddings-v4``
download (config with the Jina extras, sharded bf16 safetensors under the
official pre-v5 key names, ``adapters/`` with all three task LoRAs in one
file, a byte-level BPE tokenizer carrying the Qwen special tokens, image
processor config), so the encoder loads it through the same code path as
the real weights. The weights are random: vectors from it mean nothing.

``full_size=True`` writes the real architecture (3.75B parameters) with
random weights, for benchmarks that must not download anything.
"""

import json
import logging
import os
import random

import torch

from ..options import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, TASKS

logger = logging.getLogger(__name__)


SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)

# Qwen2's pre-tokenizer split (digits one by one, letters in runs)
_QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_CORPUS = (
    "Query: Passage: Describe the image. invoice receipt form contract "
    "slide total amount due date 2022 2023 2024 2025 payment terms net 30 "
    "The quick brown fox jumps over the lazy dog. Document retrieval with "
    "late interaction scores each query token against every page token. "
    "def encode(texts, task): return model(texts) # code search example "
    "Die Hauptstadt von Deutschland ist Berlin. Le contrat est signé. "
    "$1,234.56 EUR 99.00 Tax VAT Subtotal Customer Supplier Address Phone "
)

_TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "mrope_section": [2, 3, 3],
    "vision": {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "fullatt_block_indexes": [1],
    },
    "matryoshka_dims": [16, 32, 64],
    "vocab_target": 1024,
    "lora_r": 4,
    "lora_alpha": 8,
}

_FULL = {
    "hidden_size": 2048,
    "intermediate_size": 11008,
    "num_hidden_layers": 36,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "mrope_section": [16, 24, 24],
    "vision": {
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "fullatt_block_indexes": [7, 15, 23, 31],
    },
    "matryoshka_dims": [128, 256, 512, 1024, 2048],
    "vocab_target": 1024,
    "lora_r": 32,
    "lora_alpha": 32,
}

_REAL_VOCAB_SIZE = 151936
_LORA_TARGETS = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)


def write_checkpoint(
    out_dir,
    seed=0,
    full_size=False,
    nested_text_config=False,
    num_shards=2,
):
    """Writes a random checkpoint in the official layout to ``out_dir``.

    Args:
        out_dir: the folder to write (created if needed)
        seed (0): random seed; the same seed gives the same files
        full_size (False): whether to build the real 3.75B architecture
            instead of a tiny one
        nested_text_config (False): whether to write the text parameters
            nested under ``text_config`` (transformers 5 style) rather than
            flat (the official style)
        num_shards (2): how many safetensors shards to split weights into

    Returns:
        ``out_dir``
    """
    dims = _FULL if full_size else _TINY
    os.makedirs(os.path.join(out_dir, "adapters"), exist_ok=True)
    torch.manual_seed(seed)

    vocab = _write_tokenizer(out_dir, dims["vocab_target"])
    vocab_size = _REAL_VOCAB_SIZE if full_size else vocab["size"]
    config = _config_dict(dims, vocab, vocab_size, nested_text_config)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)

    _write_processor_configs(out_dir)
    state = _random_base_weights(out_dir, dims, seed)
    _save_sharded(out_dir, state, num_shards)
    del state
    _write_adapters(out_dir, dims, seed)
    logger.info("Wrote a random Jina v4 checkpoint to %s", out_dir)
    return out_dir


def _write_tokenizer(out_dir, vocab_target):
    from tokenizers import Regex, Tokenizer, decoders, models
    from tokenizers import normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(_QWEN_SPLIT), behavior="isolated", invert=False
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_target,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))

    wrapped = Qwen2Tokenizer(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
    )
    wrapped.save_pretrained(out_dir)

    ids = {t: tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
    size = tokenizer.get_vocab_size()
    # round up like real checkpoints do, leaving unused rows
    return {"ids": ids, "size": (size + 63) // 64 * 64}


def _config_dict(dims, vocab, vocab_size, nested):
    ids = vocab["ids"]
    vision = dims["vision"]
    text = {
        "hidden_size": dims["hidden_size"],
        "intermediate_size": dims["intermediate_size"],
        "num_hidden_layers": dims["num_hidden_layers"],
        "num_attention_heads": dims["num_attention_heads"],
        "num_key_value_heads": dims["num_key_value_heads"],
        "hidden_act": "silu",
        "max_position_embeddings": 128000,
        "rms_norm_eps": 1e-6,
        "vocab_size": vocab_size,
        "tie_word_embeddings": True,
        "attention_dropout": 0.0,
        "use_sliding_window": False,
        "sliding_window": 32768,
        "max_window_layers": 70,
    }
    rope = {"type": "mrope", "mrope_section": dims["mrope_section"]}
    config = {
        "architectures": ["JinaEmbeddingsV4Model"],
        "model_type": "qwen2_5_vl",
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "vision_token_id": ids["<|vision_pad|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "torch_dtype": "bfloat16",
        "vision_config": {
            "depth": vision["depth"],
            "hidden_act": "silu",
            "hidden_size": vision["hidden_size"],
            "intermediate_size": vision["intermediate_size"],
            "num_heads": vision["num_heads"],
            "in_chans": 3,
            "out_hidden_size": dims["hidden_size"],
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "window_size": 112,
            "fullatt_block_indexes": vision["fullatt_block_indexes"],
            "tokens_per_second": 2,
            "temporal_patch_size": 2,
        },
        "single_vector_pool_strategy": "mean",
        "multi_vector_projector_dim": 128,
        "matryoshka_dims": dims["matryoshka_dims"],
        "task_names": list(TASKS),
        "truncate_dim": None,
    }
    if nested:
        config["text_config"] = dict(
            text,
            model_type="qwen2_5_vl_text",
            rope_parameters=dict(rope, rope_type="default", rope_theta=1e6),
        )
        config["tie_word_embeddings"] = True
    else:
        config.update(text, rope_theta=1000000.0, rope_scaling=rope)

    return config


def _write_processor_configs(out_dir):
    image = {
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "merge_size": 2,
        "min_pixels": DEFAULT_MIN_PIXELS,
        "max_pixels": DEFAULT_MAX_PIXELS,
        "patch_size": 14,
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {
            "shortest_edge": DEFAULT_MIN_PIXELS,
            "longest_edge": DEFAULT_MAX_PIXELS,
        },
        "temporal_patch_size": 2,
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2_5_VLProcessor",
    }
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
        json.dump(image, f, indent=2)

    video = dict(image, video_processor_type="Qwen2VLVideoProcessor")
    video.pop("image_processor_type")
    path = os.path.join(out_dir, "video_preprocessor_config.json")
    with open(path, "w") as f:
        json.dump(video, f, indent=2)


def _random_base_weights(out_dir, dims, seed):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLModel

    config = Qwen2_5_VLConfig.from_pretrained(out_dir)
    torch.manual_seed(seed)
    model = Qwen2_5_VLModel._from_config(config, dtype=torch.bfloat16)

    state = {}
    for name, tensor in model.state_dict().items():
        if name.startswith("language_model."):
            name = "model." + name[len("language_model.") :]
        state[name] = tensor.contiguous()

    hidden = dims["hidden_size"]
    projector = torch.nn.Linear(hidden, 128)
    state["multi_vector_projector.weight"] = projector.weight.detach().to(
        torch.bfloat16
    )
    state["multi_vector_projector.bias"] = projector.bias.detach().to(
        torch.bfloat16
    )
    return state


def _save_sharded(out_dir, state, num_shards):
    from safetensors.torch import save_file

    names = sorted(state)
    total = sum(t.numel() * t.element_size() for t in state.values())
    budget = total / max(num_shards, 1)
    shards, current, size = [], [], 0
    for name in names:
        nbytes = state[name].numel() * state[name].element_size()
        if current and size + nbytes > budget and len(shards) < num_shards - 1:
            shards.append(current)
            current, size = [], 0
        current.append(name)
        size += nbytes
    shards.append(current)

    weight_map = {}
    for i, shard in enumerate(shards):
        filename = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
        save_file(
            {n: state[n] for n in shard},
            os.path.join(out_dir, filename),
            metadata={"format": "pt"},
        )
        weight_map.update({n: filename for n in shard})

    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)


def _write_adapters(out_dir, dims, seed):
    from safetensors.torch import save_file

    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    r = dims["lora_r"]
    hidden = dims["hidden_size"]
    inter = dims["intermediate_size"]
    kv = hidden // dims["num_attention_heads"] * dims["num_key_value_heads"]
    shapes = {
        "self_attn.q_proj": (hidden, hidden),
        "self_attn.k_proj": (hidden, kv),
        "self_attn.v_proj": (hidden, kv),
        "self_attn.o_proj": (hidden, hidden),
        "mlp.gate_proj": (hidden, inter),
        "mlp.up_proj": (hidden, inter),
        "mlp.down_proj": (inter, hidden),
    }
    modules = {
        "model.language_model.layers.%d.%s" % (layer, target): shapes[target]
        for layer in range(dims["num_hidden_layers"])
        for target in _LORA_TARGETS
    }
    modules["multi_vector_projector"] = (hidden, 128)

    state = {}
    for task in TASKS:
        for module, (fan_in, fan_out) in modules.items():
            prefix = "base_model.model.%s" % module
            scale = 0.5 + rng.random()
            a = torch.randn(r, fan_in, generator=generator) / fan_in**0.5
            b = torch.randn(fan_out, r, generator=generator) * scale / r
            state["%s.lora_A.%s.weight" % (prefix, task)] = a.to(
                torch.bfloat16
            )
            state["%s.lora_B.%s.weight" % (prefix, task)] = b.to(
                torch.bfloat16
            )

    adapters = os.path.join(out_dir, "adapters")
    save_file(
        state,
        os.path.join(adapters, "adapter_model.safetensors"),
        metadata={"format": "pt"},
    )
    config = {
        "peft_type": "LORA",
        "task_type": "FEATURE_EXTRACTION",
        "base_model_name_or_path": "tiny-random-jina-embeddings-v4",
        "r": r,
        "lora_alpha": dims["lora_alpha"],
        "lora_dropout": 0.1,
        "bias": "none",
        "use_rslora": False,
        "use_dora": False,
        "inference_mode": True,
        "fan_in_fan_out": False,
        "init_lora_weights": True,
        "exclude_modules": ".*visual.*",
        "target_modules": (
            "(.*(model).*(down_proj|gate_proj|up_proj|k_proj|q_proj|v_proj"
            "|o_proj).*$|.*(single_vector_projector|multi_vector_projector)"
            ".*$)"
        ),
        "rank_pattern": {},
        "alpha_pattern": {},
        "modules_to_save": None,
    }
    with open(os.path.join(adapters, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--nested-text-config", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    write_checkpoint(
        args.out_dir,
        seed=args.seed,
        full_size=args.full_size,
        nested_text_config=args.nested_text_config,
    )


def is_tiny_snapshot(path):
    """Whether ``path`` holds a tiny random checkpoint (not the real model:
    its hidden size is below 1024)."""
    try:
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return False

    text_config = config.get("text_config") or {}
    hidden = config.get("hidden_size") or text_config.get("hidden_size")
    return isinstance(hidden, int) and hidden < 1024


def install_tiny(zoo_dir, seed=0):
    """Lays the zoo source out in ``zoo_dir`` with a tiny random checkpoint
    as the model's weights, so that ``foz.load_zoo_model`` works offline
    with ``FIFTYONE_MODEL_ZOO_DIR=zoo_dir``. Real weights there are never
    overwritten (a ValueError says so).

    Returns:
        the weights folder
    """
    from .. import zoo_source

    weights = zoo_source.weights_dir(zoo_dir)
    if (
        os.path.isdir(weights)
        and os.listdir(weights)
        and not is_tiny_snapshot(weights)
    ):
        raise ValueError(
            "%s holds (part of) the real model's weights; a tiny random "
            "checkpoint will not replace them. Choose another zoo folder "
            "(--zoo-dir)" % weights
        )

    zoo_source.write_source(zoo_dir)
    if os.path.isdir(weights):
        import shutil

        shutil.rmtree(weights)
    write_checkpoint(weights, seed=seed)
    return weights
