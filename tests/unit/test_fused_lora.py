"""The fused LoRA step (``model/fused_lora.py``) against peft's own
forward on real peft layers: the same sum (float64 to 1e-12), in bf16
within one rounding of peft and no farther from the exact sum; peft's
forward wherever the fused step does not apply."""

import pytest
import torch
from peft import LoraConfig, get_peft_model

from jina_embeddings_v4.model import fused_lora


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up = torch.nn.Linear(64, 96, bias=True)
        self.down = torch.nn.Linear(96, 64, bias=False)

    def forward(self, x):
        return self.down(torch.relu(self.up(x)))


def _model(dtype, alpha=16, adapters=("one",)):
    torch.manual_seed(0)
    config = LoraConfig(
        r=8, lora_alpha=alpha, target_modules=["up", "down"], lora_dropout=0.0
    )
    model = get_peft_model(Block(), config, adapter_name=adapters[0])
    for name in adapters[1:]:
        model.add_adapter(name, config)
    # peft starts B at zero; give every adapter a real low-rank update
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.5)
    model.to(dtype).eval()
    return model


def _both(model, x):
    """``(peft's output, the fused output)`` of ``model`` on ``x``."""
    switch = fused_lora.FusedLoRA(model)
    assert len(switch.layers) == 2
    with torch.inference_mode():
        switch.on = False
        ref = model(x)
        switch.on = True
        out = model(x)
    return ref, out


def test_fused_equals_peft_in_float64():
    model = _model(torch.float64)
    x = torch.randn(3, 5, 64, dtype=torch.float64)
    ref, out = _both(model, x)
    assert out.shape == ref.shape == (3, 5, 64)
    assert torch.max(torch.abs(out - ref)).item() <= 1e-12
    # scaling is lora_alpha / r = 2: a wrong scaling moves the output
    assert model.base_model.model.up.scaling["one"] == 2.0


def test_fused_bf16_is_one_rounding_of_the_exact_sum():
    model = _model(torch.bfloat16)
    x = torch.randn(4, 64).to(torch.bfloat16)
    layer = model.base_model.model.up
    exact = (
        x.double() @ layer.base_layer.weight.double().t()
        + layer.base_layer.bias.double()
        + 2.0
        * (x.double() @ layer.lora_A["one"].weight.double().t())
        @ layer.lora_B["one"].weight.double().t()
    )
    fused_lora.FusedLoRA(model)
    with torch.inference_mode():
        out = layer(x).double()
    # bf16 keeps 8 bits: one rounding of the sum (plus the rank-8 product
    # rounded to bf16 before the GEMM update) stays within 2**-7 relative
    scale = exact.abs().max().item()
    assert torch.max(torch.abs(out - exact)).item() <= scale * 2**-7

    ref, fused = _both(_model(torch.bfloat16), x)
    ref_err = torch.max(torch.abs(ref.double() - fused.double())).item()
    assert ref_err <= ref.double().abs().max().item() * 2**-6


@pytest.mark.parametrize("case", ["disabled", "merged", "two active", "off"])
def test_peft_forward_where_the_fused_step_does_not_apply(case):
    model = _model(torch.float32, adapters=("one", "two"))
    x = torch.randn(2, 64)
    switch = fused_lora.FusedLoRA(model)
    with torch.inference_mode():
        if case == "disabled":
            with model.disable_adapter():
                out = model(x)
            inner = model.base_model.model
            expect = inner.down.base_layer(
                torch.relu(inner.up.base_layer(x))
            )
        elif case == "merged":
            model.merge_adapter()
            out = model(x)
            model.unmerge_adapter()
            switch.on = False
            expect = model(x)
        elif case == "two active":
            model.base_model.set_adapter(["one", "two"])
            out = model(x)
            switch.on = False
            expect = model(x)
        else:
            switch.on = False
            out = model(x)
            expect = type(model.base_model.model.up).forward(
                model.base_model.model.up, x
            )
            expect = model.base_model.model.down(torch.relu(expect))
    assert torch.allclose(out, expect, atol=1e-5)
    if case == "two active":
        # both adapters counted: differs from the first alone
        model.base_model.set_adapter("one")
        with torch.inference_mode():
            assert not torch.allclose(model(x), out, atol=1e-3)
