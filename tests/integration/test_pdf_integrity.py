"""PDF import under kills, concurrency and hostile page sizes, through real
FiftyOne, a real MongoDB and real render processes.

- a killed ``jina-v4 add-pdfs`` (SIGKILL) leaves no render worker behind,
  and its workers never hold database sockets;
- a render worker killed by the OS (the OOM killer, say) loses no page;
- a script that calls add_pdfs at its top level (no ``__main__`` guard)
  is not run again by the workers;
- two runs at once into one dataset add each page once; a dataset that
  older versions left with duplicate pages is named, and fixed on request;
- a page of 10^7 x 1 points renders to a bounded bitmap, and the good
  pages of the same run are imported; running out of memory on a page
  skips that page only.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pypdfium2 as pdfium
import pytest
from pymongo import uri_parser

from jina_embeddings_v4.testing.support import debian_pdfs, system_deps_required

import fiftyone as fo  # noqa: E402

from jina_embeddings_v4.fiftyone import pdfs  # noqa: E402
from jina_embeddings_v4.io import image_inputs, pdf_render  # noqa: E402

needs_debian_pdfs = pytest.mark.skipif(
    len(debian_pdfs()) < 2 and not system_deps_required(),
    reason="needs the PDFs of Debian's libtasn1-doc and shared-mime-info "
    "(make test fetches them)",
)


def _page_count(path):
    pdf = pdfium.PdfDocument(path)
    try:
        return len(pdf)
    finally:
        pdf.close()


def _variants(folder, copies):
    """``copies`` versions of each Debian PDF, each with a comment line
    appended after its end: other content hashes (so other files to the
    importer), the same pages."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for source in debian_pdfs():
        with open(source, "rb") as f:
            data = f.read()
        stem = os.path.splitext(os.path.basename(source))[0]
        for i in range(copies):
            path = os.path.join(folder, "%s-%d.pdf" % (stem, i))
            with open(path, "wb") as f:
                f.write(data + b"\n%% copy %d\n" % i)
            paths.append(path)
    return paths


def _blank_pdf(path, width_pt, height_pt, pages=1):
    pdf = pdfium.PdfDocument.new()
    for _ in range(pages):
        pdf.new_page(width_pt, height_pt)
    pdf.save(path)
    pdf.close()
    return path


def _cli(*args):
    return [sys.executable, "-m", "jina_embeddings_v4", "add-pdfs"] + list(args)


def _database_port():
    nodes = uri_parser.parse_uri(os.environ["FIFTYONE_DATABASE_URI"])["nodelist"]
    return nodes[0][1]


def _alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


def _pngs(folder):
    found = []
    for root, _, names in os.walk(folder):
        found.extend(n for n in names if n.endswith(".png") and ".tmp" not in n)
    return found


def _mid_render(proc, images, min_workers):
    """Waits until ``proc`` renders (its workers exist, pages are being
    written); returns the pids of its workers."""

    def workers():
        if proc.poll() is not None:
            raise AssertionError("add-pdfs ended before it was caught mid-render")
        try:
            children = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return None
        rendering = len(_pngs(images)) >= 2
        if len(children) >= min_workers and rendering:
            return [c.pid for c in children]
        return None

    return _wait_for(workers, 180, "the render workers")


@needs_debian_pdfs
def test_a_killed_add_pdfs_leaves_no_worker_and_workers_hold_no_db_socket(
    tmp_path,
):
    files = _variants(str(tmp_path / "pdfs"), copies=4)
    images = str(tmp_path / "images")
    with open(tmp_path / "add-pdfs.log", "w") as log:
        proc = subprocess.Popen(
            _cli("--dataset", "jina-pdf-killed", "--images-dir", images,
                 "--workers", "2", str(tmp_path / "pdfs")),
            stdout=log, stderr=subprocess.STDOUT,
        )
    workers = []
    try:
        workers = _mid_render(proc, images, min_workers=2)
        port = _database_port()
        sockets = {}
        for pid in workers:
            try:
                conns = psutil.Process(pid).net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            held = [c for c in conns if c.raddr and c.raddr.port == port]
            if held:
                sockets[pid] = len(held)
        assert sockets == {}, "render workers hold database sockets"

        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(map(_alive, workers)):
            time.sleep(0.1)
        assert [pid for pid in workers if _alive(pid)] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_all(workers)

    # the pages it added before it died are whole; a second run completes
    total = sum(_page_count(p) for p in files)
    rerun = subprocess.run(
        _cli("--dataset", "jina-pdf-killed", "--images-dir", images,
             "--workers", "2", str(tmp_path / "pdfs")),
        capture_output=True, text=True, timeout=600,
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    ds = fo.load_dataset("jina-pdf-killed")
    pairs = list(zip(ds.values("pdf_path"), ds.values("page_number")))
    assert len(pairs) == len(set(pairs)) == total
    ds.delete()


@needs_debian_pdfs
def test_a_render_worker_killed_by_the_os_loses_no_page(tmp_path):
    files = _variants(str(tmp_path / "pdfs"), copies=3)
    total = sum(_page_count(p) for p in files)
    images = str(tmp_path / "images")
    log_path = tmp_path / "add-pdfs.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            _cli("--dataset", "jina-pdf-oom", "--images-dir", images,
                 "--workers", "2", str(tmp_path / "pdfs")),
            stdout=log, stderr=subprocess.STDOUT,
        )
        workers = []
        try:
            workers = _mid_render(proc, images, min_workers=2)
            # what the OOM killer does: SIGKILL to a worker
            os.kill(workers[0], signal.SIGKILL)
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            _kill_all(workers)
    output = log_path.read_text()
    assert proc.returncode == 0, output[-3000:]
    assert "died (killed by SIGKILL): rendering it again" in output
    ds = fo.load_dataset("jina-pdf-oom")
    pairs = list(zip(ds.values("pdf_path"), ds.values("page_number")))
    assert len(pairs) == len(set(pairs)) == total
    for path in ds.values("filepath"):
        assert os.path.getsize(path) > 0
    ds.delete()


_UNGUARDED = textwrap.dedent(
    """
    import sys
    from jina_embeddings_v4.fiftyone.pdfs import add_pdfs
    with open(sys.argv[1], "a") as f:
        f.write("ran\\n")
    summary = add_pdfs(sys.argv[2], sys.argv[4:], sys.argv[3], num_workers=2)
    print(summary["added"], len(summary["failed"]))
    """
)


def test_a_script_without_a_main_guard_renders_in_workers(tmp_path):
    # what the README shows: add_pdfs at the top level of a script; the
    # workers must not run the script again
    script = tmp_path / "import_pdfs.py"
    script.write_text(_UNGUARDED)
    files = [
        _blank_pdf(str(tmp_path / ("doc-%d.pdf" % i)), 612, 792, pages=i + 2)
        for i in range(3)
    ]
    runs = tmp_path / "runs.txt"
    proc = subprocess.run(
        [sys.executable, str(script), str(runs), "jina-pdf-unguarded",
         str(tmp_path / "images")] + files,
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["9", "0"]
    assert runs.read_text() == "ran\n"
    assert len(fo.load_dataset("jina-pdf-unguarded")) == 9
    fo.delete_dataset("jina-pdf-unguarded")


# Imports first, then waits for the start file: both runs then plan their
# work at the same moment.
_AT_ONCE = textwrap.dedent(
    """
    import os, sys, time
    import fiftyone
    from jina_embeddings_v4.cli import main
    from jina_embeddings_v4.fiftyone import pdfs
    start = sys.argv[1]
    while not os.path.exists(start):
        time.sleep(0.01)
    sys.exit(main(sys.argv[2:]))
    """
)


def _run_at_once(tmp_path, argv_per_run):
    start = str(tmp_path / "start")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _AT_ONCE, start] + argv,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for argv in argv_per_run
    ]
    time.sleep(8)  # both have imported FiftyOne and wait
    open(start, "w").close()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        outputs.append((proc.returncode, out, err))
    return outputs


def _added(stdout):
    line = [l for l in stdout.splitlines() if " pages added to " in l]
    assert len(line) == 1, stdout
    return int(line[0].split()[0])


@needs_debian_pdfs
@pytest.mark.parametrize("existing", [True, False], ids=["existing", "new"])
def test_two_runs_at_once_add_each_page_once(tmp_path, existing):
    files = _variants(str(tmp_path / "pdfs"), copies=1)
    total = sum(_page_count(p) for p in files)
    name = "jina-pdf-at-once-%s" % ("existing" if existing else "new")
    if existing:
        ds = fo.Dataset(name)
        ds.persistent = True
    images = str(tmp_path / "images")
    argv = ["add-pdfs", "--dataset", name, "--images-dir", images,
            "--workers", "1", str(tmp_path / "pdfs")]
    outputs = _run_at_once(tmp_path, [argv, argv])
    for rc, out, err in outputs:
        assert rc == 0, out + err[-3000:]

    ds = fo.load_dataset(name)
    ds.reload()  # this process's object predates the runs
    pairs = list(zip(ds.values("pdf_path"), ds.values("page_number")))
    assert len(ds) == total
    assert len(set(pairs)) == total
    # between them the runs added every page once; the pages one rendered
    # and the other had added already are counted as such
    assert sum(_added(out) for _, out, _ in outputs) == total
    assert ds.list_saved_views().count(pdfs.GROUPED_VIEW) == 1
    for path in ds.values("filepath"):
        assert os.path.getsize(path) > 0
    assert len(fo.list_datasets(name)) == 1
    ds.delete()


@needs_debian_pdfs
def test_a_dataset_with_duplicate_pages_is_named_and_fixed(tmp_path):
    files = _variants(str(tmp_path / "pdfs"), copies=1)
    images = str(tmp_path / "images")
    name = "jina-pdf-duplicates"
    ds = fo.Dataset(name)
    ds.persistent = True
    pdfs.add_pdfs(ds, files[1], images)
    n = len(ds)
    # what two runs at once of an older version left: pages twice, and
    # no unique page index
    ds.drop_index(pdfs.PAGE_INDEX)
    copies = [s.copy() for s in ds.match(fo.ViewField("page_number") <= 3)]
    ds.add_samples(copies)
    assert len(ds) == n + 3

    proc = subprocess.run(
        _cli("--dataset", name, "--images-dir", images, files[1]),
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "3 pages are in the dataset twice or more" in proc.stderr
    assert "%s page 1" % files[1] in proc.stderr
    assert "--remove-duplicate-pages" in proc.stderr
    assert "Traceback" not in proc.stderr

    proc = subprocess.run(
        _cli("--dataset", name, "--images-dir", images,
             "--remove-duplicate-pages", str(tmp_path / "pdfs")),
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 duplicate pages removed" in proc.stdout
    ds.reload()
    total = sum(_page_count(p) for p in files)
    pairs = list(zip(ds.values("pdf_path"), ds.values("page_number")))
    assert len(pairs) == len(set(pairs)) == total
    ds.delete()


def _bounded(width, height):
    return (
        max(width, height) <= image_inputs.pad_long_side_limit()
        and width * height <= pdf_render.RENDER_MAX_PIXELS
    )


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "workers"])
def test_extreme_page_sizes_render_bounded_and_good_pages_import(
    tmp_path, workers
):
    folder = tmp_path / "pdfs"
    folder.mkdir()
    wide = _blank_pdf(str(folder / "wide.pdf"), 1e7, 1)
    tall = _blank_pdf(str(folder / "tall.pdf"), 1, 1e7)
    assert os.path.getsize(wide) < 1000
    good = _blank_pdf(str(folder / "good.pdf"), 612, 792, pages=3)
    ds = fo.Dataset()
    for kwargs in ({}, {"max_pixels": None, "dpi": 300}):
        summary = pdfs.add_pdfs(
            ds, [wide, good, tall], str(tmp_path / ("images-%d" % len(kwargs))),
            num_workers=workers, **kwargs
        )
        assert summary["failed"] == []
        assert summary["added"] == 5
        by_path = {}
        for s in ds.select_fields(["pdf_path", "metadata"]):
            by_path.setdefault(s.pdf_path, []).append(s)
        assert sorted(map(len, by_path.values())) == [1, 1, 3]
        for s in ds:
            w, h = s.metadata.width, s.metadata.height
            assert _bounded(w, h), (s.pdf_path, w, h)
        page = by_path[wide][0]
        assert page.metadata.height == 1
        assert page.metadata.width == image_inputs.pad_long_side_limit()
        # the model pads it without resizing it first: the canvas is
        # within its budget as rendered
        canvas = image_inputs.load_image(page.filepath)
        assert canvas.width == page.metadata.width
        assert canvas.width * canvas.height <= image_inputs.PAD_CANVAS_MAX_PIXELS
        ds.clear()
    ds.delete()


_PEAK_MEMORY = textwrap.dedent(
    """
    import resource, sys
    from jina_embeddings_v4.fiftyone.pdfs import add_pdfs
    summary = add_pdfs(sys.argv[1], sys.argv[3:], sys.argv[2],
                       max_pixels=None, dpi=300, num_workers=0)
    print(summary["added"], len(summary["failed"]))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """
)


def test_a_10e7_by_1_point_page_needs_no_gigabytes(tmp_path):
    wide = _blank_pdf(str(tmp_path / "wide.pdf"), 1e7, 1)
    tall = _blank_pdf(str(tmp_path / "tall.pdf"), 1, 1e7)
    good = _blank_pdf(str(tmp_path / "good.pdf"), 612, 792, pages=2)
    baseline = subprocess.run(
        [sys.executable, "-c",
         "import resource, jina_embeddings_v4.fiftyone.pdfs\n"
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"],
        capture_output=True, text=True, timeout=300,
    )
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK_MEMORY, "jina-pdf-peak",
         str(tmp_path / "images"), wide, good, tall],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts, peak_mb = proc.stdout.split("\n")[:2]
    assert counts == "4 0"
    # a 10^7 pt page at 300 dpi would be a 41666667 x 5 bitmap (1.7 GB)
    assert int(peak_mb) - int(baseline.stdout) < 400, (peak_mb, baseline.stdout)
    fo.delete_dataset("jina-pdf-peak")


_OUT_OF_MEMORY = textwrap.dedent(
    """
    import resource, sys
    import pypdfium2
    from jina_embeddings_v4.fiftyone.pdfs import add_pdfs
    import fiftyone as fo
    ds = fo.Dataset(sys.argv[1])
    ds.persistent = True
    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * resource.getpagesize()
    # room for small pages, none for a 4096 x 4096 one (64 MB a copy)
    resource.setrlimit(resource.RLIMIT_AS, (vm + (60 << 20), resource.RLIM_INFINITY))
    summary = add_pdfs(ds, sys.argv[3:], sys.argv[2], max_pixels=None,
                       dpi=600, num_workers=0)
    print(summary["added"])
    for path, page, message in summary["failed"]:
        print("failed", path, page, message)
    """
)


def test_out_of_memory_on_one_page_skips_it_and_keeps_the_others(tmp_path):
    # 100 x 100 inches at 600 dpi: 4096 x 4096 px (capped), which the
    # address-space limit leaves no room for
    first = _blank_pdf(str(tmp_path / "first.pdf"), 72, 72, pages=2)
    poster = _blank_pdf(str(tmp_path / "poster.pdf"), 7200, 7200)
    last = _blank_pdf(str(tmp_path / "last.pdf"), 72, 72)
    proc = subprocess.run(
        [sys.executable, "-c", _OUT_OF_MEMORY, "jina-pdf-oom-page",
         str(tmp_path / "images"), first, poster, last],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines == [
        "3",
        "failed %s 1 %s page 1: out of memory rendering it at 4096x4096 px"
        % (poster, poster),
    ]
    assert "Skipping %s: page 1: out of memory" % poster in proc.stderr
    ds = fo.load_dataset("jina-pdf-oom-page")
    assert sorted(zip(ds.values("pdf_path"), ds.values("page_number"))) == [
        (first, 1), (first, 2), (last, 1)
    ]
    ds.delete()
