"""SMS text rules: GSM-7 or UCS-2 encoding, segment counting, diacritics, a segment cap.

One segment holds 160 GSM-7 characters or 70 UCS-2 code units; a concatenated message loses room
to its header: 153 and 67 a segment. GSM-7 extension characters (`{}[]~^|\\€` and form feed)
take two septets. Vietnamese with diacritics is not GSM-7, so it goes as UCS-2 (70 a segment);
operators in Viet Nam commonly send it without diacritics instead (`strip_diacritics`), which
fits 160 a segment.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE_LIMIT = {"gsm7": 160, "ucs2": 70}
MULTI_LIMIT = {"gsm7": 153, "ucs2": 67}

Encoding = Literal["gsm7", "ucs2"]

# Characters with no diacritic to strip that still fall outside GSM-7.
_ASCII_LOOKALIKES = str.maketrans(
    {
        "đ": "d",
        "Đ": "D",
        "“": '"',
        "”": '"',
        "‘": "'",
        "’": "'",
        "–": "-",
        "—": "-",
        "…": "...",
        "\u00a0": " ",
        "•": "-",
    }
)


@dataclass(frozen=True)
class SmsText:
    text: str
    encoding: Encoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    truncated: bool = False


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def _units(text: str, encoding: Encoding) -> int:
    if encoding == "gsm7":
        return sum(2 if c in GSM7_EXTENSION else 1 for c in text)
    return len(text.encode("utf-16-le")) // 2


def measure(text: str) -> SmsText:
    """The encoding a text needs and how many segments it takes."""
    encoding: Encoding = "gsm7" if is_gsm7(text) else "ucs2"
    units = _units(text, encoding)
    if units <= SINGLE_LIMIT[encoding]:
        segments = 1 if units else 0
    else:
        segments = math.ceil(units / MULTI_LIMIT[encoding])
    return SmsText(text, encoding, units, segments)


def strip_diacritics(text: str) -> str:
    """`Hồ sơ đã được tiếp nhận` -> `Ho so da duoc tiep nhan`; what is left outside GSM-7
    becomes `?`."""
    text = text.translate(_ASCII_LOOKALIKES)
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    bare = unicodedata.normalize("NFC", bare)
    return "".join(c if c in GSM7_BASIC or c in GSM7_EXTENSION else "?" for c in bare)


def capacity(encoding: Encoding, segments: int) -> int:
    return SINGLE_LIMIT[encoding] if segments == 1 else MULTI_LIMIT[encoding] * segments


def fit(text: str, *, max_segments: int, strip: bool = True) -> SmsText:
    """The SMS to send: collapsed whitespace, optionally without diacritics, cut to
    `max_segments` (ending in `...`) if longer."""
    text = " ".join(text.split())
    if strip:
        text = strip_diacritics(text)
    measured = measure(text)
    if measured.segments <= max_segments:
        return measured
    room = capacity(measured.encoding, max_segments) - 3  # for "..."
    kept: list[str] = []
    used = 0
    for char in text:
        cost = _units(char, measured.encoding)
        if used + cost > room:
            break
        kept.append(char)
        used += cost
    cut = "".join(kept).rstrip() + "..."
    result = measure(cut)
    return SmsText(result.text, result.encoding, result.units, result.segments, truncated=True)
