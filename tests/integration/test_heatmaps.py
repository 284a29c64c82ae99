"""Query heatmaps: the pure maths on hand-made tensors, then through real
FiftyOne on the tiny checkpoint."""

import os

import numpy as np
import pytest
from PIL import Image

from conftest import MODEL_NAME

from jina_embeddings_v4.scoring import heatmaps as hm

# -- pure functions, hand-made tensors --------------------------------------


def _page(rows, cols, offset=2, tail=1, dim=None):
    """Template tokens, then image tokens that are distinct one-hot
    vectors (image token k is e_k), then tail tokens."""
    n_img = rows * cols
    dim = dim or n_img + 4
    page = np.zeros((offset + n_img + tail, dim), np.float32)
    for t in range(offset):
        page[t, n_img + t % 4] = 1.0
    for k in range(n_img):
        page[offset + k, k] = 1.0
    for t in range(tail):
        page[offset + n_img + t, n_img + 3] = 1.0
    return page


def test_a_query_token_equal_to_an_image_token_peaks_at_its_cell():
    page = _page(2, 3)
    # token (1, 2) is image token 1 * 3 + 2 = 5
    query = np.stack([page[0], page[2 + 5]])
    cells = hm.cell_map(query, page, (2, 3, 2), n_prefix=1)
    assert cells.shape == (2, 3)
    assert np.unravel_index(np.argmax(cells), cells.shape) == (1, 2)
    assert cells[1, 2] == 1.0
    assert cells.dtype == np.float32 and cells.flags["C_CONTIGUOUS"]
    # the prefix token (a template token's vector) is left out
    assert cells.sum() == 1.0


@pytest.mark.parametrize("rows, cols", [(1, 3), (3, 1), (4, 7)])
def test_orientation_and_cell_count_follow_the_grid(rows, cols):
    page = _page(rows, cols)
    for k in range(rows * cols):
        query = page[2 + k][None]
        cells = hm.cell_map(query, page, (rows, cols, 2))
        assert cells.shape == (rows, cols)
        assert cells.size == rows * cols
        # row-major: image token k is cell (k // cols, k % cols)
        assert np.unravel_index(np.argmax(cells), cells.shape) == (
            k // cols,
            k % cols,
        )


def test_shared_range_keeps_a_weak_page_weak():
    strong = np.array([[0.9, 0.1], [0.2, 0.3]], np.float32)
    weak = np.array([[0.4, 0.1], [0.0, 0.2]], np.float32)
    lo, hi = hm.shared_range([strong, weak], floor_quantile=0.5)
    # cells 0.0 0.1 0.1 0.2 0.2 0.3 0.4 0.9: median 0.2, top 0.9
    assert hi == pytest.approx(0.9)
    assert lo == pytest.approx(0.2)
    assert weak.max() < hi
    with pytest.raises(ValueError, match="floor_quantile"):
        hm.shared_range([strong], floor_quantile=1.0)


def test_maxsim_parts_add_up_and_place_tokens():
    page = _page(2, 2)
    # prefix token, one matching image token (0, 1), one matching the tail
    query = np.stack(
        [page[0], 0.5 * page[2 + 1], 0.8 * page[2 + 4]]
    )
    parts = hm.maxsim_parts(query, page, (2, 2, 2), n_prefix=1)
    assert parts.score == pytest.approx(1.0 + 0.5 + 0.8)
    assert parts.contributions.sum() == pytest.approx(parts.score)
    assert parts.cells == [None, (0, 1), None]
    assert parts.prefix_share == pytest.approx(1.0 / 2.3)
    assert parts.template_share == pytest.approx(0.8 / 2.3)


def test_cell_centres_and_bad_grids():
    assert hm.cell_center((0, 0), (2, 4, 0)) == (0.125, 0.25)
    assert hm.cell_center((1, 3), (2, 4, 0)) == (0.875, 0.75)
    with pytest.raises(ValueError, match="fewer than its grid"):
        hm.cell_map(np.ones((1, 8)), np.ones((5, 8)), (2, 2, 2))


# -- through FiftyOne ------------------------------------------------------------

import fiftyone as fo  # noqa: E402
import fiftyone.brain as fob  # noqa: E402
import fiftyone.zoo as foz  # noqa: E402

QUERY = "total amount due"
KWARGS = {"task": "retrieval", "dtype": "float32"}


def _draw_page(path, size, seed, exif_rotate=False):
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = np.full((h, w, 3), 255, np.uint8)
    for _ in range(12):
        x, y = rng.integers(0, max(1, w - 10)), rng.integers(0, max(1, h - 4))
        pixels[y : y + 4, x : x + max(4, w // 5)] = rng.integers(0, 120)
    image = Image.fromarray(pixels)
    if exif_rotate:
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 degrees clockwise to display
        image.save(path, exif=exif)
    else:
        image.save(path)
    return path


@pytest.fixture(scope="module")
def model(zoo_source):
    return foz.load_zoo_model(MODEL_NAME, **KWARGS)


@pytest.fixture(scope="module")
def dataset(tmp_root):
    folder = os.path.join(tmp_root, "heatmap-pages")
    os.makedirs(folder, exist_ok=True)
    sizes = {
        "tiny": (40, 30),
        "wide": (900, 300),
        "tall": (300, 900),
        "huge": (3000, 4200),
    }
    samples = [
        fo.Sample(
            filepath=_draw_page(
                os.path.join(folder, name + ".png"), size, seed=i
            ),
            page=name,
        )
        for i, (name, size) in enumerate(sizes.items())
    ]
    samples.append(
        fo.Sample(
            filepath=_draw_page(
                os.path.join(folder, "exif.jpg"), (600, 200), 9, True
            ),
            page="exif",
        )
    )
    ds = fo.Dataset()
    ds.add_samples(samples)
    yield ds
    ds.delete()


def _independent_maps(model, ds):
    """Maps from embed_prompts_multivectors and embed_multivectors, with the
    grid from the encoder's resize rule, computed here."""
    enc = model.encoder
    query = model.embed_prompts_multivectors([QUERY])[0]
    # the tiny tokenizer splits "Query: total ..." into "Qu", "ery", ":",
    # " total", ...: three prefix tokens (the space joins the first word)
    n_prefix = 3
    out = {}
    for sample_id, path in zip(*ds.values(["id", "filepath"])):
        image = Image.open(path)
        from PIL import ImageOps

        image = ImageOps.exif_transpose(image)
        page = model.embed_multivectors([path])[0]
        rows, cols = enc.image_grid(image.size)
        offset = len(enc.tokenizer(
            "<|im_start|>user\n<|vision_start|>", add_special_tokens=False
        )["input_ids"])
        image_tokens = page[offset : offset + rows * cols]
        sims = query[n_prefix:] @ image_tokens.T
        out[sample_id] = sims.max(axis=0).reshape(rows, cols)
    return out, n_prefix


def test_stored_maps_equal_an_independent_computation(dataset, model):
    n = model.compute_heatmaps(
        dataset, QUERY, keypoints_field="query_tokens", batch_size=2
    )
    assert n == len(dataset)
    expected, _ = _independent_maps(model, dataset)
    ranges = set()
    for sample in dataset:
        heatmap = sample["query_heatmap"]
        assert heatmap.map.dtype == np.float32
        assert heatmap.map.flags["C_CONTIGUOUS"]
        assert heatmap.map.shape == expected[sample.id].shape
        assert np.allclose(heatmap.map, expected[sample.id], atol=1e-5)
        ranges.add(tuple(heatmap.range))
        assert heatmap["query"] == QUERY
        for kp in sample["query_tokens"].keypoints:
            (x, y), = kp.points
            assert 0 < x < 1 and 0 < y < 1
    assert len(ranges) == 1
    shapes = {s.page: s["query_heatmap"].map.shape for s in dataset}
    # 900x300 resizes to 896x308: 32 cells wide, 11 high; and its
    # transpose for the tall page
    assert shapes["wide"] == (11, 32)
    assert shapes["tall"] == (32, 11)
    # far above max_pixels: bounded by it (768 cells at most)
    assert np.prod(shapes["huge"]) <= 602112 // 784
    # EXIF-rotated 600x200 is shown 200 wide, 600 high: rows follow that
    rows, cols = shapes["exif"]
    assert rows > cols


def test_keypoint_contributions_add_up_with_the_shares(dataset, model):
    sample = dataset.first()
    heatmap = sample["query_heatmap"]
    placed = sum(k["contribution"] for k in sample["query_tokens"].keypoints)
    unplaced = heatmap["prefix_share"] + heatmap["template_share"]
    assert placed == pytest.approx(heatmap["maxsim"] * (1 - unplaced), abs=1e-4)
    query = model.embed_prompts_multivectors([QUERY])[0]
    page = model.embed_multivectors([sample.filepath])[0]
    assert heatmap["maxsim"] == pytest.approx(
        float((query @ page.T).max(axis=1).sum()), rel=1e-5
    )


def test_stored_multivectors_are_used_without_a_forward_pass(
    dataset, model, tmp_root
):
    fob.compute_similarity(
        dataset,
        model=MODEL_NAME,
        model_kwargs=KWARGS,
        backend="jina_multivector",
        brain_key="heat_index",
        uri=os.path.join(tmp_root, "heatmap-lancedb"),
        batch_size=5,
    )
    calls = model.encoder.forward_calls
    model.compute_heatmaps(dataset, QUERY, heatmap_field="from_index")
    # one forward pass: the query; the pages come from the index
    assert model.encoder.forward_calls - calls == 1
    expected, _ = _independent_maps(model, dataset)
    for sample in dataset:
        # the index keeps float16 multi vectors
        assert np.allclose(
            sample["from_index"].map, expected[sample.id], atol=5e-3
        )
    dataset.delete_brain_run("heat_index")


def test_a_text_search_writes_its_top_results_heatmaps(
    dataset, model, tmp_root
):
    index = fob.compute_similarity(
        dataset,
        model=MODEL_NAME,
        model_kwargs=KWARGS,
        backend="jina_multivector",
        brain_key="heat_search",
        uri=os.path.join(tmp_root, "heatmap-search"),
        heatmap_field="search_heatmap",
        heatmap_k=2,
    )
    view = dataset.sort_by_similarity(QUERY, k=3, brain_key="heat_search")
    top = view.values("id")
    with_maps = dataset.exists("search_heatmap").values("id")
    assert sorted(with_maps) == sorted(top[:2])

    # another query: its top pages get maps, the others' are cleared
    other = dataset.sort_by_similarity("a photo", k=10, brain_key="heat_search")
    assert len(other) == len(dataset)  # k larger than the dataset
    with_maps = dataset.exists("search_heatmap").values("id")
    assert sorted(with_maps) == sorted(other.values("id")[:2])
    assert dataset.first()["search_heatmap"] is None or (
        dataset.first()["search_heatmap"]["query"] == "a photo"
    )
    index.cleanup()
    dataset.delete_brain_run("heat_search")


def test_bad_input(dataset, model, tmp_root, caplog):
    with pytest.raises(ValueError, match="non-empty string"):
        model.compute_heatmaps(dataset, "   ")

    bad = os.path.join(tmp_root, "heatmap-broken.png")
    with open(bad, "wb") as f:
        f.write(b"not an image")
    sample = fo.Sample(filepath=bad, query_heatmap=None, page="broken")
    dataset.add_sample(sample)
    before = {s.id: s["query_heatmap"] for s in dataset}
    with caplog.at_level("WARNING"):
        n = model.compute_heatmaps(dataset, QUERY, heatmap_field="second")
    assert n == len(dataset) - 1
    assert "heatmap-broken.png" in caplog.text
    assert dataset[sample.id]["second"] is None
    # the other field is unchanged
    after = {s.id: s["query_heatmap"] for s in dataset}
    assert after.keys() == before.keys()
    for i in before:
        if before[i] is not None:
            assert np.array_equal(before[i].map, after[i].map)
    dataset.delete_samples([sample.id])
