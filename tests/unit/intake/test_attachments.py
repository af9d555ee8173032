import io
import struct
import zipfile
import zlib

import pytest

from services.intake.domain.attachments import (
    CONTENT_TYPES,
    AttachmentError,
    check_attachment,
    detect_format,
    safe_file_name,
)
from shared.runtime.http import content_disposition

MB = 1024 * 1024


def minimal_pdf() -> bytes:
    """A one-page PDF with a correct cross-reference table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def minimal_png() -> bytes:
    """A valid 1x1 greyscale PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff"))
        + chunk(b"IEND", b"")
    )


def minimal_jpeg() -> bytes:
    """SOI, a JFIF APP0 segment, EOI: what every JPEG starts and ends with."""
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0 + b"\xff\xd9"


def office_zip(main_part: str, content_type: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            f'content-types"><Override PartName="/{main_part}" ContentType="{content_type}"/>'
            "</Types>",
        )
        archive.writestr("_rels/.rels", "<Relationships/>")
        archive.writestr(main_part, "<document/>")
    return out.getvalue()


def minimal_docx() -> bytes:
    return office_zip(
        "word/document.xml",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    )


def plain_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return out.getvalue()


def ole2_with_stream(name: str) -> bytes:
    """The OLE2 signature and a directory entry name, as legacy Office files have."""
    return (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + b"\x00" * 504
        + name.encode("utf-16-le")
        + b"\x00" * 64
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (minimal_pdf(), "pdf"),
        (minimal_png(), "png"),
        (minimal_jpeg(), "jpg"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "gif"),
        (b"II*\x00\x08\x00\x00\x00", "tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "tiff"),
        (minimal_docx(), "docx"),
        (
            office_zip(
                "xl/workbook.xml",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
            ),
            "xlsx",
        ),
        (ole2_with_stream("WordDocument"), "doc"),
        (ole2_with_stream("Workbook"), "xls"),
        (plain_zip(), "zip"),
    ],
)
def test_formats_are_detected_from_content(data: bytes, expected: str) -> None:
    assert detect_format(data) == expected
    assert expected in CONTENT_TYPES


def test_a_macro_enabled_word_file_is_not_taken_for_docx() -> None:
    docm = office_zip("word/document.xml", "application/vnd.ms-word.document.macroEnabled.main+xml")
    assert detect_format(docm) == "zip"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"Hello, this is a text file",
        b"<html><body>%PDF-1.4</body></html>",  # a PDF header not at the start
        b"PK\x03\x04 truncated zip",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100,  # OLE2 with no known stream
    ],
)
def test_unknown_content_is_not_detected(data: bytes) -> None:
    assert detect_format(data) is None


def test_accepted_attachments_return_their_format() -> None:
    assert (
        check_attachment(
            file_name="to-khai.pdf", data=minimal_pdf(), allowed_formats=["pdf"], max_bytes=MB
        )
        == "pdf"
    )
    assert (
        check_attachment(
            file_name="anh.JPEG", data=minimal_jpeg(), allowed_formats=["pdf", "jpg"], max_bytes=MB
        )
        == "jpg"
    )
    # A name without a (known) extension is judged by its content alone.
    assert (
        check_attachment(
            file_name="scan", data=minimal_png(), allowed_formats=["png"], max_bytes=MB
        )
        == "png"
    )


def test_a_text_file_renamed_pdf_is_refused_naming_what_it_is() -> None:
    with pytest.raises(AttachmentError) as caught:
        check_attachment(
            file_name="giay-phep.pdf",
            data=b"This is not a PDF at all\n",
            allowed_formats=["pdf", "docx"],
            max_bytes=MB,
        )
    assert caught.value.code == "type_mismatch"
    assert "không phải PDF" in caught.value.message
    assert "giay-phep.pdf" in caught.value.message
    assert caught.value.detected_format is None


def test_a_jpeg_named_pdf_is_refused_even_where_jpeg_is_accepted() -> None:
    with pytest.raises(AttachmentError) as caught:
        check_attachment(
            file_name="scan.pdf", data=minimal_jpeg(), allowed_formats=["pdf", "jpg"], max_bytes=MB
        )
    assert caught.value.code == "type_mismatch"
    assert "JPEG" in caught.value.message
    assert caught.value.detected_format == "jpg"


def test_a_format_the_document_does_not_accept_is_refused_listing_the_accepted_ones() -> None:
    with pytest.raises(AttachmentError) as caught:
        check_attachment(
            file_name="to-khai.docx", data=minimal_docx(), allowed_formats=["pdf"], max_bytes=MB
        )
    assert caught.value.code == "not_allowed_for_document"
    assert "DOCX" in caught.value.message and "PDF" in caught.value.message


def test_unrecognised_content_without_a_claiming_extension_is_unsupported() -> None:
    with pytest.raises(AttachmentError) as caught:
        check_attachment(
            file_name="notes.txt", data=b"plain text", allowed_formats=["pdf"], max_bytes=MB
        )
    assert caught.value.code == "unsupported_type"


def test_a_file_over_the_limit_is_refused() -> None:
    data = minimal_pdf() + b"\n" * MB
    with pytest.raises(AttachmentError) as caught:
        check_attachment(file_name="big.pdf", data=data, allowed_formats=["pdf"], max_bytes=MB)
    assert caught.value.code == "too_large"
    assert "vượt giới hạn 1,0 MB" in caught.value.message


def test_a_file_exactly_at_the_limit_is_accepted() -> None:
    data = minimal_pdf()
    assert (
        check_attachment(file_name="a.pdf", data=data, allowed_formats=["pdf"], max_bytes=len(data))
        == "pdf"
    )


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(AttachmentError) as caught:
        check_attachment(file_name="a.pdf", data=b"", allowed_formats=["pdf"], max_bytes=MB)
    assert caught.value.code == "empty"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("Tờ khai đăng ký.pdf", "Tờ khai đăng ký.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\An\\Giấy phép.docx", "Giấy phép.docx"),
        ("bad\x00name\r\n.pdf", "badname.pdf"),
        ("tab\tseparated\x07.pdf", "tab separated.pdf"),
        ('a<b>c:"d|e?f*.pdf', "a_b_c__d_e_f_.pdf"),
        ("...hidden.pdf", "hidden.pdf"),
        ("", "tep-dinh-kem"),
        ("../", "tep-dinh-kem"),
        ("CON.pdf", "_CON.pdf"),
        ("Nguye\u0302\u0303n.pdf", "Nguyễn.pdf"),
    ],
)
def test_file_names_are_made_safe_keeping_vietnamese(name: str, safe: str) -> None:
    assert safe_file_name(name) == safe


def test_long_names_are_cut_in_bytes_keeping_the_extension() -> None:
    name = safe_file_name("đ" * 300 + ".pdf")
    assert name.endswith(".pdf")
    assert len(name.encode()) <= 200
    assert set(name.removesuffix(".pdf")) == {"đ"}  # no half character left


def test_content_disposition_carries_the_vietnamese_name_and_an_ascii_fallback() -> None:
    header = content_disposition("Đơn đề nghị.pdf")
    assert header.startswith('attachment; filename="Don de nghi.pdf"; ')
    assert "filename*=utf-8''%C4%90%C6%A1n%20%C4%91%E1%BB%81%20ngh%E1%BB%8B.pdf" in header
