"""The free-form `form` of a submission: any JSON, as long as the database can store it (pure).

The form travels inside the dossier document and its event, so a value the database refuses
would fail the dossier's insert — after its code was drawn, leaving a gap in the daily sequence.
Such values are refused up front instead, with the path of the offending value.

Refused: field names that are empty, start with `$` or contain `.` (MongoDB and FerretDB reserve
them); NUL characters and text that is not valid Unicode (lone surrogates cannot be encoded as
UTF-8); integers outside BSON's 64 bits; non-finite numbers; an array directly inside an array;
nesting deeper than `MAX_DEPTH`. FerretDB 1.24 refuses NUL in strings, nested arrays and
non-finite numbers (its "known differences"), and the code must run unchanged on it.
"""

from __future__ import annotations

import math
from typing import Any

# Objects and arrays within one another. Forms are shallow (a few tables of rows at most);
# MongoDB stops at 100 levels per document.
MAX_DEPTH = 20
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def check_form_data(form: dict[str, Any]) -> dict[str, Any]:
    """`form` unchanged if every value can be stored; `ValueError` naming the first that cannot."""
    _check(form, "form", 1)
    return form


def _check(value: Any, path: str, depth: int) -> None:
    if isinstance(value, dict | list) and depth > MAX_DEPTH:
        raise ValueError(
            f"Biểu mẫu lồng quá {MAX_DEPTH} cấp tại {path} "
            f"(form nested deeper than {MAX_DEPTH} levels at {path})"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            _check_key(key, path)
            _check(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, list):
                raise ValueError(
                    f"Mảng lồng trong mảng tại {path}[{index}]; hãy dùng mảng các đối tượng "
                    f"(array inside an array at {path}[{index}]: use an array of objects)"
                )
            _check(item, f"{path}[{index}]", depth + 1)
    elif isinstance(value, str):
        if "\x00" in value or not _encodable(value):
            raise ValueError(f"Văn bản không hợp lệ tại {path} (invalid text at {path})")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(
                f"Số quá lớn tại {path} (integer outside 64 bits at {path}; send it as text)"
            )
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"Số không hợp lệ tại {path} (non-finite number at {path})")


def _check_key(key: str, path: str) -> None:
    if not key or key.startswith("$") or "." in key or "\x00" in key or not _encodable(key):
        shown = key.encode("utf-8", "backslashreplace").decode()[:60]
        raise ValueError(
            f"Tên trường không hợp lệ {shown!r} trong {path}: không được rỗng, bắt đầu bằng '$' "
            f"hay chứa '.' (invalid field name in {path})"
        )


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
