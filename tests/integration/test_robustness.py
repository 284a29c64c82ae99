"""Messy inputs, failures half way, determinism: through real FiftyOne."""

import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from conftest import MODEL_NAME

from jina_embeddings_v4.testing import documents  # noqa: E402

import fiftyone as fo  # noqa: E402
import fiftyone.zoo as foz  # noqa: E402

ZOO_LOGGER = "jina_embeddings_v4.zoo"


@pytest.fixture(scope="module")
def model(zoo_source):
    return foz.load_zoo_model(MODEL_NAME, dtype="float32")


def _page(seed=0, size=(120, 160)):
    img, _ = documents.make_page("invoice", seed, scale=0.3)
    return img.resize(size)


def _save(img, path, **kwargs):
    img.save(path, **kwargs)
    return str(path)


@pytest.fixture(scope="module")
def mode_files(tmp_path_factory):
    """One file per awkward image kind, and the RGB image each must equal."""
    d = tmp_path_factory.mktemp("modes")
    base = _page()
    gray = base.convert("L")
    g = np.asarray(gray)
    files = {}
    files["L"] = (_save(gray, d / "l.png"), gray.convert("RGB"))
    la = gray.copy()
    la.putalpha(255)
    files["LA"] = (_save(la, d / "la.png"), gray.convert("RGB"))
    pal = base.convert("P", palette=Image.ADAPTIVE, colors=64)
    files["P"] = (_save(pal, d / "p.png"), pal.convert("RGB"))
    rgba = base.copy()
    rgba.putalpha(255)
    files["RGBA"] = (_save(rgba, d / "rgba.png"), base)
    cmyk = base.convert("CMYK")
    files["CMYK"] = (
        _save(cmyk, d / "cmyk.tif"),
        cmyk.convert("RGB"),
    )
    i16 = Image.fromarray(g.astype(np.uint16) * 257)
    assert i16.mode == "I;16"
    files["I;16"] = (_save(i16, d / "i16.png"), gray.convert("RGB"))
    i32 = Image.fromarray(g.astype(np.int32) * 257, mode="I")
    files["I"] = (_save(i32, d / "i32.tif"), gray.convert("RGB"))
    f32 = Image.fromarray(g.astype(np.float32) / 255.0, mode="F")
    files["F"] = (_save(f32, d / "f.tif"), gray.convert("RGB"))
    # stored sideways, EXIF says rotate 90 degrees clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = base.transpose(Image.Transpose.ROTATE_90)
    files["EXIF"] = (
        _save(sideways, d / "exif.png", exif=exif.tobytes()),
        base,
    )
    files["1x1"] = (
        _save(Image.new("RGB", (1, 1), (9, 9, 9)), d / "1.png"),
        Image.new("RGB", (1, 1), (9, 9, 9)),
    )
    return files


def test_every_image_mode_embeds_like_its_rgb_version(model, mode_files):
    ds = fo.Dataset()
    ds.add_samples(
        [fo.Sample(filepath=p, mode=m) for m, (p, _) in mode_files.items()]
    )
    ds.compute_embeddings(
        model, embeddings_field="emb", batch_size=4, skip_failures=False
    )
    stored = dict(zip(ds.values("mode"), ds.values("emb")))
    expected = model.embed_all([rgb for _, rgb in mode_files.values()])
    for (mode, _), want in zip(mode_files.items(), expected):
        got = stored[mode]
        assert np.all(np.isfinite(got)), mode
        cos = float(np.dot(got, want))
        assert cos >= 0.9999, (mode, cos)
    ds.delete()


def test_huge_page_stays_within_pixel_budget(model, tmp_path):
    path = str(tmp_path / "scroll.png")
    Image.new("L", (800, 20000), 255).save(path)
    enc = model.encoder
    tokens = enc.count_image_tokens((800, 20000))
    assert tokens <= 602112 // 784
    multi = model.embed_multivectors([path])[0]
    assert multi.shape == (tokens + 14, 128)

    script = """
        import resource, sys
        from jina_embeddings_v4.testing import support
        from jina_embeddings_v4.model.encoder import JinaV4Encoder
        enc = JinaV4Encoder(support.TINY_SNAPSHOT, device="cpu",
                            dtype="float32")
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = enc.encode_images([%r], return_multi=True)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print("GROWTH_MB", (peak - base) / 1024, out.multi[0].shape[0])
    """ % (path,)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    growth_mb, rows = proc.stdout.split("GROWTH_MB")[1].split()
    assert int(rows) == tokens + 14
    # the 16-megapixel page costs what a 0.6-megapixel one does
    assert float(growth_mb) < 500


@pytest.fixture
def messy_dataset(tmp_path):
    pages = documents.write_dataset_images(
        str(tmp_path / "pages"), n=9, seed=3, scale=0.3
    )
    bad = documents.write_corrupt_files(str(tmp_path / "bad"))
    paths = [p["filepath"] for p in pages]
    # a corrupt file in the middle of every batch of 4
    order = (
        paths[:2]
        + [bad[0]]
        + paths[2:5]
        + [bad[1]]
        + paths[5:8]
        + [bad[2]]
        + paths[8:]
    )
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=p) for p in order])
    yield ds, set(bad)
    ds.delete()


@pytest.mark.parametrize("num_workers", [0, 2])
def test_corrupt_files_skipped_others_embedded(
    model, messy_dataset, num_workers, caplog
):
    ds, bad = messy_dataset
    with caplog.at_level(logging.WARNING, logger=ZOO_LOGGER):
        ds.compute_embeddings(
            model,
            embeddings_field="emb",
            batch_size=4,
            num_workers=num_workers,
            skip_failures=True,
        )
    for path, emb in zip(*ds.values(["filepath", "emb"])):
        if path in bad:
            assert emb is None
        else:
            assert emb is not None and np.all(np.isfinite(emb))
    for path in bad:
        assert os.path.basename(path) in caplog.text

    model.classes = ["invoice", "receipt"]
    ds.apply_model(
        model, label_field="zs", batch_size=4, num_workers=num_workers
    )
    for path, label in zip(*ds.values(["filepath", "zs"])):
        assert (label is None) == (path in bad)


def test_corrupt_files_when_embeddings_are_returned(model, messy_dataset):
    ds, bad = messy_dataset
    # no field: FiftyOne returns the embeddings (what brain methods use)
    # FiftyOne stacks returned embeddings, so a batch with an unreadable
    # file is skipped whole (with a warning), not the whole run
    embs = ds.compute_embeddings(model, batch_size=2, skip_failures=True)
    assert len(embs) == len(ds)
    paths = ds.values("filepath")
    for i in range(0, len(paths), 2):
        batch_ok = not any(p in bad for p in paths[i : i + 2])
        for emb in embs[i : i + 2]:
            assert (emb is not None) == batch_ok
    assert sum(e is not None for e in embs) == 6


def test_corrupt_file_without_skipping_names_the_file(model, messy_dataset):
    ds, bad = messy_dataset
    first_bad = ds.values("filepath")[2]
    with pytest.raises(Exception) as info:
        ds.compute_embeddings(
            model, embeddings_field="emb", batch_size=4, skip_failures=False
        )
    assert os.path.basename(first_bad) in str(info.value)


def test_failure_half_way_loses_nothing_and_resumes(model, messy_dataset):
    ds, bad = messy_dataset
    ds.set_values("old", list(range(len(ds))))
    ds.set_values("emb", [np.full(3, 7.0)] * len(ds))
    before = ds.values("emb")

    # the first batch of 2 is readable, the second is not
    with pytest.raises(Exception):
        ds.compute_embeddings(
            model, embeddings_field="new", batch_size=2, skip_failures=False
        )
    # the samples of the failed batch and after it were not touched
    assert ds.values("old") == list(range(len(ds)))
    for a, b in zip(before, ds.values("emb")):
        assert np.array_equal(a, b)
    assert len(ds.exists("new")) == 2

    # resume: only what is missing, skipping the unreadable files
    todo = ds.exists("new", False)
    todo.compute_embeddings(
        model, embeddings_field="new", batch_size=4, skip_failures=True
    )
    for path, emb in zip(*ds.values(["filepath", "new"])):
        assert (emb is None) == (path in bad)


def test_awkward_texts(model):
    texts = [
        "",
        "   \n\t ",
        "发票 2024年 总额 ¥1,234",
        "فاتورة بتاريخ ٢٠٢٤",
        "invoice 🧾✅ due 📅",
        "Rechnung – Fälligkeit: 30 Tage",
    ]
    vecs = model.embed_prompts(texts)
    assert vecs.shape == (len(texts), model.encoder.hidden_size)
    assert np.all(np.isfinite(vecs))
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)

    long_text = "invoice total amount due " * 3000
    out = model.encoder.encode_texts(
        [long_text], return_multi=True, max_length=512
    )
    assert out.multi[0].shape == (512, 128)
    assert np.all(np.isfinite(out.single))


def test_a_thousand_prompts(model):
    prompts = [
        "document number %d from %d" % (i, 2000 + i % 25) for i in range(1000)
    ]
    vecs = model.embed_prompts(prompts)
    assert vecs.shape == (1000, model.encoder.hidden_size)
    assert vecs.dtype == np.float32 and np.all(np.isfinite(vecs))
    for i in (0, 499, 999):
        alone = model.embed_prompt(prompts[i])
        assert float(np.dot(alone, vecs[i])) >= 0.9999


def test_prompts_must_be_strings(model):
    with pytest.raises(ValueError, match="item 1 is NoneType"):
        model.embed_prompts(["ok", None])


@pytest.mark.parametrize(
    "dtype, tolerance", [("float32", 0.9999), ("bfloat16", 0.999)]
)
def test_determinism_across_batches(zoo_source, tmp_path, dtype, tolerance):
    m = foz.load_zoo_model(MODEL_NAME, dtype=dtype)
    pages = documents.write_dataset_images(
        str(tmp_path / "p"), n=7, seed=5, scale=0.3
    )
    target = pages[3]["filepath"]
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=p["filepath"]) for p in pages])
    ds.add_sample(fo.Sample(filepath=target))  # the same page again, last
    results = []
    for batch_size in (1, 3, 8):
        field = "emb_%d" % batch_size
        ds.compute_embeddings(
            m,
            embeddings_field=field,
            batch_size=batch_size,
            skip_failures=False,
        )
        embs = ds.values(field)
        results.extend([embs[3], embs[-1]])
    worst = min(float(np.dot(results[0], v)) for v in results[1:])
    print("determinism", dtype, "worst cosine", worst)
    assert worst >= tolerance
    ds.delete()
