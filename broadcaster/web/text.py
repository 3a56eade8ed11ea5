"""Audience text made safe to store and show: no control or bidi-override characters.

Pages render text with ``textContent`` (no markup), but a NUL or ESC still reaches a
terminal that reads the database or a log, and bidi overrides (U+202E...) make a
question read backwards or hide what follows ("txt.exe" shown as "exe.txt").
Zero-width joiners stay (emoji and several scripts need them).
"""

from __future__ import annotations

import unicodedata

#: bidi embeddings, overrides, isolates and marks
BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
#: format characters that carry meaning in real text (ZWNJ, ZWJ)
KEEP_FORMAT = frozenset("\u200c\u200d")


def clean_text(text: str) -> str:
    r"""Return ``text`` in NFC without control, bidi or (other) format characters.

    Line breaks are kept (``\r\n`` as ``\n``), tabs and line separators become spaces,
    and the ends are trimmed.
    """
    out = []
    for ch in unicodedata.normalize("NFC", text.replace("\r\n", "\n")):
        if ch == "\n" or ch in KEEP_FORMAT:
            out.append(ch)
        elif ch in "\t\r\u2028\u2029":
            out.append(" ")
        elif ch in BIDI or unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
            continue
        else:
            out.append(ch)
    return "".join(out).strip()
