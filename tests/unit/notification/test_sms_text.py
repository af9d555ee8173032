"""SMS encoding and segment counting (GSM 03.38 / 3GPP TS 23.040 limits)."""

from __future__ import annotations

from services.notification.citizens.domain import sms_text


def test_plain_ascii_is_gsm7_with_160_characters_a_single_segment() -> None:
    assert sms_text.measure("a" * 160).segments == 1
    assert sms_text.measure("a" * 160).encoding == "gsm7"
    assert sms_text.measure("a" * 161).segments == 2  # 153 a segment once concatenated
    assert sms_text.measure("a" * 306).segments == 2
    assert sms_text.measure("a" * 307).segments == 3


def test_extension_characters_take_two_septets() -> None:
    measured = sms_text.measure("€" * 80)
    assert measured.encoding == "gsm7" and measured.units == 160 and measured.segments == 1
    assert sms_text.measure("€" * 81).segments == 2


def test_vietnamese_with_diacritics_is_ucs2_at_70_a_segment() -> None:
    assert sms_text.measure("ồ" * 70).encoding == "ucs2"
    assert sms_text.measure("ồ" * 70).segments == 1
    assert sms_text.measure("ồ" * 71).segments == 2  # 67 a segment once concatenated
    assert sms_text.measure("ồ" * 134).segments == 2
    assert sms_text.measure("ồ" * 135).segments == 3


def test_characters_outside_the_basic_plane_count_two_ucs2_units() -> None:
    assert sms_text.measure("😀" * 35).units == 70
    assert sms_text.measure("😀" * 36).segments == 2


def test_stripping_diacritics_makes_vietnamese_gsm7() -> None:
    stripped = sms_text.strip_diacritics("Hồ sơ đã được tiếp nhận. ĐƯỢC “ngay”…")
    assert stripped == 'Ho so da duoc tiep nhan. DUOC "ngay"...'
    assert sms_text.is_gsm7(stripped)


def test_fit_caps_the_segments_and_marks_the_cut() -> None:
    fitted = sms_text.fit("Hồ sơ " * 200, max_segments=2)
    assert fitted.truncated and fitted.segments == 2 and fitted.text.endswith("...")
    assert fitted.units <= 306
    kept = sms_text.fit("ồ" * 500, max_segments=3, strip=False)
    assert kept.encoding == "ucs2" and kept.segments == 3 and kept.units <= 201


def test_fit_leaves_a_short_text_alone_but_collapses_whitespace() -> None:
    fitted = sms_text.fit("Hồ sơ\n  đã nhận", max_segments=1)
    assert fitted.text == "Ho so da nhan" and not fitted.truncated and fitted.segments == 1
