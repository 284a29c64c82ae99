"""Native Jina Embeddings v4 encoder on stock transformers and peft.

Loads a local snapshot in the official ``jinaai/jina-embeddings-v4`` layout
into the stock ``Qwen2_5_VLModel`` (no ``trust_remote_code``), applies the
three task LoRAs from the single official adapter file as three named peft
adapters, and computes single vectors (mean pooled, Matryoshka-truncatable)
and multi vectors (128-d per token) from one forward pass.

Knows nothing of FiftyOne.
"""

import concurrent.futures
import contextlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLModel,
    Qwen2Tokenizer,
    Qwen2VLImageProcessor,
)
from transformers.models.qwen2_vl.image_processing_qwen2_vl import (
    smart_resize,
)

from . import attention as vision_attention
from . import batching
from . import exact_unmerge, fused_lora, packed_linear
from ..io import image_inputs
from .batching import DEFAULT_MAX_BATCH_TOKENS, PreparedImage
from .snapshot import INDEX_FILE, SINGLE_WEIGHTS_FILE, SnapshotError
from .snapshot import require_complete, weight_map
from ..options import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from ..options import PROMPT_NAMES, TASKS, check_positive_int

logger = logging.getLogger(__name__)

PROMPT_PREFIXES = {"query": "Query: ", "passage": "Passage: "}
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")

MAX_TEXT_TOKENS = 32768

IMAGE_PROMPT_HEAD = "<|im_start|>user\n<|vision_start|>"
IMAGE_PROMPT_TAIL = "<|vision_end|>Describe the image.<|im_end|>\n"

# Items are loaded and sorted by length in chunks of this many batches, so
# that a long list of images never sits decoded in memory all at once.
_CHUNK_BATCHES = 16

# Older 5.x releases give different image vectors than the official code
MIN_TRANSFORMERS = (5, 5, 4)

_LORA_KEY = re.compile(
    r"^base_model\.model\.(?P<module>.+)\.lora_(?P<ab>[AB])\."
    r"(?P<task>[^.]+)\.weight$"
)


@dataclass
class Embeddings:
    """What an ``encode_*`` call returns.

    Attributes:
        single: float32 array ``[n, dim]`` of L2-normalised single vectors,
            or None when not requested
        multi: list of float32 arrays ``[n_tokens_i, 128]``, one per item,
            each token L2-normalised, or None when not requested
        grids: for images, the ``(rows, cols)`` of each image's grid of
            merged 28x28 patches: its multi vectors hold the
            ``rows * cols`` image tokens in row-major order, starting at
            :attr:`JinaV4Encoder.image_token_offset`; None for texts
    """

    single: np.ndarray = None
    multi: list = None
    grids: list = None


@dataclass
class FastPaths:
    """The exact fast paths of a forward pass; each can be turned off.

    Attributes:
        vision_attention ("packed"): ``"packed"`` runs the vision tower's
            attention in one call per layer for the whole batch (see
            ``attention.py``); ``"stock"`` is transformers' per-window loop
        drop_padding_mask (True): run right-padded batches without a
            padding mask (causal attention never lets a real token see the
            padding after it), so SDPA may take its mask-free kernels;
            positions still come from the mask
        prefetch (True): prepare the next batch's images in a thread while
            the current batch runs
        fused_lora (False): add each LoRA's low-rank product into its
            layer's output in one GEMM update instead of peft's three
            full-width passes (see ``fused_lora.py``); off by default: in
            bf16 on a CPU the update's rounding depends on how many rows
            are in the pass, so a page's vectors would depend on its batch
    """

    vision_attention: str = "packed"
    drop_padding_mask: bool = True
    prefetch: bool = True
    fused_lora: bool = False

    @classmethod
    def stock(cls):
        """transformers' own path, as the existing integration runs it."""
        return cls(
            vision_attention="stock",
            drop_padding_mask=False,
            prefetch=False,
            fused_lora=False,
        )

    def validate(self):
        if self.vision_attention not in vision_attention.VISION_CHOICES:
            raise ValueError(
                "Unsupported vision_attention %r; choose one of %s"
                % (
                    self.vision_attention,
                    ", ".join(repr(c) for c in vision_attention.VISION_CHOICES),
                )
            )
        for name in ("drop_padding_mask", "prefetch", "fused_lora"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError("%s must be True or False" % name)
        return self


# errors of a kernel or library that a stock retry may avoid (not out of
# memory: the stock path needs more)
FALLBACK_ERRORS = (RuntimeError, NotImplementedError, ImportError, TypeError)
# the options that turn each fast path off
STOCK_SWITCHES = {
    "vision_attention": "stock",
    "drop_padding_mask": False,
    "fused_lora": False,
    "attn_implementation": "sdpa",
}
# devices (as str) whose fast paths failed in this process
_FELL_BACK = set()


def fast_paths_in_use(fast_paths, attn_implementation):
    """``{option: value}`` of the fast paths a forward pass would take
    (empty for the stock path)."""
    on = {}
    if fast_paths.vision_attention != "stock":
        on["vision_attention"] = fast_paths.vision_attention
    if fast_paths.drop_padding_mask:
        on["drop_padding_mask"] = True
    if fast_paths.fused_lora:
        on["fused_lora"] = True
    if attn_implementation == "flash_attention_2":
        on["attn_implementation"] = attn_implementation
    return on


def check_transformers_version(version):
    """Raises an ImportError unless ``version`` is at least 5.5.4."""
    parts = []
    for piece in version.split(".")[:3]:
        digits = re.match(r"\d+", piece)
        parts.append(int(digits.group()) if digits else 0)

    if tuple(parts) < MIN_TRANSFORMERS:
        raise ImportError(
            "transformers %s is installed; Jina v4 needs transformers >= "
            "%s (older releases compute different image vectors). Run: "
            "pip install -U 'transformers>=5.5.4,<6'"
            % (version, ".".join(map(str, MIN_TRANSFORMERS)))
        )


def resolve_device(device=None):
    """Returns a ``torch.device``: unless told, CUDA when available, then
    Apple's MPS, then the CPU."""
    if device is None:
        device = auto_device_type(
            torch.cuda.is_available(), mps_available()
        )

    return torch.device(device)


def auto_device_type(cuda, mps):
    """The device type ``device=None`` picks: CUDA, then MPS, then CPU."""
    if cuda:
        return "cuda"
    if mps:
        return "mps"
    return "cpu"


def mps_available():
    """Whether Apple's Metal backend (MPS) can run here."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def mps_supports_bf16():
    """bf16 on MPS needs macOS 14 or newer."""
    backend = getattr(torch.backends, "mps", None)
    check = getattr(backend, "is_macos_or_newer", None)
    return bool(check is not None and mps_available() and check(14, 0))


def cpu_has_native_bf16():
    """Whether this CPU has native bf16 instructions (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False

    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def resolve_dtype(dtype, device):
    """Maps a dtype name (or ``"auto"``) to a ``torch.dtype`` for a device.

    ``auto`` means bf16 on CUDA (float32 on GPUs without bf16), bf16 on
    CPUs with native bf16 instructions and float32 on other CPUs, and on
    MPS bf16 from macOS 14 on, float16 before.

    Args:
        dtype: one of :data:`DTYPE_CHOICES` or a ``torch.dtype``
        device: a ``torch.device``

    Returns:
        a ``torch.dtype``
    """
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).replace("torch.", "")

    if dtype not in DTYPE_CHOICES:
        raise ValueError(
            "Unsupported dtype %r; choose one of %s"
            % (dtype, ", ".join(DTYPE_CHOICES))
        )

    if dtype != "auto":
        return getattr(torch, dtype)

    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32

    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16

    if device.type == "mps":
        return torch.bfloat16 if mps_supports_bf16() else torch.float16

    return torch.float32


def validate_task(task):
    """Raises a ValueError naming the valid tasks when ``task`` is unknown."""
    if task not in TASKS:
        raise ValueError(
            "Unknown task %r; choose one of %s" % (task, ", ".join(TASKS))
        )


def validate_prompt_name(prompt_name):
    """Raises a ValueError naming the valid prompt names when unknown."""
    if prompt_name not in PROMPT_NAMES:
        raise ValueError(
            "Unknown prompt_name %r; choose one of %s"
            % (prompt_name, ", ".join(PROMPT_NAMES))
        )


def validate_truncate_dim(truncate_dim, dims):
    """Raises a ValueError unless ``truncate_dim`` is None or in ``dims``."""
    if truncate_dim is None:
        return

    if isinstance(truncate_dim, bool) or truncate_dim not in dims:
        raise ValueError(
            "Unsupported truncate_dim %r; choose one of %s or None"
            % (truncate_dim, ", ".join(map(str, dims)))
        )


def validate_pixels(min_pixels, max_pixels):
    """Raises a ValueError unless ``0 < min_pixels <= max_pixels``."""
    for name, value in (
        ("min_pixels", min_pixels),
        ("max_pixels", max_pixels),
    ):
        check_positive_int(name, value)

    if min_pixels > max_pixels:
        raise ValueError(
            "min_pixels (%d) must not exceed max_pixels (%d)"
            % (min_pixels, max_pixels)
        )


def text_prefix(task, prompt_name):
    """The instruction prefix for a text: text-matching is symmetric."""
    validate_task(task)
    validate_prompt_name(prompt_name)
    if task == "text-matching":
        return PROMPT_PREFIXES["query"]

    return PROMPT_PREFIXES[prompt_name]


def truncate_and_normalize(vectors, dim=None):
    """Matryoshka truncation: keep the first ``dim`` values, L2-normalise.

    Args:
        vectors: a float tensor ``[n, d]``
        dim (None): the number of leading dimensions to keep, or None

    Returns:
        a float32 tensor ``[n, dim or d]`` with unit rows
    """
    vectors = vectors.float()
    if dim is not None:
        vectors = vectors[:, :dim]

    return F.normalize(vectors, p=2, dim=-1)


def vision_span_mask(input_ids, vision_start_id, vision_end_id):
    """Marks, per row, the tokens from vision start to vision end inclusive.

    Args:
        input_ids: a ``[B, L]`` tensor of token ids
        vision_start_id: the id of ``<|vision_start|>``
        vision_end_id: the id of ``<|vision_end|>``

    Returns:
        a bool tensor ``[B, L]``
    """
    starts = (input_ids == vision_start_id).long()
    ends = (input_ids == vision_end_id).long()
    depth = starts.cumsum(dim=1) - ends.cumsum(dim=1) + ends
    return depth > 0


def masked_mean(hidden, mask):
    """Mean of ``hidden [B, L, D]`` over the positions where ``mask [B, L]``.

    Accumulates in float32.
    """
    weights = mask.to(torch.float32).unsqueeze(-1)
    total = (hidden.float() * weights).sum(dim=1)
    return total / weights.sum(dim=1).clamp_min(1.0)


class _Backbone(Qwen2_5_VLModel):
    """The stock Qwen2.5-VL base model; the projector is loaded apart."""

    _keys_to_ignore_on_load_unexpected = [r"^multi_vector_projector\."]


class JinaV4Modules(torch.nn.Module):
    """The module tree of the official model, so adapter keys line up.

    ``model`` is the stock Qwen2.5-VL base model (no LM head) and
    ``multi_vector_projector`` the 2048 -> 128 projection.
    """

    def __init__(self, backbone, projector):
        super().__init__()
        self.model = backbone
        self.multi_vector_projector = projector


class JinaV4Encoder:
    """Jina Embeddings v4 on stock transformers + peft.

    Args:
        snapshot_dir: a local folder in the official snapshot layout
        device (None): a device string or ``torch.device``; CUDA when
            available, else CPU
        dtype ("auto"): one of :data:`DTYPE_CHOICES`; see
            :func:`resolve_dtype`
        attn_implementation (None): ``"sdpa"``, ``"flash_attention_2"`` or
            ``"eager"``; by default flash attention when the ``flash_attn``
            package is installed and the model runs in half precision on
            CUDA, else SDPA
        merge_lora (False): merge the active task's LoRA into the weights
            (fewer, larger matmuls); switching task unmerges first, by
            reading the base weights back from the snapshot (exact: no
            drift however often tasks switch; see ``exact_unmerge.py``).
            In half precision the merged weights round differently (see
            the README for the measured distance)
        pack_weights (None): keep the linear layers' weights packed for
            oneDNN (bit-equal outputs; the per-call weight reorder is gone;
            see ``packed_linear.py``); None: on a CPU in bf16, where it is
            supported
        cpu_max_batch_tokens (1024): on a CPU, padded tokens per forward
            pass at most, whatever ``max_batch_tokens`` a call passes (one
            full page: larger passes were slower per page there; see
            :data:`batching.CPU_MAX_BATCH_TOKENS`); None: no CPU bound
    """

    def __init__(
        self,
        snapshot_dir,
        device=None,
        dtype="auto",
        attn_implementation=None,
        merge_lora=False,
        pack_weights=None,
        cpu_max_batch_tokens=batching.CPU_MAX_BATCH_TOKENS,
    ):
        self.snapshot_dir = os.path.abspath(os.fspath(snapshot_dir))
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.attn_implementation = attn_implementation or default_attention(
            self.device, self.dtype
        )

        if not isinstance(merge_lora, bool):
            raise ValueError("merge_lora must be True or False")
        self.merge_lora = merge_lora
        self._merged_task = None
        self.pack_weights = packed_linear.resolve(
            pack_weights, self.device, self.dtype
        )
        batching.validate_cpu_max_batch_tokens(cpu_max_batch_tokens)
        self.cpu_max_batch_tokens = cpu_max_batch_tokens

        check_transformers_version(transformers.__version__)
        require_complete(self.snapshot_dir)
        vision_attention.register()
        self.forward_calls = 0
        self._lock = threading.RLock()
        self._load()
        logger.info(
            "Loaded Jina v4 from %s on %s in %s (attention: %s)",
            self.snapshot_dir,
            self.device,
            str(self.dtype).replace("torch.", ""),
            self.attn_implementation,
        )

    # -- loading ---------------------------------------------------------

    def _load(self):
        # what the weight files are before they are read, so that an exact
        # unmerge reads them only while they are still what was loaded
        self._weight_stamps = exact_unmerge.stamps(self.snapshot_dir)
        config = Qwen2_5_VLConfig.from_pretrained(self.snapshot_dir)
        self.config = config
        text_config = getattr(config, "text_config", config)
        self.hidden_size = int(text_config.hidden_size)
        self.multi_vector_dim = int(
            getattr(config, "multi_vector_projector_dim", 128)
        )
        self.matryoshka_dims = tuple(
            int(d) for d in (getattr(config, "matryoshka_dims", None) or ())
        )
        tasks = tuple(getattr(config, "task_names", None) or TASKS)
        if tuple(sorted(tasks)) != tuple(sorted(TASKS)):
            raise SnapshotError(
                "config.json of '%s' lists tasks %s; expected %s"
                % (self.snapshot_dir, list(tasks), list(TASKS))
            )

        self.tokenizer = Qwen2Tokenizer.from_pretrained(self.snapshot_dir)
        self.image_processor = Qwen2VLImageProcessor.from_pretrained(
            self.snapshot_dir
        )
        self._token_ids = self._special_token_ids(config)

        with _quiet_weight_loading():
            backbone, info = _Backbone.from_pretrained(
                self.snapshot_dir,
                config=config,
                dtype=self.dtype,
                attn_implementation=self.attn_implementation,
                # Official checkpoints use the pre-v5 names
                key_mapping={
                    r"^visual\.": "visual.",
                    r"^model\.": "language_model.",
                },
                use_safetensors=True,
                device_map={"": self.device},
                output_loading_info=True,
            )
        if info["missing_keys"] or info["mismatched_keys"]:
            raise SnapshotError(
                "Weights in '%s' do not match the Qwen2.5-VL architecture: "
                "missing %s, mismatched %s"
                % (
                    self.snapshot_dir,
                    sorted(info["missing_keys"])[:10],
                    sorted(info["mismatched_keys"])[:10],
                )
            )

        projector = self._load_projector()
        modules = JinaV4Modules(backbone, projector)
        self._peft_model = self._attach_adapters(modules)
        self._peft_model.eval()
        self._fused_lora = fused_lora.FusedLoRA(self._peft_model)
        self._modules = modules
        self._active_task = None
        self._packed = packed_linear.PackedLinears(modules)
        if self.pack_weights:
            self._packed.pack()

    def _special_token_ids(self, config):
        ids = {}
        for name, token in (
            ("vision_start", "<|vision_start|>"),
            ("vision_end", "<|vision_end|>"),
            ("image_pad", "<|image_pad|>"),
        ):
            token_id = self.tokenizer.convert_tokens_to_ids(token)
            if token_id is None or token_id == self.tokenizer.unk_token_id:
                raise SnapshotError(
                    "The tokenizer in '%s' lacks the special token %s"
                    % (self.snapshot_dir, token)
                )
            ids[name] = token_id

        if ids["image_pad"] != config.image_token_id:
            raise SnapshotError(
                "Tokenizer id of <|image_pad|> (%d) differs from "
                "config.image_token_id (%d)"
                % (ids["image_pad"], config.image_token_id)
            )

        return ids

    def _load_projector(self):
        from safetensors import safe_open

        weight_key = "multi_vector_projector.weight"
        bias_key = "multi_vector_projector.bias"
        shard = self._shard_of(weight_key)
        with safe_open(shard, framework="pt") as f:
            keys = set(f.keys())
            if weight_key not in keys or bias_key not in keys:
                raise SnapshotError(
                    "'%s' lacks %s/%s" % (shard, weight_key, bias_key)
                )
            weight = f.get_tensor(weight_key)
            bias = f.get_tensor(bias_key)

        out_dim, in_dim = weight.shape
        if in_dim != self.hidden_size or out_dim != self.multi_vector_dim:
            raise SnapshotError(
                "multi_vector_projector has shape %s; expected [%d, %d]"
                % (list(weight.shape), self.multi_vector_dim, self.hidden_size)
            )

        projector = torch.nn.Linear(in_dim, out_dim, bias=True)
        with torch.no_grad():
            projector.weight.copy_(weight)
            projector.bias.copy_(bias)

        return projector.to(device=self.device, dtype=self.dtype)

    def _shard_of(self, key):
        weights = weight_map(self.snapshot_dir)
        if weights is None:
            return os.path.join(self.snapshot_dir, SINGLE_WEIGHTS_FILE)
        if key not in weights:
            raise SnapshotError("%s does not list %s" % (INDEX_FILE, key))
        return os.path.join(self.snapshot_dir, weights[key])

    def _attach_adapters(self, modules):
        from peft import LoraConfig, PeftModel
        from safetensors.torch import load_file

        adapter_dir = os.path.join(self.snapshot_dir, "adapters")
        with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
            adapter_config = json.load(f)

        if adapter_config.get("use_dora"):
            raise SnapshotError("DoRA adapters are not supported")

        state = load_file(
            os.path.join(adapter_dir, "adapter_model.safetensors")
        )
        targets = set()
        tasks_in_file = set()
        for key in state:
            match = _LORA_KEY.match(key)
            if match is None:
                raise SnapshotError(
                    "Unexpected tensor %r in the adapter file; expected "
                    "'base_model.model.<module>.lora_<A|B>.<task>.weight'"
                    % key
                )
            targets.add(match["module"])
            tasks_in_file.add(match["task"])

        if tasks_in_file != set(TASKS):
            raise SnapshotError(
                "The adapter file holds tasks %s; expected %s"
                % (sorted(tasks_in_file), sorted(TASKS))
            )

        lora_config = LoraConfig(
            r=int(adapter_config["r"]),
            lora_alpha=adapter_config["lora_alpha"],
            use_rslora=bool(adapter_config.get("use_rslora", False)),
            rank_pattern=adapter_config.get("rank_pattern") or {},
            alpha_pattern=adapter_config.get("alpha_pattern") or {},
            # exact module names, derived from the keys: the file's regex
            # is not guaranteed to match the stock module tree
            target_modules=sorted(targets),
            lora_dropout=0.0,
            bias="none",
            inference_mode=True,
        )
        peft_model = PeftModel(
            modules,
            lora_config,
            adapter_name=TASKS[0],
            autocast_adapter_dtype=False,
        )
        for task in TASKS[1:]:
            peft_model.add_adapter(task, lora_config)

        expected = {k for k in peft_model.state_dict() if ".lora_" in k}
        if expected != set(state):
            raise SnapshotError(
                "The adapter file does not match the model: %d tensors not "
                "applied (e.g. %s), %d LoRA weights not in the file (e.g. %s)"
                % (
                    len(set(state) - expected),
                    sorted(set(state) - expected)[:3],
                    len(expected - set(state)),
                    sorted(expected - set(state))[:3],
                )
            )

        result = peft_model.load_state_dict(state, strict=False)
        not_loaded = set(result.unexpected_keys) | (
            set(result.missing_keys) & expected
        )
        if not_loaded:
            raise SnapshotError(
                "%d adapter tensors were not applied, e.g. %s"
                % (len(not_loaded), sorted(not_loaded)[:3])
            )

        # Only the LoRA weights take the model dtype: a blanket
        # .to(dtype=...) would also cast the float32 RoPE inv_freq
        # buffers, and bf16 frequencies shift positions over long inputs
        peft_model.to(self.device)
        for name, param in peft_model.named_parameters():
            if ".lora_" in name:
                param.data = param.data.to(self.dtype)

        return peft_model

    # -- public API ------------------------------------------------------

    @property
    def tasks(self):
        """The task names, each with its own LoRA."""
        return TASKS

    @property
    def backbone(self):
        """The Qwen2.5-VL model under the LoRAs (``.visual`` is the vision
        tower, ``.language_model`` the language model), e.g. for timing
        hooks; calling it directly bypasses the task and fast-path
        settings of the ``encode_*`` methods."""
        return self._modules.model

    def set_merge_lora(self, merge_lora):
        """Turns LoRA merging on or off for the next calls (unmerging now
        when turning it off). For an encoder of one's own: encoders shared
        through the zoo's cache are keyed by their ``merge_lora``."""
        if not isinstance(merge_lora, bool):
            raise ValueError("merge_lora must be True or False")
        with self._lock:
            if not merge_lora and self._merged_task is not None:
                try:
                    with self._packed.unpacked():
                        self._unmerge()
                except BaseException:
                    # partly unmerged: the next call activates its task
                    # again (layers already restored are skipped)
                    self._active_task = None
                    raise
            self.merge_lora = merge_lora

    def set_pack_weights(self, pack_weights):
        """Packs the linear layers' weights for oneDNN (True) or puts the
        plain weights back (False), for the next calls."""
        if not isinstance(pack_weights, bool):
            raise ValueError("pack_weights must be True or False")
        packed_linear.resolve(pack_weights, self.device, self.dtype)
        with self._lock:
            if pack_weights:
                self._packed.pack()
            else:
                self._packed.unpack()
            self.pack_weights = pack_weights

    def validate_truncate_dim(self, truncate_dim):
        """Raises a ValueError unless ``truncate_dim`` is None or allowed."""
        validate_truncate_dim(truncate_dim, self.matryoshka_dims)

    def encode_texts(
        self,
        texts,
        task="retrieval",
        prompt_name="query",
        batch_size=8,
        return_single=True,
        return_multi=False,
        truncate_dim=None,
        max_length=MAX_TEXT_TOKENS,
        max_batch_tokens=DEFAULT_MAX_BATCH_TOKENS,
        fast_paths=None,
    ):
        """Embeds texts.

        Args:
            texts: a string or a list of strings
            task ("retrieval"): one of :data:`TASKS`
            prompt_name ("query"): ``"query"`` or ``"passage"``; selects the
                ``Query: ``/``Passage: `` prefix (text-matching always
                uses ``Query: ``)
            batch_size (8): texts per forward pass
            return_single (True): whether to return single vectors
            return_multi (False): whether to return multi vectors
            truncate_dim (None): Matryoshka dimension for single vectors
            max_length (32768): longer texts are truncated to this many
                tokens (their start is kept)
            max_batch_tokens (65536): padded tokens per forward pass at
                most (None: no bound); on a CPU at most the encoder's
                ``cpu_max_batch_tokens``
            fast_paths (None): a :class:`FastPaths`; None for the defaults

        Returns:
            an :class:`Embeddings`
        """
        fast_paths = (fast_paths or FastPaths()).validate()
        batching.validate_max_batch_tokens(max_batch_tokens)
        if isinstance(texts, str):
            texts = [texts]

        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(
                    "Text inputs must be strings; item %d is %s"
                    % (i, type(text).__name__)
                )

        prefix = text_prefix(task, prompt_name)
        self._check_call(batch_size, return_single, return_multi, truncate_dim)
        if isinstance(max_length, bool) or not isinstance(max_length, int):
            raise ValueError(
                "max_length must be an integer, got %r" % (max_length,)
            )
        if max_length < 1:
            raise ValueError("max_length must be >= 1, got %d" % max_length)

        if not texts:
            return self._empty(return_single, return_multi, truncate_dim)

        encoded = self.tokenizer(
            [prefix + t for t in texts],
            add_special_tokens=False,
            truncation=True,
            max_length=max_length,
        )["input_ids"]
        batches = batching.plan_batches(
            [len(e) for e in encoded],
            batch_size,
            self._batch_tokens(max_batch_tokens),
        )

        results = {}
        for batch in batches:
            inputs = self._pad([encoded[i] for i in batch])
            out = self._run(
                inputs,
                task,
                return_single,
                return_multi,
                truncate_dim,
                pool_mask=inputs["attention_mask"].bool(),
                fast_paths=fast_paths,
            )
            _scatter(results, batch, out)

        return self._collect(results, len(texts), return_single, return_multi)

    def prompt_tokens(
        self,
        texts,
        task="retrieval",
        prompt_name="query",
        max_length=MAX_TEXT_TOKENS,
    ):
        """The tokens :meth:`encode_texts` embeds, one multi vector each.

        Args:
            texts: a string or a list of strings
            task ("retrieval"): the task (it selects the prefix)
            prompt_name ("query"): ``"query"`` or ``"passage"``
            max_length (32768): as in :meth:`encode_texts`

        Returns:
            a list of ``(tokens, n_prefix)``: the tokens as text, and how
            many leading tokens are the instruction prefix (``Query: ``)
        """
        if isinstance(texts, str):
            texts = [texts]

        prefix = text_prefix(task, prompt_name)
        encoded = self.tokenizer(
            [prefix + t for t in texts],
            add_special_tokens=False,
            truncation=True,
            max_length=max_length,
            return_offsets_mapping=True,
        )
        out = []
        for ids, offsets in zip(
            encoded["input_ids"], encoded["offset_mapping"]
        ):
            # a token that ends within the prefix is part of it
            n_prefix = sum(1 for _, end in offsets if end <= len(prefix))
            tokens = [self.tokenizer.decode([i]) for i in ids]
            out.append((tokens, n_prefix))

        return out

    def encode_images(
        self,
        images,
        task="retrieval",
        batch_size=8,
        return_single=True,
        return_multi=False,
        truncate_dim=None,
        max_pixels=DEFAULT_MAX_PIXELS,
        min_pixels=DEFAULT_MIN_PIXELS,
        max_batch_tokens=DEFAULT_MAX_BATCH_TOKENS,
        fast_paths=None,
    ):
        """Embeds images (document pages).

        Args:
            images: a list of PIL images (any mode), numpy arrays (HWC),
                torch tensors (CHW), file paths, or
                :class:`batching.PreparedImage` (see
                :meth:`prepare_image`)
            task ("retrieval"): one of :data:`TASKS`
            batch_size (8): images per forward pass at most
            return_single (True): whether to return single vectors
            return_multi (False): whether to return multi vectors
            truncate_dim (None): Matryoshka dimension for single vectors
            max_pixels (602112): resize budget per image; bounds the image
                tokens (``max_pixels / 784``) and so time and memory
            min_pixels (3136): smaller images are upscaled to this
            max_batch_tokens (65536): padded tokens per forward pass at
                most (None: no bound); big pages then go in smaller
                batches. On a CPU at most the encoder's
                ``cpu_max_batch_tokens`` (1024) whatever is passed: larger
                passes are slower per page there
            fast_paths (None): a :class:`FastPaths`; None for the defaults

        Returns:
            an :class:`Embeddings`
        """
        if not isinstance(images, (list, tuple)):
            images = [images]

        fast_paths = (fast_paths or FastPaths()).validate()
        validate_task(task)
        validate_pixels(min_pixels, max_pixels)
        batching.validate_max_batch_tokens(max_batch_tokens)
        self._check_call(batch_size, return_single, return_multi, truncate_dim)
        if not images:
            out = self._empty(return_single, return_multi, truncate_dim)
            out.grids = []
            return out

        merge = self.image_processor.merge_size
        results, grids = {}, {}
        chunk = batch_size * _CHUNK_BATCHES
        for start in range(0, len(images), chunk):
            indices = list(range(start, min(start + chunk, len(images))))
            items = [self._image_item(images[i], max_pixels, min_pixels)
                     for i in indices]
            tokens = [self._item_tokens(x, max_pixels, min_pixels)
                      for x in items]
            batches = batching.plan_batches(
                tokens,
                batch_size,
                self._batch_tokens(max_batch_tokens),
            )
            prepared = self._prepared_batches(
                [[items[k] for k in b] for b in batches],
                max_pixels,
                min_pixels,
                fast_paths.prefetch,
            )
            for batch, inputs in zip(batches, prepared):
                batch = [indices[k] for k in batch]
                pool_mask = inputs["attention_mask"].bool() & (
                    vision_span_mask(
                        inputs["input_ids"],
                        self._token_ids["vision_start"],
                        self._token_ids["vision_end"],
                    )
                )
                out = self._run(
                    inputs,
                    task,
                    return_single,
                    return_multi,
                    truncate_dim,
                    pool_mask=pool_mask,
                    fast_paths=fast_paths,
                )
                _scatter(results, batch, out)
                for index, (_, h, w) in zip(
                    batch, inputs["image_grid_thw"].tolist()
                ):
                    grids[index] = (h // merge, w // merge)

        out = self._collect(results, len(images), return_single, return_multi)
        out.grids = [grids[i] for i in range(len(images))]
        return out

    def prepare_image(
        self,
        image,
        max_pixels=DEFAULT_MAX_PIXELS,
        min_pixels=DEFAULT_MIN_PIXELS,
    ):
        """Runs the image processor on one image, ahead of
        :meth:`encode_images` (FiftyOne's data loader workers do this, so
        that preprocessing overlaps the forward pass).

        Returns:
            a :class:`batching.PreparedImage`
        """
        validate_pixels(min_pixels, max_pixels)
        return batching.prepare_image(
            self.image_processor,
            image_inputs.to_rgb(image),
            max_pixels,
            min_pixels,
        )

    def _image_item(self, image, max_pixels, min_pixels):
        if isinstance(image, PreparedImage):
            if (image.max_pixels, image.min_pixels) != (max_pixels, min_pixels):
                raise ValueError(
                    "An image was prepared with max_pixels=%d, min_pixels=%d "
                    "but is encoded with %d, %d"
                    % (image.max_pixels, image.min_pixels, max_pixels,
                       min_pixels)
                )
            return image
        return image_inputs.to_rgb(image)

    def _item_tokens(self, item, max_pixels, min_pixels):
        if isinstance(item, PreparedImage):
            return item.tokens(self.image_processor.merge_size)
        return self.count_image_tokens(item.size, max_pixels, min_pixels)

    def _prepared_batches(self, batches, max_pixels, min_pixels, prefetch):
        """The model inputs of each batch, in order; with ``prefetch`` the
        next batch is prepared in a thread while the caller runs this one."""
        make = lambda b: self._image_inputs(b, max_pixels, min_pixels)
        if not prefetch or len(batches) < 2:
            for b in batches:
                yield make(b)
            return

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(make, batches[0])
            for b in batches[1:]:
                ready = future.result()
                future = pool.submit(make, b)
                yield ready
            yield future.result()

    @property
    def image_token_offset(self):
        """Position of an image's first image token in its multi vectors
        (the chat-template tokens before it)."""
        return len(self._template_ids(IMAGE_PROMPT_HEAD))

    def image_grid(
        self,
        size,
        max_pixels=DEFAULT_MAX_PIXELS,
        min_pixels=DEFAULT_MIN_PIXELS,
    ):
        """The ``(rows, cols)`` of merged 28x28 patches an image of
        ``size = (width, height)`` becomes (the processor resizes the whole
        image to multiples of 28, without cropping or padding)."""
        width, height = size
        factor = (
            self.image_processor.patch_size * self.image_processor.merge_size
        )
        h, w = smart_resize(
            height, width, factor, min_pixels=min_pixels, max_pixels=max_pixels
        )
        return h // factor, w // factor

    def count_image_tokens(
        self,
        size,
        max_pixels=DEFAULT_MAX_PIXELS,
        min_pixels=DEFAULT_MIN_PIXELS,
    ):
        """Image tokens an image of ``size = (width, height)`` turns into."""
        rows, cols = self.image_grid(size, max_pixels, min_pixels)
        return rows * cols

    # -- internals -------------------------------------------------------

    def _batch_tokens(self, max_batch_tokens):
        return batching.device_batch_tokens(
            max_batch_tokens, self.device.type, self.cpu_max_batch_tokens
        )

    def _check_call(self, batch_size, return_single, return_multi, dim):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int):
            raise ValueError(
                "batch_size must be an integer, got %r" % batch_size
            )
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1, got %d" % batch_size)
        if not (return_single or return_multi):
            raise ValueError(
                "Nothing to compute: set return_single and/or return_multi"
            )
        self.validate_truncate_dim(dim)

    def _pad(self, sequences):
        longest = max(len(s) for s in sequences)
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id or 0

        # Right padding keeps text positions 0..n-1 whatever the batch.
        input_ids = torch.full((len(sequences), longest), pad_id)
        attention_mask = torch.zeros(
            (len(sequences), longest), dtype=torch.long
        )
        for row, seq in enumerate(sequences):
            input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            attention_mask[row, : len(seq)] = 1

        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def _image_inputs(self, images, max_pixels, min_pixels):
        prepared = [
            img
            if isinstance(img, PreparedImage)
            else batching.prepare_image(
                self.image_processor, img, max_pixels, min_pixels
            )
            for img in images
        ]
        pixel_values, grids = batching.stack_prepared(prepared)
        merge = self.image_processor.merge_size**2
        head = self._template_ids(IMAGE_PROMPT_HEAD)
        tail = self._template_ids(IMAGE_PROMPT_TAIL)
        pad_id = self._token_ids["image_pad"]
        sequences = [
            head + [pad_id] * int(grid.prod() // merge) + tail
            for grid in grids
        ]
        inputs = self._pad(sequences)
        inputs["pixel_values"] = pixel_values
        inputs["image_grid_thw"] = grids
        return inputs

    def _template_ids(self, text):
        cache = self.__dict__.setdefault("_template_cache", {})
        if text not in cache:
            cache[text] = self.tokenizer(text, add_special_tokens=False)[
                "input_ids"
            ]
        return cache[text]

    def _run(
        self,
        inputs,
        task,
        want_single,
        want_multi,
        truncate_dim,
        pool_mask,
        fast_paths,
    ):
        """One forward pass; a fast path that fails on this device (a
        kernel, flash-attn, a dtype no test has run there) falls back to
        the stock path for the rest of the process, with one warning."""
        args = (inputs, task, want_single, want_multi, truncate_dim, pool_mask)
        if str(self.device) in _FELL_BACK:
            fast_paths = FastPaths.stock()
        try:
            return self._run_once(*args, fast_paths)
        except Exception as e:
            if not self._fall_back(fast_paths, e):
                raise

        return self._run_once(*args, FastPaths.stock())

    def _fall_back(self, fast_paths, error):
        """Turns this device's fast paths off after ``error``; returns
        whether a stock retry makes sense."""
        on = fast_paths_in_use(fast_paths, self.attn_implementation)
        if (
            not on
            or not isinstance(error, FALLBACK_ERRORS)
            or isinstance(error, torch.OutOfMemoryError)
        ):
            return False

        device = str(self.device)
        _FELL_BACK.add(device)
        if self.attn_implementation == "flash_attention_2":
            self.attn_implementation = "sdpa"
            language = getattr(self._modules.model, "language_model", None)
            if language is not None:
                language.config._attn_implementation = "sdpa"
        logger.warning(
            "A fast path failed on %s (%s: %s) with %s; this process uses "
            "the stock path on %s from now on. To skip the attempt, load the "
            "model with %s",
            device,
            type(error).__name__,
            str(error).splitlines()[0][:200] if str(error) else "",
            ", ".join("%s=%r" % kv for kv in on.items()),
            device,
            ", ".join("%s=%r" % kv for kv in STOCK_SWITCHES.items() if kv[0] in on),
        )
        return True

    def _run_once(
        self,
        inputs,
        task,
        want_single,
        want_multi,
        truncate_dim,
        pool_mask,
        fast_paths,
    ):
        validate_task(task)
        device = self.device
        input_ids = inputs["input_ids"].to(device)
        attention_mask = inputs["attention_mask"].to(device)
        kwargs = {}
        grid = None
        if "pixel_values" in inputs:
            grid = inputs["image_grid_thw"].to(device)
            kwargs["pixel_values"] = inputs["pixel_values"].to(
                device=device, dtype=self.dtype
            )
            kwargs["image_grid_thw"] = grid

        model_mask = attention_mask
        if fast_paths.drop_padding_mask and _right_padded(attention_mask):
            # positions from the mask, then no mask: with causal attention
            # and right padding, no real token attends to padding
            kwargs["position_ids"] = self._mrope_positions(
                input_ids, attention_mask, grid
            )
            model_mask = None
        elif grid is not None:
            kwargs["position_ids"] = self._mrope_positions(
                input_ids, attention_mask, grid
            )

        with self._lock, torch.inference_mode():
            self.forward_calls += 1
            self._activate(task)
            self._set_vision_attention(fast_paths.vision_attention)
            self._fused_lora.on = fast_paths.fused_lora
            hidden = self._modules.model(
                input_ids=input_ids,
                attention_mask=model_mask,
                use_cache=False,
                **kwargs,
            ).last_hidden_state

            single = multi = None
            if want_single:
                pooled = masked_mean(hidden, pool_mask.to(device))
                single = truncate_and_normalize(pooled, truncate_dim).cpu()
            if want_multi:
                projected = self._modules.multi_vector_projector(hidden)
                projected = F.normalize(projected.float(), p=2, dim=-1).cpu()
                keep = attention_mask.bool().cpu()
                multi = [projected[r][keep[r]] for r in range(len(keep))]

        return single, multi

    def _activate(self, task):
        """Makes ``task``'s LoRA the active one (merged, with merge_lora)."""
        if self._active_task == task and (
            not self.merge_lora or self._merged_task == task
        ):
            return

        changes_weights = self._merged_task is not None or self.merge_lora
        try:
            with (
                self._packed.unpacked()
                if changes_weights
                else contextlib.nullcontext()
            ):
                if self._merged_task is not None:
                    self._unmerge()
                self._peft_model.set_adapter(task)
                self._active_task = task
                if self.merge_lora:
                    # recorded first: a merge that stops part way is
                    # unmerged by the next activation
                    self._merged_task = task
                    self._peft_model.merge_adapter()
        except BaseException:
            # weights half way between two tasks: whatever the next call
            # asks for is activated from scratch
            self._active_task = None
            raise

    def _unmerge(self):
        """Unmerges the merged task's LoRA, base weights read back from
        the snapshot (exact; see ``exact_unmerge.py``)."""
        restored, subtracted = exact_unmerge.unmerge(
            self._peft_model, self.snapshot_dir, self._weight_stamps
        )
        logger.debug(
            "Unmerged %s: %d layers read back, %d subtracted",
            self._merged_task, restored, subtracted,
        )
        self._merged_task = None

    def _set_vision_attention(self, choice):
        config = self._modules.model.visual.config
        wanted = (
            vision_attention.PACKED
            if choice == "packed"
            else self.attn_implementation
        )
        if config._attn_implementation != wanted:
            config._attn_implementation = wanted

    def _mrope_positions(self, input_ids, attention_mask, grid=None):
        token_type = (input_ids == self._token_ids["image_pad"]).int()
        positions, _ = self._modules.model.get_rope_index(
            input_ids,
            mm_token_type_ids=token_type,
            image_grid_thw=grid,
            attention_mask=attention_mask,
        )
        return positions

    def _empty(self, want_single, want_multi, truncate_dim):
        dim = truncate_dim or self.hidden_size
        return Embeddings(
            single=np.zeros((0, dim), np.float32) if want_single else None,
            multi=[] if want_multi else None,
        )

    def _collect(self, results, n, want_single, want_multi):
        single = multi = None
        if want_single:
            rows = [results[i][0].numpy() for i in range(n)]
            single = np.stack(rows).astype(np.float32, copy=False)
        if want_multi:
            multi = [
                results[i][1].numpy().astype(np.float32) for i in range(n)
            ]

        return Embeddings(single=single, multi=multi)


def _right_padded(attention_mask):
    """Whether every row is its real tokens, then only padding."""
    mask = attention_mask.bool()
    lengths = mask.sum(dim=1, keepdim=True)
    positions = torch.arange(mask.shape[1], device=mask.device)
    return bool(torch.equal(mask, positions.unsqueeze(0) < lengths))


def _scatter(results, batch, out):
    # a batch's rows back to the items' input positions
    single, multi = out
    for row, index in enumerate(batch):
        results[index] = (
            single[row] if single is not None else None,
            multi[row] if multi is not None else None,
        )


@contextlib.contextmanager
def _quiet_weight_loading():
    """transformers draws a "Loading weights" bar per load; the zoo loads
    once per process (and FiftyOne draws the bars that matter), so it is
    off while loading, and restored after."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def default_attention(device, dtype):
    """Flash attention when installed and in half precision on CUDA, else
    SDPA."""
    if device.type == "cuda" and dtype in (torch.bfloat16, torch.float16):
        import importlib.util

        if importlib.util.find_spec("flash_attn") is None:
            return "sdpa"
        return "flash_attention_2"

    return "sdpa"
