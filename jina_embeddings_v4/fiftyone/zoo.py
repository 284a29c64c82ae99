"""Jina Embeddings v4 as a FiftyOne model.

| Copyright 2026, the jina-embeddings-v4 FiftyOne integration authors.
| Apache 2.0

Read top to bottom for the whole FiftyOne contract: the config and its
validation, image loading for FiftyOne's data loader, image and prompt
embeddings, and zero-shot classification by exact late interaction.
"""

import json
import logging
import os

import numpy as np
import torch

import fiftyone.core.labels as fol
import fiftyone.core.models as fom
import fiftyone.utils.torch as fout

from .. import options
from . import context as fiftyone_context
from ..model import encoder as jenc
from ..model import batching
from ..model import encoder_cache
from ..model import packed_linear
from ..io import image_inputs
from ..scoring import late_interaction as li

logger = logging.getLogger(__name__)

VECTOR_MODES = options.VECTOR_MODES
DEFAULT_MATRYOSHKA_DIMS = options.MATRYOSHKA_DIMS

# Mean MaxSim lies in [-1, 1]; this scale gives softmax confidences the
# spread of CLIP-style zero-shot logits while staying far from overflow.
LOGIT_SCALE = 100.0
PROMPT_BATCH_SIZE = 32

# Options a user may pass to load_zoo_model(); anything else is rejected
# with this list, so that a typo never silently falls back to a default.
OPTIONS = (
    "task",
    "vector_mode",
    "pooling_strategy",
    "truncate_dim",
    "query_prompt_name",
    "passage_prompt_name",
    "classes",
    "text_prompt",
    "max_pixels",
    "min_pixels",
    "dtype",
    "attn_implementation",
    "device",
    "vision_attention",
    "drop_padding_mask",
    "fused_lora",
    "max_batch_tokens",
    "merge_lora",
    "pack_weights",
    "preprocess_in_loader",
)


def load_model(snapshot_dir, **kwargs):
    """Builds a :class:`JinaEmbeddingsV4` from a snapshot and user options.

    Args:
        snapshot_dir: the downloaded snapshot folder
        **kwargs: any of :data:`OPTIONS`

    Returns:
        a :class:`JinaEmbeddingsV4`
    """
    return JinaEmbeddingsV4(validate_options(snapshot_dir, kwargs))


def validate_options(snapshot_dir, kwargs):
    """Checks user options without loading anything.

    Args:
        snapshot_dir: the snapshot folder (it may not exist yet)
        kwargs: the keyword arguments given to ``load_zoo_model()``

    Returns:
        a :class:`JinaEmbeddingsV4Config`
    """
    unknown = sorted(set(kwargs) - set(OPTIONS))
    if unknown:
        raise ValueError(
            "Unknown option(s) %s for jinaai/jina-embeddings-v4; valid "
            "options are: %s" % (", ".join(unknown), ", ".join(OPTIONS))
        )

    return JinaEmbeddingsV4Config(dict(kwargs, snapshot_dir=snapshot_dir))


def validate_pending_options(snapshot_dir):
    """Validates the options of the ``load_zoo_model()`` call in progress.

    FiftyOne downloads a model before handing its options to
    ``load_model``; checking them first saves a 7.6 GB download that would
    end in "unknown option". FiftyOne does not pass the options to the
    download hook, so they are read off its ``load_zoo_model`` frame.
    """
    kwargs = fiftyone_context.pending_load_options()
    if kwargs is not None:
        validate_options(snapshot_dir, kwargs)


class JinaEmbeddingsV4Config(fout.TorchImageModelConfig):
    """Configuration for :class:`JinaEmbeddingsV4`.

    Every value is validated here, before any weights load.

    Args:
        snapshot_dir: the folder of the downloaded snapshot (set by the zoo)
        task ("retrieval"): the task LoRA: ``"retrieval"``,
            ``"text-matching"`` or ``"code"``
        vector_mode ("single"): ``"single"`` stores the 2048-d (or
            ``truncate_dim``) single vector; ``"multi"`` stores the 128-d
            per-token multi vectors pooled by ``pooling_strategy``
        pooling_strategy ("mean"): ``"mean"`` or ``"max"`` pooling of the
            multi vectors in multi mode
        truncate_dim (None): Matryoshka dimension of single vectors, one of
            the checkpoint's ``matryoshka_dims`` (128, 256, 512, 1024, 2048)
        query_prompt_name ("query"): prefix for prompts (text queries and
            class prompts): ``"query"`` or ``"passage"``
        passage_prompt_name ("passage"): prefix for texts embedded as
            documents with :meth:`JinaEmbeddingsV4.embed_documents`
        classes (None): class names for zero-shot classification; None
            means the 16 RVL-CDIP document types (:data:`DOCUMENT_CLASSES`),
            embedded as ``"a scan of an invoice"`` and so on
        text_prompt (""): text put before each class name, joined with a
            space, e.g. ``"a scan of a"``
        max_pixels (602112): per-image resize budget; an image becomes at
            most ``max_pixels / 784`` tokens, which bounds time and memory
        min_pixels (3136): smaller images are upscaled to this
        dtype ("auto"): ``"auto"``, ``"float32"``, ``"bfloat16"`` or
            ``"float16"``; auto is bf16 on CUDA and on CPUs with native bf16,
            float32 elsewhere
        attn_implementation (None): ``"sdpa"``, ``"flash_attention_2"`` or
            ``"eager"``; default flash attention when installed on CUDA,
            else SDPA
        device (None): e.g. ``"cuda:0"``, ``"mps"`` or ``"cpu"``; default
            CUDA when available, then Apple's MPS, then the CPU
        vision_attention ("packed"): ``"packed"``: the vision tower's
            attention in one call per layer for the whole batch (a varlen
            kernel on CUDA in half precision, one SDPA call elsewhere);
            ``"stock"``: transformers' call per window
        drop_padding_mask (True): run right-padded batches without a
            padding mask, so SDPA can use its mask-free kernels (exact:
            causal attention never lets a real token see the padding)
        fused_lora (False): add the task LoRA's low-rank product into each
            layer's output in one GEMM update (peft: three full-width
            passes); the same sum rounded once, but in bf16 on a CPU a
            page's vectors then depend on the batch it ran in
        max_batch_tokens (65536): padded tokens per forward pass at most;
            a FiftyOne batch of big pages is split to stay within it
            (None: no bound)
        merge_lora (False): merge the task's LoRA into the weights (one
            task per process; not shared with models of other tasks); in
            half precision the merged weights round differently
        pack_weights (None): keep the linear layers' weights packed for
            oneDNN (bit-equal outputs, one copy of the weights, faster
            GEMMs); None: on a CPU in bf16, where it is supported
        preprocess_in_loader (True): resize and patch images in FiftyOne's
            data loader workers, overlapping the forward pass
    """

    def __init__(self, d):
        d = dict(d)
        # Batching in FiftyOne requires these three together (with the
        # model's collate_fn below)
        d.setdefault("raw_inputs", True)
        d.setdefault("ragged_batches", False)
        # checked first: FiftyOne's own parsing has a less helpful message
        d["classes"] = validate_classes(d.get("classes"))
        if d.get("device") is None:
            # FiftyOne's default knows CUDA and the CPU; Apple's MPS too
            device = jenc.auto_device_type(
                torch.cuda.is_available(), jenc.mps_available()
            )
            d["device"] = "cuda:0" if device == "cuda" else device
        super().__init__(d)

        self.snapshot_dir = self.parse_string(d, "snapshot_dir")
        self.task = self.parse_string(d, "task", default=options.DEFAULT_TASK)
        self.vector_mode = self.parse_string(
            d, "vector_mode", default="single"
        )
        self.pooling_strategy = self.parse_string(
            d, "pooling_strategy", default="mean"
        )
        self.truncate_dim = self.parse_raw(d, "truncate_dim", default=None)
        self.query_prompt_name = self.parse_string(
            d, "query_prompt_name", default="query"
        )
        self.passage_prompt_name = self.parse_string(
            d, "passage_prompt_name", default="passage"
        )
        self.text_prompt = self.parse_raw(d, "text_prompt", default="")
        self.max_pixels = self.parse_raw(
            d, "max_pixels", default=options.DEFAULT_MAX_PIXELS
        )
        self.min_pixels = self.parse_raw(
            d, "min_pixels", default=options.DEFAULT_MIN_PIXELS
        )
        self.dtype = self.parse_string(d, "dtype", default="auto")
        self.attn_implementation = self.parse_raw(
            d, "attn_implementation", default=None
        )
        self.vision_attention = self.parse_raw(
            d, "vision_attention", default="packed"
        )
        self.drop_padding_mask = self.parse_raw(
            d, "drop_padding_mask", default=True
        )
        self.fused_lora = self.parse_raw(d, "fused_lora", default=False)
        self.max_batch_tokens = self.parse_raw(
            d, "max_batch_tokens", default=batching.DEFAULT_MAX_BATCH_TOKENS
        )
        self.merge_lora = self.parse_raw(d, "merge_lora", default=False)
        self.pack_weights = self.parse_raw(d, "pack_weights", default=None)
        self.preprocess_in_loader = self.parse_raw(
            d, "preprocess_in_loader", default=True
        )
        self._validate()

    def fast_paths(self):
        """The encoder's :class:`encoder.FastPaths` for these options."""
        return jenc.FastPaths(
            vision_attention=self.vision_attention,
            drop_padding_mask=self.drop_padding_mask,
            prefetch=True,
            fused_lora=self.fused_lora,
        ).validate()

    def _validate(self):
        jenc.validate_task(self.task)
        jenc.validate_prompt_name(self.query_prompt_name)
        jenc.validate_prompt_name(self.passage_prompt_name)
        _check_choice("vector_mode", self.vector_mode, VECTOR_MODES)
        _check_choice(
            "pooling_strategy", self.pooling_strategy, li.POOLING_CHOICES
        )
        _check_choice("dtype", self.dtype, jenc.DTYPE_CHOICES)
        _check_choice(
            "attn_implementation",
            self.attn_implementation,
            (None, "sdpa", "flash_attention_2", "eager"),
        )
        jenc.validate_pixels(self.min_pixels, self.max_pixels)
        self.fast_paths()
        batching.validate_max_batch_tokens(self.max_batch_tokens)
        packed_linear.validate(self.pack_weights)
        for name in ("merge_lora", "preprocess_in_loader"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    "%s must be True or False, got %r"
                    % (name, getattr(self, name))
                )
        self.text_prompt = validate_text_prompt(self.text_prompt)

        if self.truncate_dim is not None and self.vector_mode != "single":
            raise ValueError(
                "truncate_dim applies to vector_mode='single' only; "
                "multi mode always stores 128-d pooled vectors"
            )
        jenc.validate_truncate_dim(
            self.truncate_dim, matryoshka_dims(self.snapshot_dir)
        )


def matryoshka_dims(snapshot_dir):
    """The truncation dims a snapshot allows, read from its config.json."""
    path = os.path.join(snapshot_dir or "", "config.json")
    try:
        with open(path) as f:
            dims = json.load(f).get("matryoshka_dims")
    except (OSError, ValueError):
        dims = None

    return tuple(int(d) for d in dims) if dims else DEFAULT_MATRYOSHKA_DIMS


def validate_classes(classes):
    """Checks zero-shot classes; returns them as a list, or None.

    A single class is allowed (its confidence is always 1.0).
    """
    if classes is None:
        return None

    if isinstance(classes, str):
        raise ValueError(
            "classes must be a list of strings, got the string %r; pass "
            "e.g. ['invoice', 'receipt']" % classes
        )

    classes = list(classes)
    if not classes:
        raise ValueError(
            "classes is empty; pass at least one class name, e.g. "
            "['invoice', 'receipt']"
        )

    bad = [c for c in classes if not isinstance(c, str) or not c.strip()]
    if bad:
        raise ValueError(
            "classes must be non-empty strings; got %r" % (bad[:5],)
        )

    seen, duplicates = set(), []
    for c in classes:
        if c in seen and c not in duplicates:
            duplicates.append(c)
        seen.add(c)

    if duplicates:
        raise ValueError(
            "classes contains duplicates %r; each class must appear once"
            % duplicates
        )

    return classes


def validate_text_prompt(text_prompt):
    """Checks the class prompt prefix; None means no prefix."""
    if text_prompt is None:
        return ""

    if not isinstance(text_prompt, str):
        raise ValueError(
            "text_prompt must be a string, got %s" % type(text_prompt).__name__
        )

    return text_prompt


# The 16 document types of RVL-CDIP (Harley et al., 2015), used whenever
# the user has not set classes, as CLIP-style zoo models ship ImageNet's.
DOCUMENT_CLASSES = (
    "letter",
    "form",
    "email",
    "handwritten",
    "advertisement",
    "scientific report",
    "scientific publication",
    "specification",
    "file folder",
    "news article",
    "budget",
    "invoice",
    "presentation",
    "questionnaire",
    "resume",
    "memo",
)

# What each default class is embedded as: a noun phrase for a scanned page,
# so that adjectives ("handwritten") and bare nouns read as documents
DOCUMENT_PROMPT_TEMPLATE = "a scan of %s"
_DOCUMENT_PHRASES = {
    "letter": "a letter",
    "form": "a form",
    "email": "an email",
    "handwritten": "a handwritten document",
    "advertisement": "an advertisement",
    "scientific report": "a scientific report",
    "scientific publication": "a scientific publication",
    "specification": "a specification",
    "file folder": "a file folder",
    "news article": "a news article",
    "budget": "a budget",
    "invoice": "an invoice",
    "presentation": "a presentation slide",
    "questionnaire": "a questionnaire",
    "resume": "a resume",
    "memo": "a memo",
}


def class_prompts(classes, text_prompt, default_classes=False):
    """The texts embedded for each class.

    ``text_prompt`` + space + class when a text prompt is set; else the
    class itself, or, for the default document classes, a descriptive
    phrase (``"handwritten"`` -> ``"a scan of a handwritten document"``).
    """
    prefix = text_prompt.strip()
    if prefix:
        return ["%s %s" % (prefix, c) for c in classes]

    if default_classes:
        return [DOCUMENT_PROMPT_TEMPLATE % _DOCUMENT_PHRASES[c] for c in classes]

    return list(classes)


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            "Unsupported %s %r; choose one of %s"
            % (name, value, ", ".join(repr(c) for c in choices))
        )


class UnreadableImage(object):
    """Stands in for an image that could not be read, so that one bad file
    does not cost the rest of its batch."""

    def __init__(self, path, error):
        self.path = path
        self.error = error


class JinaImageGetItem(fout.GetItem):
    """Loads a sample's image for FiftyOne's data loader workers.

    Uses :func:`image_inputs.load_image` rather than PIL's plain RGB
    conversion, so 16-bit scans, palette images with transparency, CMYK and
    EXIF rotation come out right.

    Args:
        field_mapping (None): FiftyOne's field mapping
        prepare (None): ``(image processor, max_pixels, min_pixels)`` to
            resize and patch images here, in the loader's workers, while
            the model runs the last batch
    """

    def __init__(self, field_mapping=None, prepare=None):
        self.prepare = prepare
        super().__init__(field_mapping=field_mapping)

    @property
    def required_keys(self):
        return ["filepath"]

    def __call__(self, d):
        return self.load(d["filepath"])

    def load(self, path):
        """The image at ``path``, prepared for the model when configured; an
        :class:`UnreadableImage` when it cannot be read and the loader skips
        failures."""
        try:
            image = image_inputs.load_image(path)
        except ValueError as e:
            if not fiftyone_context.loader_skips_failures():
                raise

            return UnreadableImage(path, str(e))

        if self.prepare is None:
            return image

        processor, max_pixels, min_pixels = self.prepare
        return batching.prepare_image(processor, image, max_pixels, min_pixels)


class JinaEmbeddingsV4(fout.TorchImageModel, fom.PromptMixin):
    """Jina Embeddings v4 for FiftyOne: embeddings, text search, zero-shot.

    Images are embedded as documents and prompts as queries, in the same
    space for the same settings. Zero-shot classification scores each image
    against each class prompt by exact multi-vector late interaction.

    Args:
        config: a :class:`JinaEmbeddingsV4Config`
    """

    def __init__(self, config):
        super().__init__(config)
        self._text_prompt = config.text_prompt
        self._class_vectors = None
        self._fast_paths = config.fast_paths()

    # FiftyOne batches only with an importable identity collate function
    collate_fn = staticmethod(fom.TorchModelMixin.collate_fn)

    @property
    def has_collate_fn(self):
        return True

    @property
    def has_embeddings(self):
        return True

    @property
    def can_embed_prompts(self):
        return True

    @property
    def has_logits(self):
        return True

    @property
    def ragged_batches(self):
        # FiftyOne stacks the patches of a sample into one tensor unless
        # batches are ragged; ours are PIL crops, embedded as a list
        if fiftyone_context.computing_patch_embeddings():
            return True

        return super().ragged_batches

    def load_kwargs(self):
        """The ``load_zoo_model`` options that reproduce this model's vector
        space and inputs in another process (for ``model_kwargs``)."""
        return dict(self.vector_space(), dtype=self.config.dtype)

    def vector_space(self):
        """The options that define this model's vector space (see
        :func:`jina_embeddings_v4.options.vector_space`)."""
        return options.vector_space(self.config)

    @property
    def encoder(self):
        """The shared :class:`encoder.JinaV4Encoder`."""
        return self._model

    @property
    def classes(self):
        """The zero-shot class names: the user's, else the 16 RVL-CDIP
        document types (:data:`DOCUMENT_CLASSES`). Setting them drops the
        cached class vectors; setting None returns to the defaults."""
        if self._classes is None:
            return list(DOCUMENT_CLASSES)

        return list(self._classes)

    @classes.setter
    def classes(self, value):
        self._classes = validate_classes(value)
        self._class_vectors = None

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def text_prompt(self):
        """Text put before each class name; setting it drops the cache."""
        return self._text_prompt

    @text_prompt.setter
    def text_prompt(self, value):
        self._text_prompt = validate_text_prompt(value)
        self._class_vectors = None

    def _load_model(self, config):
        return encoder_cache.acquire(
            self,
            config.snapshot_dir,
            device=self._device,
            dtype=config.dtype,
            attn_implementation=config.attn_implementation,
            merge_lora=config.merge_lora,
            pack_weights=config.pack_weights,
        )

    def build_get_item(self, field_mapping=None):
        prepare = None
        if self.config.preprocess_in_loader:
            prepare = (
                self._model.image_processor,
                self.config.max_pixels,
                self.config.min_pixels,
            )
        return JinaImageGetItem(field_mapping=field_mapping, prepare=prepare)

    # -- embeddings ----------------------------------------------------

    def embed(self, img):
        return self.embed_all([img])[0]

    def embed_all(self, imgs):
        """Embeds a batch of images (one forward pass per call).

        Returns:
            a float32 array ``[n, dim]``, or a list with None in place of
            images that could not be read (when FiftyOne skips failures)
        """
        images, failed = split_unreadable(imgs)
        if failed and fiftyone_context.embeddings_returned_not_stored():
            # FiftyOne stacks returned embeddings into one array, which a
            # None cannot join: fail this batch, as FiftyOne expects
            raise ValueError(
                "Unreadable images: %s"
                % "; ".join(f.error for f in failed.values())
            )

        vectors = self._embed_images(images) if images else []
        return merge_failed(vectors, failed, len(images) + len(failed))

    def embed_prompt(self, prompt):
        return self.embed_prompts([prompt])[0]

    def embed_prompts(self, prompts):
        """Embeds text queries in the images' space.

        Returns:
            a float32 array ``[n, dim]``
        """
        return self._embed_texts(prompts, self.config.query_prompt_name)

    def embed_documents(self, texts):
        """Embeds texts as documents (e.g. OCR text) in the same space.

        Returns:
            a float32 array ``[n, dim]``
        """
        return self._embed_texts(texts, self.config.passage_prompt_name)

    def embed_images_with_multivectors(self, imgs):
        """Single and multi vectors of images, from one forward pass.

        Returns:
            ``(singles, multis, grids)``: float32 ``[n, dim]`` (as
            :meth:`embed_all`), float32 ``[n_tokens_i, 128]`` arrays, and
            per image ``(rows, cols, offset)``: its ``rows * cols`` image
            tokens start at ``multis[i][offset]``, row-major
        """
        images = [_as_image(img) for img in _as_list(imgs)]
        out = self._encode_images(
            images,
            task=self.config.task,
            batch_size=max(1, len(images)),
            return_single=self.config.vector_mode == "single",
            return_multi=True,
            truncate_dim=self.config.truncate_dim,
            max_pixels=self.config.max_pixels,
            min_pixels=self.config.min_pixels,
        )
        offset = self._model.image_token_offset
        grids = [(rows, cols, offset) for rows, cols in out.grids or []]
        return self._final_vectors(out), out.multi, grids

    def embed_prompts_with_multivectors(self, prompts):
        """Single and multi vectors of text queries, from one forward pass.

        Returns:
            ``(singles, multis)``: float32 ``[n, dim]`` (as
            :meth:`embed_prompts`) and float32 ``[n_tokens_i, 128]`` arrays
        """
        out = self._encode_texts(
            prompts,
            task=self.config.task,
            prompt_name=self.config.query_prompt_name,
            batch_size=PROMPT_BATCH_SIZE,
            return_single=self.config.vector_mode == "single",
            return_multi=True,
            truncate_dim=self.config.truncate_dim,
        )
        return self._final_vectors(out), out.multi

    def embed_multivectors(self, imgs):
        """The per-token multi vectors of images, for re-ranking.

        Returns:
            a list of float32 arrays ``[n_tokens_i, 128]``
        """
        images = [_as_image(img) for img in _as_list(imgs)]
        return self._encode_images(
            images,
            task=self.config.task,
            batch_size=max(1, len(images)),
            return_single=False,
            return_multi=True,
            max_pixels=self.config.max_pixels,
            min_pixels=self.config.min_pixels,
        ).multi

    def embed_prompts_multivectors(self, prompts):
        """The per-token multi vectors of text queries, for re-ranking.

        Returns:
            a list of float32 arrays ``[n_tokens_i, 128]``
        """
        return self._encode_texts(
            prompts,
            task=self.config.task,
            prompt_name=self.config.query_prompt_name,
            batch_size=PROMPT_BATCH_SIZE,
            return_single=False,
            return_multi=True,
        ).multi

    # the name before FiftyOne's singular/plural rule (embed_prompt takes
    # one prompt, embed_prompts a list) was followed
    embed_prompt_multivectors = embed_prompts_multivectors

    def compute_multivectors(self, samples, **kwargs):
        """Stores the samples' multi vectors; see
        :func:`rerank.compute_multivectors`."""
        from .rerank import compute_multivectors

        return compute_multivectors(samples, self, **kwargs)

    def compute_heatmaps(self, samples, query, **kwargs):
        """Writes where each page matched ``query`` as ``fo.Heatmap``
        labels; see :func:`heatmaps.compute_heatmaps`."""
        from .heatmaps import compute_heatmaps

        return compute_heatmaps(samples, query, self, **kwargs)

    def rerank(self, samples, query, **kwargs):
        """Re-ranks a text search by exact MaxSim; see
        :func:`rerank.rerank`."""
        from .rerank import rerank

        return rerank(samples, query, self, **kwargs)

    def _encode_images(self, images, **kwargs):
        return self._model.encode_images(
            images,
            max_batch_tokens=self.config.max_batch_tokens,
            fast_paths=self._fast_paths,
            **kwargs,
        )

    def _encode_texts(self, texts, **kwargs):
        return self._model.encode_texts(
            texts,
            max_batch_tokens=self.config.max_batch_tokens,
            fast_paths=self._fast_paths,
            **kwargs,
        )

    def _embed_images(self, images):
        multi = self.config.vector_mode == "multi"
        out = self._encode_images(
            images,
            task=self.config.task,
            batch_size=len(images),
            return_single=not multi,
            return_multi=multi,
            truncate_dim=self.config.truncate_dim,
            max_pixels=self.config.max_pixels,
            min_pixels=self.config.min_pixels,
        )
        return self._final_vectors(out)

    def _embed_texts(self, texts, prompt_name):
        multi = self.config.vector_mode == "multi"
        out = self._encode_texts(
            texts,
            task=self.config.task,
            prompt_name=prompt_name,
            batch_size=PROMPT_BATCH_SIZE,
            return_single=not multi,
            return_multi=multi,
            truncate_dim=self.config.truncate_dim,
        )
        return self._final_vectors(out)

    def _final_vectors(self, out):
        if self.config.vector_mode == "single":
            return out.single

        pooled = li.pool_multivectors(out.multi, self.config.pooling_strategy)
        return pooled.numpy().astype(np.float32, copy=False)

    # -- zero-shot classification --------------------------------------

    def _predict_all(self, imgs):
        images, failed = split_unreadable(_as_list(imgs))
        if not images:
            return merge_failed([], failed, len(failed))

        pages = self._encode_images(
            images,
            task=self.config.task,
            batch_size=len(images),
            return_single=False,
            return_multi=True,
            max_pixels=self.config.max_pixels,
            min_pixels=self.config.min_pixels,
        ).multi
        scores = li.maxsim_scores(
            self._get_class_vectors(), pages, normalize="mean"
        )
        logits = (scores.T * LOGIT_SCALE).float()
        labels = self._to_classifications(logits)
        return merge_failed(labels, failed, len(images) + len(failed))

    def _get_class_vectors(self):
        if self._class_vectors is None:
            self._class_vectors = self._encode_texts(
                class_prompts(
                    self.classes,
                    self._text_prompt,
                    default_classes=self._classes is None,
                ),
                task=self.config.task,
                prompt_name=self.config.query_prompt_name,
                batch_size=PROMPT_BATCH_SIZE,
                return_single=False,
                return_multi=True,
            ).multi

        return self._class_vectors

    def _to_classifications(self, logits):
        # torch's softmax subtracts the row max: finite for any logits
        probs = torch.softmax(logits, dim=1)
        best = probs.argmax(dim=1)
        # apply_model() hands these to models whose config has them
        thresh = self.config.confidence_thresh
        keep = self.config.filter_classes
        classes = self.classes
        labels = []
        for row, idx in enumerate(best.tolist()):
            label = fol.Classification(
                label=classes[idx],
                confidence=float(probs[row, idx]),
            )
            if self.store_logits:
                label.logits = logits[row].numpy()
            if (thresh is not None and label.confidence < thresh) or (
                keep is not None and label.label not in keep
            ):
                label = None
            labels.append(label)

        return labels


def _as_list(imgs):
    if isinstance(imgs, (torch.Tensor, np.ndarray)) and imgs.ndim == 4:
        return list(imgs)

    if isinstance(imgs, (list, tuple)):
        return list(imgs)

    return [imgs]


def _as_image(img):
    if isinstance(img, UnreadableImage):
        raise ValueError(img.error)

    return img


def split_unreadable(imgs):
    """``(readable images, {position: UnreadableImage})`` of a batch, with a
    warning for each unreadable one."""
    images, failed = [], {}
    for i, img in enumerate(_as_list(imgs)):
        if isinstance(img, UnreadableImage):
            logger.warning("Skipping unreadable image: %s", img.error)
            failed[i] = img
        else:
            images.append(img)

    return images, failed


def merge_failed(results, failed, n):
    """The ``n`` results of a batch: ``results`` in order, with None at the
    positions of ``failed``."""
    if not failed:
        return results

    merged, it = [], iter(results)
    for i in range(n):
        merged.append(None if i in failed else next(it))

    return merged
