"""PDFs in, pages out, through real FiftyOne.

Real PDFs from Debian packages (libtasn1's manual and the shared-mime-info
spec, fetched by scripts/setup_test_system.sh), and PDFs generated here
with pikepdf and pypdfium2 for the bad-input cases.
"""

import os
import shutil
import subprocess
import sys

import numpy as np
import pikepdf
import pypdfium2 as pdfium
import pytest
from PIL import Image

from conftest import MODEL_NAME, REPO_ROOT
from jina_embeddings_v4.testing.support import debian_pdfs, system_deps_required

import fiftyone as fo  # noqa: E402
import fiftyone.brain as fob  # noqa: E402
import fiftyone.zoo as foz  # noqa: E402

from jina_embeddings_v4.io import pdf_render  # noqa: E402
from jina_embeddings_v4.fiftyone.pdfs import add_pdfs  # noqa: E402

BUDGET = 602112


pytestmark = pytest.mark.skipif(
    len(debian_pdfs()) < 2 and not system_deps_required(),
    reason="needs the PDFs of Debian's libtasn1-doc and shared-mime-info "
    "(make test fetches them)",
)


@pytest.fixture(scope="module")
def real_pdfs(tmp_root):
    """Copies of the Debian PDFs in a folder of their own."""
    folder = os.path.join(tmp_root, "real-pdfs")
    os.makedirs(folder, exist_ok=True)
    paths = []
    for path in debian_pdfs():
        dest = os.path.join(folder, os.path.basename(path))
        shutil.copy(path, dest)
        paths.append(dest)
    assert len(paths) == 2
    return paths


def _page_count(path):
    pdf = pdfium.PdfDocument(path)
    try:
        return len(pdf)
    finally:
        pdf.close()


def _text_pdf(path, pages, title=None, size=(612, 792), password=None):
    """A PDF with a line of text per page, in a base-14 font."""
    pdf = pikepdf.Pdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type1,
            BaseFont=pikepdf.Name.Helvetica,
        )
    )
    for text in pages:
        stream = pikepdf.Stream(
            pdf, ("BT /F1 24 Tf 40 %d Td (%s) Tj ET" % (size[1] - 80, text)).encode()
        )
        page = pikepdf.Dictionary(
            Type=pikepdf.Name.Page,
            MediaBox=[0, 0, size[0], size[1]],
            Contents=stream,
            Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font)),
        )
        pdf.pages.append(pikepdf.Page(page))
    if title:
        with pdf.open_metadata() as meta:
            meta["dc:title"] = title
        pdf.docinfo["/Title"] = title
    kwargs = {}
    if password:
        kwargs["encryption"] = pikepdf.Encryption(owner="owner", user=password)
    pdf.save(path, **kwargs)
    return path


def _snapshot(ds):
    return sorted(
        (s.id, s.filepath, s["page_number"], s["pdf_sha256"]) for s in ds
    )


def test_real_pdfs_pages_order_metadata_text(real_pdfs, tmp_root):
    images = os.path.join(tmp_root, "pdf-images")
    ds = fo.Dataset()
    summary = add_pdfs(ds, real_pdfs, images)
    counts = {p: _page_count(p) for p in real_pdfs}
    assert summary["added"] == sum(counts.values()) == len(ds)
    assert summary["failed"] == []

    for path, n in counts.items():
        pages = ds.match(fo.ViewField("pdf_path") == path)
        assert sorted(pages.values("page_number")) == list(range(1, n + 1))
        assert set(pages.values("num_pages")) == {n}
        assert len(set(pages.values("pdf_sha256"))) == 1

    # the saved view browses each file's pages in order
    grouped = ds.load_saved_view("pages_by_pdf")
    for group in grouped.iter_dynamic_groups():
        numbers = group.values("page_number")
        assert numbers == sorted(numbers)

    # rendered within the model's pixel budget, near it, as PNG
    sample = ds.match(fo.ViewField("page_number") == 1).first()
    with Image.open(sample.filepath) as image:
        w, h = image.size
        assert image.format == "PNG" and image.mode == "RGB"
    assert 0.98 * BUDGET <= w * h <= BUDGET
    assert (w, h) == (sample.metadata.width, sample.metadata.height)

    # the text layer, as the PDF has it
    first = ds.match(
        (fo.ViewField("page_number") == 1)
        & fo.ViewField("pdf_path").ends_with("libtasn1.pdf")
    ).first()
    assert "Libtasn1" in first["pdf_text"]
    assert "Abstract Syntax Notation One" in first["pdf_text"]
    # libtasn1's manual has an empty Title: none
    assert first["pdf_title"] is None

    # running again adds nothing
    before = _snapshot(ds)
    again = add_pdfs(ds, real_pdfs, images)
    assert again["added"] == 0 and sorted(again["skipped"]) == sorted(real_pdfs)
    assert _snapshot(ds) == before
    ds.delete()


def test_interrupted_run_resumes(real_pdfs, tmp_root):
    ds = fo.Dataset()
    images = os.path.join(tmp_root, "pdf-resume")
    seen = []

    def stop_after_20(pb):
        seen.append(1)
        if len(seen) == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        add_pdfs(ds, real_pdfs, images, num_workers=0, progress=stop_after_20)
    partial = len(ds)
    assert 0 < partial < sum(_page_count(p) for p in real_pdfs)

    summary = add_pdfs(ds, real_pdfs, images)
    total = sum(_page_count(p) for p in real_pdfs)
    assert len(ds) == total
    assert summary["added"] == total - partial
    pairs = list(zip(ds.values("pdf_path"), ds.values("page_number")))
    assert len(set(pairs)) == total
    ds.delete()


def test_changed_file_replaced_same_content_elsewhere_skipped(tmp_root):
    folder = os.path.join(tmp_root, "pdf-changed")
    os.makedirs(folder, exist_ok=True)
    path = _text_pdf(os.path.join(folder, "report.pdf"), ["one", "two"])
    ds = fo.Dataset()
    images = os.path.join(tmp_root, "pdf-changed-images")
    add_pdfs(ds, path, images)
    old_hash = ds.first()["pdf_sha256"]

    _text_pdf(path, ["new one", "new two", "new three"], title="Report v2")
    summary = add_pdfs(ds, path, images)
    assert summary["replaced"] == [path]
    assert len(ds) == 3
    assert set(ds.values("pdf_sha256")) != {old_hash}
    assert set(ds.values("pdf_title")) == {"Report v2"}
    assert sorted(ds.values("pdf_text"))[0].startswith("new one")

    copy = os.path.join(folder, "copy-of-report.pdf")
    shutil.copy(path, copy)
    summary = add_pdfs(ds, copy, images)
    assert summary["added"] == 0 and summary["skipped"] == [copy]
    ds.delete()


def test_bad_input_warns_and_keeps_everything_else(real_pdfs, tmp_root, caplog):
    folder = os.path.join(tmp_root, "pdf-bad")
    os.makedirs(folder, exist_ok=True)
    encrypted = _text_pdf(
        os.path.join(folder, "secret.pdf"), ["classified"], password="s3cret"
    )
    truncated = os.path.join(folder, "truncated.pdf")
    with open(real_pdfs[0], "rb") as f:
        data = f.read()
    with open(truncated, "wb") as f:
        f.write(data[: len(data) // 3])
    empty = os.path.join(folder, "empty.pdf")
    pikepdf.Pdf.new().save(empty)  # a page tree with no pages
    not_pdf = os.path.join(folder, "notes.pdf")
    with open(not_pdf, "w") as f:
        f.write("just some text, not a PDF\n")
    # 200 x 200 inches
    poster = _text_pdf(
        os.path.join(folder, "poster.pdf"), ["big"], size=(14400, 14400)
    )
    good = _text_pdf(os.path.join(folder, "good.pdf"), ["fine", "also fine"])

    ds = fo.Dataset()
    images = os.path.join(tmp_root, "pdf-bad-images")
    add_pdfs(ds, good, images)
    before = _snapshot(ds)
    with caplog.at_level("WARNING"):
        summary = add_pdfs(ds, folder, images)

    failed = {os.path.basename(p): m for p, _, m in summary["failed"]}
    assert set(failed) == {
        "secret.pdf",
        "truncated.pdf",
        "empty.pdf",
        "notes.pdf",
    }
    assert "encrypted" in failed["secret.pdf"]
    assert "not a PDF" in failed["notes.pdf"]
    assert "no pages" in failed["empty.pdf"]
    for name in failed:
        assert name in caplog.text
    # everything already in the dataset is as it was; the poster is in
    assert [s for s in _snapshot(ds) if s in before] == before
    poster_page = ds.match(fo.ViewField("pdf_path") == poster).first()
    assert poster_page.metadata.width * poster_page.metadata.height <= BUDGET
    assert len(ds) == len(before) + 1

    # with the password, the encrypted file imports
    summary = add_pdfs(ds, encrypted, images, password="s3cret")
    assert summary["added"] == 1
    page = ds.match(fo.ViewField("pdf_path") == encrypted).first()
    assert "classified" in page["pdf_text"]
    ds.delete()


def test_render_scale_is_a_pixel_budget():
    # letter: 612 x 792 pt
    scale = pdf_render.render_scale(612, 792, max_pixels=BUDGET)
    # sqrt(602112 / (612 * 792)) = 1.11455: 682.1 x 882.7 -> 682 x 882
    assert pdf_render.pixel_size(612, 792, scale) == (682, 882)
    assert 682 * 882 <= BUDGET
    # 300 dpi would exceed the budget: capped
    assert pdf_render.render_scale(612, 792, BUDGET, dpi=300) == scale
    # 72 dpi is within it: 612 x 792
    s72 = pdf_render.render_scale(612, 792, BUDGET, dpi=72)
    assert pdf_render.pixel_size(612, 792, s72) == (612, 792)
    assert pdf_render.render_scale(612, 792, None, dpi=144) == 2.0
    # a 200-inch square poster: sqrt(602112) = 775.9 -> 775 x 775
    poster = pdf_render.render_scale(14400, 14400)
    assert pdf_render.pixel_size(14400, 14400, poster) == (775, 775)


def test_end_to_end_embeddings_search_zero_shot(real_pdfs, zoo_source, tmp_root):
    ds = fo.Dataset()
    add_pdfs(ds, real_pdfs[1], os.path.join(tmp_root, "pdf-e2e"))
    model = foz.load_zoo_model(MODEL_NAME, dtype="float32")
    ds.compute_embeddings(model, embeddings_field="emb", batch_size=4)
    assert np.stack(ds.values("emb")).shape == (len(ds), model.encoder.hidden_size)

    fob.compute_similarity(
        ds,
        model=MODEL_NAME,
        model_kwargs={"dtype": "float32"},
        embeddings="emb",
        brain_key="pdf_sim",
    )
    view = ds.sort_by_similarity("MIME type database", k=3, brain_key="pdf_sim")
    query = model.embed_prompt("MIME type database")
    scores = np.stack(ds.values("emb")) @ query
    assert view.values("id") == [ds.values("id")[i] for i in np.argsort(-scores)[:3]]

    ds.apply_model(model, label_field="doc_type", batch_size=4)
    assert set(ds.values("doc_type.label")) <= set(model.classes)

    texts = ds.values("pdf_text")
    docs = model.embed_documents(texts)
    assert docs.shape == (len(ds), model.encoder.hidden_size)
    ds.delete()


def test_the_script_creates_a_persistent_dataset(tmp_root):
    folder = os.path.join(tmp_root, "pdf-script")
    os.makedirs(folder, exist_ok=True)
    pdf = _text_pdf(os.path.join(folder, "memo.pdf"), ["a", "b", "c"], title="Memo")
    name = "jina-pdf-script"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO_ROOT, "scripts", "add_pdfs.py"),
            "--dataset",
            name,
            "--images-dir",
            os.path.join(folder, "images"),
            pdf,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3 pages added" in proc.stdout
    ds = fo.load_dataset(name)
    assert ds.persistent and len(ds) == 3
    assert set(ds.values("pdf_title")) == {"Memo"}
    ds.delete()


def _add_pdfs_cli(*args):
    return subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "scripts", "add_pdfs.py")]
        + list(args),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_script_exits_1_when_a_file_failed(tmp_path):
    good = _text_pdf(str(tmp_path / "good.pdf"), ["one", "two"])
    with open(tmp_path / "notes.pdf", "w") as f:
        f.write("just some text, not a PDF\n")
    name = "jina-pdf-exit-status"
    proc = _add_pdfs_cli("--dataset", name, "--images-dir",
                         str(tmp_path / "images"), str(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # the summary is still printed, and the good file's pages were added
    assert "2 pages added to 'jina-pdf-exit-status'" in proc.stdout
    assert "1 failures" in proc.stdout
    assert "failed: %s: not a PDF" % (tmp_path / "notes.pdf") in proc.stdout
    assert "Skipping %s: not a PDF" % (tmp_path / "notes.pdf") in proc.stderr
    assert len(fo.load_dataset(name)) == 2
    fo.delete_dataset(name)
    assert os.path.isfile(good)


def test_the_script_names_a_missing_path_in_one_line(tmp_path):
    missing = str(tmp_path / "nowhere")
    proc = _add_pdfs_cli("--dataset", "jina-pdf-missing", "--images-dir",
                         str(tmp_path / "images"), missing)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "jina-v4 add-pdfs: error: No such PDF file or folder: %s" % missing
    )
    assert "Traceback" not in proc.stderr
    assert not fo.dataset_exists("jina-pdf-missing")


def test_no_dataset_is_created_when_no_pdf_is_found(tmp_path):
    import gzip

    pdf = _text_pdf(str(tmp_path / "paper.pdf"), ["x"])
    with open(pdf, "rb") as f, gzip.open(str(tmp_path / "paper.pdf.gz"), "wb") as g:
        g.write(f.read())
    os.remove(pdf)
    proc = _add_pdfs_cli("--dataset", "jina-pdf-none", "--images-dir",
                         str(tmp_path / "images"), str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "No PDF files (*.pdf) in %s" % tmp_path in proc.stderr
    assert "found 1 compressed ones" in proc.stderr
    assert "gunzip -k" in proc.stderr
    assert not fo.dataset_exists("jina-pdf-none")
