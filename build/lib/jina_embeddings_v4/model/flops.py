"""The model's floating-point work per page, from its config: what the
benchmarks divide by time to report the share of a device's peak reached.
"""


def page_flops(config, patches, lm_tokens):
    """The model's FLOPs for one page: ``patches`` 14x14 patches in the
    vision tower, ``lm_tokens`` tokens in the language model.

    Counts the linear layers (2 FLOPs per multiply-add) and attention
    (QK^T and AV; causal attention counted as half), from the config;
    LoRA, norms and activations excluded. Returns a dict of TFLOP.
    """
    v = config.vision_config
    t = getattr(config, "text_config", config)
    hv, iv, depth = v.hidden_size, v.intermediate_size, v.depth
    merge = v.spatial_merge_size
    full_layers = len(v.fullatt_block_indexes)
    window = (v.window_size // v.patch_size) ** 2
    patch_in = v.in_channels * v.temporal_patch_size * v.patch_size**2
    merged = patches // (merge * merge)
    wide = hv * merge * merge

    vision = 2 * patches * depth * (4 * hv * hv + 3 * hv * iv)
    vision += 2 * patches * patch_in * hv
    vision += 2 * merged * (wide * wide + wide * v.out_hidden_size)
    vision_attn = 4 * patches * hv * (
        (depth - full_layers) * window + full_layers * patches
    )

    h, layers = t.hidden_size, t.num_hidden_layers
    kv = t.num_key_value_heads * (h // t.num_attention_heads)
    lm = 2 * lm_tokens * layers * (2 * h * h + 2 * h * kv + 3 * h * t.intermediate_size)
    lm_attn = 2 * lm_tokens * lm_tokens * h * layers
    tera = 1e12
    return {
        "vision_linear": vision / tera,
        "vision_attention": vision_attn / tera,
        "lm_linear": lm / tera,
        "lm_attention": lm_attn / tera,
        "total": (vision + vision_attn + lm + lm_attn) / tera,
    }
