"""Phrases copied from single pages, for testing and measuring hybrid
search: what a user remembers of one page and types back."""

from ..scoring import lexical


def rare_phrases(texts, n=10, words=4, step=7):
    """Up to ``n`` phrases of ``words`` consecutive words, each from another
    page and each holding a term that no other page has.

    Args:
        texts: ``{sample id: page text}``
        n (10): how many phrases
        words (4): words per phrase
        step (7): words between the starts of the windows tried per page

    Returns:
        a list of ``(sample id, phrase)``, by sample id
    """
    frequency = {}
    for text in texts.values():
        for term in set(lexical.terms(text)):
            frequency[term] = frequency.get(term, 0) + 1

    phrases = []
    for sample_id, text in sorted(texts.items()):
        tokens = (text or "").split()
        for start in range(0, max(0, len(tokens) - words), step):
            phrase = " ".join(tokens[start : start + words])
            terms = lexical.terms(phrase)
            if len(terms) >= words and any(frequency[t] == 1 for t in terms):
                phrases.append((sample_id, phrase))
                break
        if len(phrases) == n:
            break
    return phrases
