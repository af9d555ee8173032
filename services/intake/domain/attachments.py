"""Attachment checks: the type is detected from the content, never trusted from the name (pure).

Format names are the catalogue's (`RequiredDocument.formats`): `pdf`, `docx`, `jpg`, `png`, ….
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from collections.abc import Sequence

CONTENT_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "gif": "image/gif",
    "tiff": "image/tiff",
    "webp": "image/webp",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "doc": "application/msword",
    "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
    "zip": "application/zip",
}
"""Canonical format name -> MIME type, for every format `detect_format` can return."""

LABELS: dict[str, str] = {name: name.upper() for name in CONTENT_TYPES} | {"jpg": "JPEG"}

# Extensions that name a format differently from its canonical name.
_ALIASES = {"jpeg": "jpg", "jpe": "jpg", "jfif": "jpg", "tif": "tiff"}

_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Stream names in an OLE2 directory (UTF-16LE) that identify the legacy Office application.
_OLE2_STREAMS = (
    ("WordDocument".encode("utf-16-le"), "doc"),
    ("Workbook".encode("utf-16-le"), "xls"),
    ("Book".encode("utf-16-le"), "xls"),
    ("PowerPoint Document".encode("utf-16-le"), "ppt"),
)
_ODF_MIMETYPES = {
    b"application/vnd.oasis.opendocument.text": "odt",
    b"application/vnd.oasis.opendocument.spreadsheet": "ods",
}


def canonical_format(name: str) -> str:
    """`JPEG` -> `jpg`, `.PDF` -> `pdf`: a format or extension in its canonical spelling."""
    name = name.strip().lower().lstrip(".")
    return _ALIASES.get(name, name)


def detect_format(data: bytes) -> str | None:
    """The canonical format of a file from its content (the whole file), or None if unknown.

    Checks magic numbers; ZIP containers are opened (central directory only, nothing extracted
    beyond a 64 KiB peek) to tell DOCX/XLSX/PPTX/ODF from a plain archive. Office files with macros
    (`.docm`, `.xlsm`) are reported as `zip`, so they are never taken for DOCX/XLSX.
    """
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(_OLE2):
        return _ole2_format(data)
    if data.startswith(b"PK\x03\x04"):
        return _zip_format(data)
    return None


def _ole2_format(data: bytes) -> str | None:
    for stream, name in _OLE2_STREAMS:
        if stream in data:
            return name
    return None


def _zip_format(data: bytes) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                with archive.open("mimetype") as entry:
                    return _ODF_MIMETYPES.get(entry.read(128).strip(), "zip")
            if "[Content_Types].xml" not in names:
                return "zip"
            with archive.open("[Content_Types].xml") as entry:
                content_types = entry.read(64 * 1024)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, OSError, EOFError, ValueError):
        return None
    if b"macroEnabled" in content_types:
        return "zip"
    for folder, name in (("word/", "docx"), ("xl/", "xlsx"), ("ppt/", "pptx")):
        if any(entry.startswith(folder) for entry in names):
            return name
    return "zip"


class AttachmentError(ValueError):
    """An attachment refused; `code` is stable for clients, `message` is Vietnamese first."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        file_name: str | None = None,
        detected_format: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.file_name = file_name
        self.detected_format = detected_format


def _label(format_name: str | None) -> str:
    if format_name is None:
        return "không xác định (unknown)"
    return LABELS.get(format_name, format_name.upper())


def _mebibytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f}".replace(".", ",") + " MB"


def claimed_format(file_name: str) -> str | None:
    """The known format the file name's extension claims, if any."""
    _, dot, extension = file_name.rpartition(".")
    if not dot:
        return None
    name = canonical_format(extension)
    return name if name in CONTENT_TYPES else None


def check_attachment(
    *, file_name: str, data: bytes, allowed_formats: Sequence[str], max_bytes: int
) -> str:
    """The detected format of an acceptable attachment, or `AttachmentError`.

    Codes: `empty`; `too_large`; `type_mismatch` when the extension names a known format and the
    content is something else (a text file renamed `.pdf`, a JPEG named `.pdf`: the stored name
    would mislead whoever opens it); `unsupported_type` when the content is not a format we
    recognise; `not_allowed_for_document` when it is, but this document does not accept it.
    """
    allowed = [canonical_format(name) for name in allowed_formats]
    accepted = ", ".join(_label(name) for name in allowed)
    if not data:
        raise AttachmentError(
            "empty", f"Tệp '{file_name}' rỗng (the file is empty)", file_name=file_name
        )
    if len(data) > max_bytes:
        raise AttachmentError(
            "too_large",
            f"Tệp '{file_name}' có dung lượng {_mebibytes(len(data))}, vượt giới hạn "
            f"{_mebibytes(max_bytes)} (the file is larger than the limit)",
            file_name=file_name,
        )
    detected = detect_format(data)
    claimed = claimed_format(file_name)
    if claimed is not None and claimed != detected:
        raise AttachmentError(
            "type_mismatch",
            f"Tệp '{file_name}' có đuôi .{file_name.rpartition('.')[2]} nhưng nội dung không phải "
            f"{_label(claimed)}; nội dung nhận dạng được: {_label(detected)} "
            f"(the content is not {_label(claimed)}; detected: {detected or 'unknown'})",
            file_name=file_name,
            detected_format=detected,
        )
    if detected is None:
        raise AttachmentError(
            "unsupported_type",
            f"Không nhận dạng được định dạng của tệp '{file_name}'; định dạng được chấp nhận: "
            f"{accepted} (unrecognised file content; accepted: {accepted})",
            file_name=file_name,
        )
    if detected not in allowed:
        raise AttachmentError(
            "not_allowed_for_document",
            f"Giấy tờ này không nhận tệp {_label(detected)}; định dạng được chấp nhận: {accepted} "
            f"({_label(detected)} is not accepted for this document; accepted: {accepted})",
            file_name=file_name,
            detected_format=detected,
        )
    return detected


_UNSAFE_IN_NAMES = re.compile(r'[<>:"/\\|?*]')
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\.|$)", re.IGNORECASE)
MAX_FILE_NAME_BYTES = 200
DEFAULT_FILE_NAME = "tep-dinh-kem"


def safe_file_name(name: str, *, max_bytes: int = MAX_FILE_NAME_BYTES) -> str:
    """A file name safe to store and to offer for download; Vietnamese letters are kept.

    Drops any directory part (`/` or `\\`), control and reserved characters and leading dots,
    collapses whitespace, NFC-normalises, and shortens the stem (never the extension) to
    `max_bytes` bytes of UTF-8.
    """
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(
        (" " if c.isspace() else "") if unicodedata.category(c)[0] == "C" else c for c in name
    )
    name = _UNSAFE_IN_NAMES.sub("_", name)
    name = " ".join(name.split()).lstrip(". ").rstrip(". ")
    if not name:
        return DEFAULT_FILE_NAME
    if _WINDOWS_RESERVED.match(name):
        name = "_" + name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem.strip() or len(extension) > 10:
        stem, dot, extension = name, "", ""
    stem = stem.rstrip(" .")
    room = max_bytes - len((dot + extension).encode())
    stem = stem.encode()[:room].decode(errors="ignore").rstrip(". ")
    return (stem or DEFAULT_FILE_NAME) + dot + extension
