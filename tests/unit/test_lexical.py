"""Hybrid search's lexical side: terms, sparse vectors, fusion, by hand."""

import pytest

from jina_embeddings_v4.scoring import lexical as lx


def test_identifiers_stay_whole_and_their_parts_findable():
    assert lx.terms("Invoice INV-2024-0113, total: 12.50") == [
        "invoice",
        "inv_2024_0113",
        "inv",
        "2024",
        "0113",
        "total",
        "12_50",
        "12",
        "50",
    ]
    # a comma or full stop followed by a space ends a word, not a joint
    assert lx.terms("Hello, world. ACME/7") == [
        "hello",
        "world",
        "acme_7",
        "acme",
        "7",
    ]
    # NFKC: the ligature and full-width digits read as plain letters
    assert lx.terms("\ufb01le \uff12\uff10\uff12\uff14") == ["file", "2024"]
    assert lx.terms(None) == [] and lx.terms("") == [] and lx.terms("--") == []
    assert lx.engine_text("A-1 b") == "a_1 a 1 b"


def test_sparse_vector_saturates_term_frequency():
    indices, values = lx.sparse_vector(["a", "a", "b"])
    by_term = dict(zip(indices, values))
    # tf 2: 2 * 2.2 / 3.2; tf 1: 1.0
    assert by_term[lx.term_id("a")] == pytest.approx(1.375)
    assert by_term[lx.term_id("b")] == pytest.approx(1.0)
    assert indices == sorted(indices)
    assert lx.term_id("a") == 3904355907 & 0x7FFFFFFF


def test_fusion_scales_each_ranking_and_keeps_maxsim_order_without_words():
    visual = {"a": 1.0, "b": 3.0, "c": 2.0, "d": 0.0}
    fused = lx.fuse(visual, {"a": 5.0, "c": 1.0}, 0.7)
    # a: 0.3 * 1/3 + 0.7 * 1; b: 0.3 * 1; c: 0.3 * 2/3 + 0.7 * 0.2; d: 0
    assert fused["a"] == pytest.approx(0.8)
    assert fused["b"] == pytest.approx(0.3)
    assert fused["c"] == pytest.approx(0.34)
    assert fused["d"] == pytest.approx(0.0)
    # no matching word anywhere: MaxSim's order, scaled
    alone = lx.fuse(visual, {}, 0.7)
    assert sorted(alone, key=alone.get, reverse=True) == ["b", "c", "a", "d"]
    assert lx.fuse({"a": 2.0}, {}, 0.5) == {"a": 0.5}
    assert lx.fuse({}, {"a": 1.0}, 0.5) == {}


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.5", None, True])
def test_text_weight_is_checked(bad):
    with pytest.raises(ValueError, match="text_weight must be a number in"):
        lx.check_text_weight(bad)
    assert lx.check_text_weight(0) == 0.0


def test_term_spans_keep_the_query_spelling():
    assert lx.term_spans("Total INV-2024") == [
        ("total", "Total"),
        ("inv_2024", "INV-2024"),
        ("inv", "INV"),
        ("2024", "2024"),
    ]
    assert lx.term_spans("") == [] and lx.term_spans(None) == []


def test_word_matches_label_each_word_with_its_longest_shared_term():
    words = ["Total:", "inv-2024-9", "INV-2024.", "x", "totally", "TOTAL"]
    assert lx.word_matches("total INV-2024", words) == [
        (0, "total"),
        # the word's terms are inv_2024_9, inv, 2024, 9: "2024" is the
        # longest the query has
        (1, "2024"),
        (2, "INV-2024"),
        (5, "total"),
    ]
    # no stemming, no partial words; nothing in common, nothing matched
    assert lx.word_matches("tot", words) == []
    assert lx.word_matches("", words) == []
    assert lx.word_matches("total", []) == []
