"""An unmerged LoRA step in one GEMM update: ``y = W x``, then
``y += scaling * B (A x)`` in place.

peft's ``lora.Linear`` computes ``result + lora_B(lora_A(x)) * scaling``:
the low-rank product is written out at the layer's full output width,
multiplied by ``scaling`` into a second copy and added into a third, each
rounded to the model's dtype. For Jina v4's language model (rank 32 on
every projection, outputs up to 11008 wide) those passes over memory cost
as much as a tenth of a page on a 2-core CPU. Here the base layer's output
is updated by one ``addmm_``: the GEMM reads it once, adds the product
with its accumulator's precision and rounds once, so the result is the
same sum rounded fewer times (equal in float32 up to summation order;
within a bf16 rounding of peft's in bf16: tests check both).

Layers this step does not cover run peft's own forward: adapters turned
off or merged, several active adapters, LoRA variants (DoRA...), dropout,
a bias on the LoRA layers, inputs of another dtype, extra arguments.

Knows nothing of FiftyOne or of the model's layout; only peft's
``lora.Linear`` attributes.
"""

import logging

import torch

logger = logging.getLogger(__name__)


def _lora_linears(root):
    from peft.tuners.lora import Linear as LoraLinear

    return [m for m in root.modules() if type(m) is LoraLinear]


class FusedLoRA:
    """peft's ``lora.Linear`` layers under ``root``, given the fused step
    while :attr:`on` is True (peft's own forward otherwise).

    Args:
        root: a ``torch.nn.Module`` holding peft LoRA layers
    """

    def __init__(self, root):
        self.on = True
        self.layers = _lora_linears(root)
        for module in self.layers:
            module.forward = _make_forward(self, module)
        logger.debug("Fused LoRA step on %d layers", len(self.layers))


def _make_forward(switch, module):
    peft_forward = type(module).forward.__get__(module)

    def forward(x, *args, **kwargs):
        if not switch.on or args or kwargs:
            return peft_forward(x, *args, **kwargs)
        step = _plain_adapter(module, x)
        if step is None:
            return peft_forward(x, *args, **kwargs)
        lora_a, lora_b, scaling = step
        result = module.base_layer(x)
        if result.dtype != x.dtype or not result.is_contiguous():
            return result + torch.nn.functional.linear(
                torch.nn.functional.linear(x, lora_a), lora_b
            ) * scaling
        low = torch.nn.functional.linear(x, lora_a)
        out = result.view(-1, result.shape[-1])
        out.addmm_(low.reshape(-1, low.shape[-1]), lora_b.t(), alpha=scaling)
        return result

    return forward


def _plain_adapter(module, x):
    """``(A weight, B weight, scaling)`` of the one active, plain adapter
    of ``module`` for input ``x``; None when peft's forward must run."""
    if module.disable_adapters or module.merged:
        return None
    active = module.active_adapters
    if len(active) != 1:
        return None
    name = active[0]
    if name not in module.lora_A or name in getattr(module, "lora_variant", {}):
        return None
    lora_a, lora_b = module.lora_A[name], module.lora_B[name]
    if not isinstance(module.lora_dropout[name], torch.nn.Identity):
        return None
    if lora_a.bias is not None or lora_b.bias is not None:
        return None
    if not (x.dtype == lora_a.weight.dtype == lora_b.weight.dtype):
        return None
    if x.dim() < 2:
        return None
    return lora_a.weight, lora_b.weight, float(module.scaling[name])
