"""How a name reads: a skeleton in the spirit of Unicode TR39, for the staff-name check.

``Ноst`` (Cyrillic Н and о), ``Ηοѕτ`` (Greek and Cyrillic), ``H\u200dost`` (a zero-width
joiner) and ``Hóst`` all read as "Host". The skeleton folds what a reader cannot tell
apart: compatibility forms (NFKC: fullwidth, mathematical letters), case, marks and
invisible characters, and every letter Unicode's confusables data (``confusables.txt``,
shipped by the ``confusable-homoglyphs`` package) lists as a look-alike of a Latin
letter or digit. Names are only compared with a few staff words, so the folding may be
coarse: ``0``/``o``, ``1``/``l``/``i``, ``rn``/``m`` are one letter each.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from confusable_homoglyphs.confusables import confusables_data

#: general categories dropped: marks (a combining acute over "o" still reads "o"),
#: format characters (zero-width joiners, bidi controls), and everything not a letter or
#: a digit once mapped (spaces, punctuation)
_DROPPED = {"Mn", "Me", "Mc", "Cf"}
#: letters Unicode marks as default-ignorable (drawn as nothing): the Hangul fillers,
#: Khmer's inherent vowels
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u17b4\u17b5")
#: ASCII letters that read alike, folded to one (after case folding)
_ASCII_FOLD = str.maketrans({"0": "o", "1": "i", "l": "i", "|": "i"})


def _plain(text: str) -> str:
    """``text`` without marks and format characters (the data wraps RTL ones in LRM)."""
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if unicodedata.category(c) not in _DROPPED and c not in _BLANK_LETTERS)


@lru_cache(maxsize=1)
def _table() -> dict[str, str]:
    """Every character the confusables data ties to one ASCII letter or digit -> it.

    Some are tied only through another look-alike (Cyrillic ``т`` -> small capital ``ᴛ``):
    followed for a few steps. Latin small capitals read as their letter here (TR39 keeps
    them apart; a name is read at a glance).
    """
    table: dict[str, str] = {}
    for code in range(0x1D00, 0x1D2C):  # Phonetic Extensions: the small capitals
        name = unicodedata.name(chr(code), "")
        letter = name.removeprefix("LATIN LETTER SMALL CAPITAL ")
        if letter != name and len(letter) == 1:
            table[chr(code)] = letter.lower()
    for char in "ʀʙɢʜɪʟɴʏ":  # the IPA block's small capitals
        table[char] = unicodedata.name(char)[-1].lower()
    for _ in range(3):
        for char, homoglyphs in confusables_data.items():
            if char.isascii() or char in table:
                continue
            for h in homoglyphs:
                target = _plain(h["c"])
                if len(target) != 1:
                    continue
                if target.isascii() and (target.isalnum() or target == "|"):
                    table[char] = target
                    break
                if target in table:
                    table[char] = table[target]
                    break
    return table


def skeleton(name: str) -> str:
    """``name`` as it reads: look-alikes folded to ASCII, lower case, letters and digits only."""
    table = _table()
    out = []
    for char in _plain(unicodedata.normalize("NFKC", name)):
        mapped = table.get(char) or table.get(char.casefold()) or char
        out.append(mapped.casefold())
    text = "".join(out).translate(_ASCII_FOLD).replace("rn", "m")
    return "".join(c for c in text if c.isalnum())
