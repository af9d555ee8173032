"""Sample applicants and files that pass intake's checks."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from typing import Any

from stdnum.vn import mst

from services.intake.domain.dossier import Dossier
from shared.contracts.catalogue import Procedure
from shared.contracts.events import Channel

PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17


def docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def valid_tax_code() -> str:
    base = "010010107"
    return base + mst.calc_check_digit(base)


PERSON = {"kind": "person", "name": "Nguyễn Thị Lan", "identifier": "001303004567"}
ORGANISATION = {"kind": "organisation", "name": "Công ty TNHH Ánh Dương", "identifier": ""}
CONTACT = {"email": "lan.nguyen@example.vn", "phone": "0912345678"}

# 1.004940 Đăng ký nhãn hiệu (level 4): to_khai (pdf/docx) and mau_nhan_hieu (pdf/png) mandatory.
TRADEMARK = "1.004940"


def dossier_json(procedure: str = TRADEMARK, applicant: dict | None = None, **extra: Any) -> str:
    return json.dumps(
        {
            "procedure_code": procedure,
            "applicant": applicant or PERSON,
            "contact": CONTACT,
            "form": {"ten_nhan_hieu": "Sao Mai"},
            **extra,
        }
    )


def trademark_files() -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("to_khai", ("tờ khai.pdf", PDF, "application/pdf")),
        ("mau_nhan_hieu", ("mẫu nhãn.png", PNG, "image/png")),
    ]


def multipart(dossier: str, files: list) -> dict[str, Any]:
    return {"data": {"dossier": dossier}, "files": files}


def stored_dossier(procedure: Procedure, code: str) -> Dossier:
    """A dossier as intake stores it, with no files, to write through the store directly."""
    return Dossier.submitted(
        code=code,
        procedure=procedure,
        applicant={"kind": "person", "name": "Nguyễn Văn A", "identifier": "001099012345"},
        contact={"email": "a@example.vn"},
        form={},
        documents=[],
        channel=Channel.ONLINE,
        received_at=datetime.now(UTC),
        tracking_secret="secret",
    )
