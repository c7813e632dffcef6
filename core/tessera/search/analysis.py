"""Text analysis shared by both search backends, so whoosh and PostgreSQL index and query the
very same terms.

A text becomes a list of *positions*; each position holds the alternative terms of one word:

* Cyrillic words: the Russian Snowball stem, plus the Ukrainian dictionary lemma(s) when
  pymorphy3's Ukrainian dictionary knows the word (Snowball has no Ukrainian stemmer, and
  PostgreSQL has no Ukrainian text-search configuration). «договора», «договоров» -> «договор»;
  «договору», «договорів» -> «договір».
* Latin words: the English Snowball stem.
* ``raw=True`` (titles: names) adds the lower-cased word itself, for prefix and typo matching.
* E-mail addresses: the whole address plus its words; phone numbers: the E.164 digits in every
  form a person may type (74951234567, 84951234567, 4951234567) plus the local 7 digits.

``ё`` is folded to ``е`` and apostrophes inside Ukrainian words are dropped (``м'ясо`` = ``мясо``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import Stemmer

from tessera.entities.channels import normalise_phone, phone_search_forms

_TOKEN_RE = re.compile(
    r"(?P<email>[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+)"
    r"|(?P<phone>\+?\d[\d\-\s().]{3,}\d)"
    r"|(?P<word>\w+(?:['’ʼ`]\w+)*)",
    re.UNICODE,
)
_WORD_RE = re.compile(r"\w+(?:['’ʼ`]\w+)*", re.UNICODE)
_APOSTROPHES = str.maketrans({"'": "", "’": "", "ʼ": "", "`": "", "ё": "е"})
_CYRILLIC = re.compile(r"[а-яёіїєґ]")
_LATIN = re.compile(r"[a-z]")
#: Longest word indexed; longer "words" are hashes, base64 and the like.
MAX_WORD = 60

_ru = Stemmer.Stemmer("russian")
_en = Stemmer.Stemmer("english")
_uk_morph: object | None = None


def _uk() -> object | None:
    global _uk_morph
    if _uk_morph is None:
        try:
            import pymorphy3

            _uk_morph = pymorphy3.MorphAnalyzer(lang="uk")
        except Exception:  # dictionary missing: Ukrainian falls back to the Russian stemmer
            _uk_morph = False
    return _uk_morph or None


def fold(word: str) -> str:
    return word.lower().translate(_APOSTROPHES)


@lru_cache(maxsize=200_000)
def word_terms(word: str) -> tuple[str, ...]:
    """Stems/lemmas of one folded word (no raw form)."""
    if word.isdigit():
        return (word,)
    if _CYRILLIC.search(word):
        terms = [_ru.stemWord(word)]
        morph = _uk()
        # Only dictionary words: pymorphy3's guesser is slow and its guesses are noise here.
        if morph is not None and word.isalpha() and morph.word_is_known(word):  # type: ignore[attr-defined]
            for parse in morph.parse(word)[:3]:  # type: ignore[attr-defined]
                if parse.is_known:
                    lemma = parse.normal_form.translate(_APOSTROPHES)
                    if lemma not in terms:
                        terms.append(lemma)
        return tuple(terms)
    if _LATIN.search(word):
        return (_en.stemWord(word),)
    return (word,)


@lru_cache(maxsize=200_000)
def _span_terms(span: str, raw: bool) -> tuple[str, ...]:
    word = fold(span)
    if len(word) > MAX_WORD:
        return ()
    terms = word_terms(word)
    if raw and word not in terms:
        return (*terms, word)
    return terms


def _phone_terms(span: str) -> list[str] | None:
    digits = "".join(ch for ch in span if ch.isdigit())
    if 10 <= len(digits) <= 15:
        try:
            e164 = normalise_phone(span)
        except ValueError:
            return None
        forms = phone_search_forms(e164)
        canonical = e164.lstrip("+")
        local = canonical[-7:]
        return [canonical, *[f for f in forms if f != canonical], local]
    return None


def _email_terms(email: str) -> list[str]:
    email = email.lower()
    terms = [email]
    domain = email.split("@", 1)[1]
    if domain not in terms:
        terms.append(domain)
    return terms


Positions = list[list[str]]


def analyze(text: str, raw: bool = False, limit: int = 100_000) -> Positions:
    """Positions of ``text``, each a list of alternative terms (first one = the main term)."""
    out: Positions = []
    for match in _TOKEN_RE.finditer(text[:limit]):
        kind = match.lastgroup
        span = match.group()
        if kind == "email":
            out.append(_email_terms(span))
            for word in _WORD_RE.findall(span.split("@", 1)[0]):
                out.append(list(_span_terms(word, raw)))
            continue
        if kind == "phone":
            terms = _phone_terms(span)
            if terms is not None:
                out.append(terms)
                continue
            digits = "".join(ch for ch in span if ch.isdigit())
            groups = _WORD_RE.findall(span)
            if len(groups) > 1 and 5 <= len(digits) <= 9:  # 123-45-67: the local number
                out.append([digits, *groups])
                continue
            for word in groups:
                out.append(list(_span_terms(word, raw)))
            continue
        terms = _span_terms(span, raw)
        if terms:
            out.append(list(terms))
    return out


def position_terms(text: str, raw: bool = False) -> list[set[str]]:
    """Per position, the set of terms (used to highlight snippets)."""
    return [set(p) for p in analyze(text, raw)]


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class QueryWord:
    """One word of a query: its alternative terms, and the folded word for prefix/typo matching."""

    terms: tuple[str, ...]
    word: str = ""
    #: Phones and e-mails match exactly; words may also match as a prefix or with a typo.
    exact: bool = False

    @property
    def prefix_ok(self) -> bool:
        return not self.exact and len(self.word) >= 3 and not self.word.isdigit()

    @property
    def fuzzy_ok(self) -> bool:
        return not self.exact and len(self.word) >= 5 and not any(c.isdigit() for c in self.word)


@dataclass(frozen=True)
class QueryPart:
    """A single word, or a phrase (several words that must be adjacent)."""

    words: tuple[QueryWord, ...]

    @property
    def is_phrase(self) -> bool:
        return len(self.words) > 1


@dataclass(frozen=True)
class ParsedQuery:
    text: str
    parts: tuple[QueryPart, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.parts

    def all_terms(self) -> set[str]:
        return {t for p in self.parts for w in p.words for t in w.terms}

    def prefixes(self) -> set[str]:
        return {w.word for p in self.parts for w in p.words if w.prefix_ok}


def _query_words(text: str) -> list[QueryWord]:
    words: list[QueryWord] = []
    for match in _TOKEN_RE.finditer(text):
        kind = match.lastgroup
        span = match.group()
        if kind == "email":
            words.append(QueryWord((span.lower(),), span.lower(), exact=True))
            continue
        if kind == "phone":
            terms = _phone_terms(span)
            if terms is not None:
                words.append(QueryWord((terms[0],), terms[0], exact=True))
                continue
            digits = "".join(ch for ch in span if ch.isdigit())
            groups = _WORD_RE.findall(span)
            if len(groups) > 1 and 5 <= len(digits) <= 9:
                words.append(QueryWord((digits,), digits, exact=True))
                continue
            for word in groups:
                words.append(QueryWord(word_terms(word), word))
            continue
        word = fold(span)
        if len(word) <= MAX_WORD:
            words.append(QueryWord(word_terms(word), word))
    return words


def parse_query(text: str) -> ParsedQuery:
    """Words are ANDed; ``"double quotes"`` make a phrase; phones and e-mails are recognised
    in any formatting."""
    parts: list[QueryPart] = []
    pieces = re.split(r'"([^"]*)"', text[:500])
    for i, piece in enumerate(pieces):
        words = _query_words(piece)
        if i % 2 == 1 and len(words) > 1:
            parts.append(QueryPart(tuple(words)))
        else:
            parts.extend(QueryPart((w,)) for w in words)
    # A word given twice is one condition (and must not look twice as selective to a planner).
    return ParsedQuery(text=text, parts=tuple(dict.fromkeys(parts)))
