"""The CTCAE v5.0 term dictionary: terms, MedDRA LLT codes, SOCs and the grades each term allows.

Loaded from the packaged ``ctcae-v5.0.json`` (derived from the official NCI spreadsheet by
``schemas/ctcae/derive_ctcae.py``). Source: NCI Common Terminology Criteria for Adverse Events
v5.0 (2017-11-27): 837 terms in 26 MedDRA system organ classes.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

OTHER_SPECIFY_SUFFIX = " - Other, specify"


@dataclass(frozen=True, slots=True)
class CtcaeTerm:
    """One CTCAE term and what it allows."""

    term: str
    meddra_code: int
    soc: str
    grades: frozenset[int]
    needs_verbatim: bool
    """'<SOC> - Other, specify' terms are only meaningful with the investigator's words."""


class CtcaeDictionary:
    """Lookup by term (exact, then case-insensitive) and by MedDRA code, with suggestions."""

    def __init__(self, version: str, terms: list[CtcaeTerm]) -> None:
        self.version = version
        self.terms: dict[str, CtcaeTerm] = {t.term: t for t in terms}
        self._by_folded = {t.term.casefold(): t for t in terms}
        self._by_code = {t.meddra_code: t for t in terms}
        self.socs: frozenset[str] = frozenset(t.soc for t in terms)

    def __len__(self) -> int:
        return len(self.terms)

    def lookup(self, term: str) -> CtcaeTerm | None:
        """The exact term, or ``None``."""
        return self.terms.get(term)

    def lookup_folded(self, term: str) -> CtcaeTerm | None:
        """The term ignoring case and surrounding spaces (for suggestions, not acceptance)."""
        return self._by_folded.get(term.strip().casefold())

    def by_code(self, code: int) -> CtcaeTerm | None:
        return self._by_code.get(code)

    def suggest(self, term: str, limit: int = 3) -> list[str]:
        """Close matches for a misspelt term, best first."""
        folded = self.lookup_folded(term)
        if folded is not None:
            return [folded.term]
        matches = difflib.get_close_matches(
            term.casefold(), list(self._by_folded), n=limit, cutoff=0.75
        )
        return [self._by_folded[m].term for m in matches]


def _load(version: str) -> CtcaeDictionary:
    resource = resources.files("safety_stream") / "data" / f"ctcae-v{version}.json"
    document = json.loads(resource.read_text(encoding="utf-8"))
    terms = [
        CtcaeTerm(
            term=t["term"],
            meddra_code=t["meddra_code"],
            soc=t["soc"],
            grades=frozenset(t["grades"]),
            needs_verbatim=t["term"].endswith(OTHER_SPECIFY_SUFFIX),
        )
        for t in document["terms"]
    ]
    return CtcaeDictionary(document["ctcae_version"], terms)


@cache
def ctcae_dictionary(version: str = "5.0") -> CtcaeDictionary:
    """The packaged dictionary for a CTCAE version (loaded once per process)."""
    return _load(version)
