"""Reading the application form's multipart body as it streams in, within the limits.

Text fields are kept (small, bounded); each file goes to a spooled temporary file (memory up to
`SPOOL_BYTES`, then disk) that is later streamed on to intake. A file over the size limit is not
refused mid-stream: its bytes beyond the limit are counted and dropped, so that the page can
name the file and keep everything else the citizen entered. Only a body far beyond any valid
dossier (`hard_limit`) is cut off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from tempfile import SpooledTemporaryFile

from python_multipart.multipart import MultipartParser, parse_options_header

SPOOL_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 40


class UnreadableForm(Exception):
    """Not multipart, malformed, too many parts, or far too large."""


@dataclass
class ReceivedFile:
    field_name: str
    file_name: str
    content_type: str
    size_bytes: int = 0
    truncated: bool = False
    stream: SpooledTemporaryFile[bytes] = field(
        default_factory=lambda: SpooledTemporaryFile(max_size=SPOOL_BYTES)
    )


@dataclass
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[ReceivedFile] = field(default_factory=list)

    def close(self) -> None:
        for received in self.files:
            received.stream.close()


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    data: bytearray = field(default_factory=bytearray)
    file: ReceivedFile | None = None


async def read_form(
    content_type: str,
    body: AsyncIterator[bytes],
    *,
    max_file_bytes: int,
    max_files: int,
    hard_limit: int,
) -> ReceivedForm:
    """The fields and files of a `multipart/form-data` body; `UnreadableForm` if it is not one."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UnreadableForm("not multipart/form-data")
    form = ReceivedForm()
    part = _Part()
    header_name = bytearray()
    header_value = bytearray()
    problems: list[str] = []

    def on_part_begin() -> None:
        nonlocal part
        part = _Part()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        part.headers[bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(part.headers.get(b"content-disposition", b""))
        part.name = disposition.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in disposition:
            file_name = disposition[b"filename"].decode("utf-8", "replace")
            if not file_name:  # an input left empty: no file chosen
                return
            if len(form.files) >= max_files:
                problems.append("too many files")
                return
            part.file = ReceivedFile(
                part.name,
                file_name,
                part.headers.get(b"content-type", b"application/octet-stream").decode("latin-1"),
            )
            form.files.append(part.file)
        elif len(form.fields) >= MAX_FIELDS:
            problems.append("too many fields")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if part.file is not None:
            received = part.file
            received.size_bytes += len(chunk)
            if received.size_bytes > max_file_bytes:
                received.truncated = True  # counted, not kept
            else:
                received.stream.write(chunk)
        elif len(part.data) + len(chunk) <= MAX_FIELD_BYTES:
            part.data.extend(chunk)
        else:
            problems.append(f"field {part.name} too long")

    def on_part_end() -> None:
        if part.file is not None:
            part.file.stream.seek(0)
        elif part.name and part.name not in form.fields:
            form.fields[part.name] = part.data.decode("utf-8", "replace")

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    received_bytes = 0
    try:
        async for chunk in body:
            received_bytes += len(chunk)
            if received_bytes > hard_limit:
                raise UnreadableForm("body too large")
            parser.write(chunk)
            if problems:
                raise UnreadableForm(problems[0])
        parser.finalize()
    except UnreadableForm:
        form.close()
        raise
    except Exception as error:  # python-multipart's parse errors
        form.close()
        raise UnreadableForm(type(error).__name__) from None
    return form
