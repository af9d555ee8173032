"""The online application form (pure): what the citizen types, checked before anything is sent
to intake, with a Vietnamese message per field; and intake's refusals mapped back to the fields.

Intake checks everything again and has the last word (a citizen ID's province code, the files'
real content): its messages are shown next to the field they concern.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email
from stdnum import exceptions as stdnum_errors
from stdnum.vn import mst

from shared.contracts.catalogue import Procedure, RequiredDocument

from .labels import formats_text, size_text

PERSON = "person"
ORGANISATION = "organisation"
KINDS = {PERSON: "Cá nhân", ORGANISATION: "Tổ chức, doanh nghiệp"}

MAX_NAME = 300
MAX_ADDRESS = 500
MAX_REQUEST_TEXT = 2000

_SEPARATORS = re.compile(r"[\s.\-()]")
_MOBILE = re.compile(r"^0[35789]\d{8}$")

# Field names of the form (the `name` and `id` of each input), in page order.
FIELDS = (
    "applicant_kind",
    "applicant_name",
    "applicant_identifier",
    "applicant_address",
    "contact_email",
    "contact_phone",
    "form_request",
)
FIELD_LABELS = {
    "applicant_kind": "Người nộp là",
    "applicant_name": "Họ và tên hoặc tên tổ chức",
    "applicant_identifier": "Số CCCD hoặc mã số thuế",
    "applicant_address": "Địa chỉ",
    "contact_email": "Thư điện tử (email)",
    "contact_phone": "Số điện thoại di động",
    "form_request": "Nội dung đề nghị",
}


@dataclass(frozen=True)
class Application:
    """The applicant, contact and form fields as entered (strings, kept for redisplay)."""

    applicant_kind: str = PERSON
    applicant_name: str = ""
    applicant_identifier: str = ""
    applicant_address: str = ""
    contact_email: str = ""
    contact_phone: str = ""
    form_request: str = ""

    @classmethod
    def from_form(cls, form: Mapping[str, Any]) -> Application:
        """Take the known fields from a submitted form; anything else is ignored."""
        values = {
            name: clean_text(str(form.get(name) or ""), keep_newlines=name == "form_request")
            for name in FIELDS
        }
        if values["applicant_kind"] not in KINDS:
            values["applicant_kind"] = PERSON
        return cls(**values)

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def identifier_label(self) -> str:
        return "Số căn cước công dân (CCCD)" if self.is_person else "Mã số thuế"

    @property
    def is_person(self) -> bool:
        return self.applicant_kind == PERSON

    def to_intake(self, procedure_code: str) -> dict[str, Any]:
        """The `dossier` part intake expects (its `SubmissionForm`)."""
        form: dict[str, Any] = {}
        if self.form_request:
            form["noi_dung_de_nghi"] = self.form_request
        return {
            "procedure_code": procedure_code,
            "applicant": {
                "kind": self.applicant_kind,
                "name": self.applicant_name,
                "identifier": normalised_identifier(self),
                "address": self.applicant_address or None,
            },
            "contact": {
                "email": self.contact_email or None,
                "phone": self.contact_phone or None,
            },
            "form": form,
        }


def clean_text(value: str, *, keep_newlines: bool = False) -> str:
    """NFC (browsers on macOS send decomposed Vietnamese), control characters dropped, spaces
    collapsed; line breaks kept in long texts."""
    value = unicodedata.normalize("NFC", value)
    if keep_newlines:
        lines = [" ".join(_printable(line).split()) for line in value.splitlines()]
        return "\n".join(lines).strip()
    return " ".join(_printable(value).split())


def _printable(value: str) -> str:
    return "".join(" " if unicodedata.category(c)[0] == "C" else c for c in value)


def normalised_identifier(application: Application) -> str:
    number = _SEPARATORS.sub("", application.applicant_identifier)
    if application.is_person:
        return number
    if len(number) == 13 and number.isdigit():
        return f"{number[:10]}-{number[10:]}"
    return number


def citizen_id_error(value: str) -> str | None:
    number = _SEPARATORS.sub("", value)
    if not number:
        return "Nhập số căn cước công dân (CCCD) gồm 12 chữ số."
    if not (number.isascii() and number.isdigit()):
        return "Số CCCD chỉ được gồm chữ số."
    if len(number) != 12:
        return f"Số CCCD phải gồm đúng 12 chữ số (bạn đã nhập {len(number)} chữ số)."
    return None


def tax_code_error(value: str) -> str | None:
    if not value.strip():
        return "Nhập mã số thuế của tổ chức (10 chữ số, hoặc 13 chữ số với chi nhánh)."
    try:
        mst.validate(value)
    except stdnum_errors.InvalidLength:
        return (
            "Mã số thuế phải gồm 10 chữ số, hoặc 13 chữ số dạng NNNNNNNNNN-NNN đối với chi nhánh."
        )
    except stdnum_errors.InvalidFormat:
        return "Mã số thuế chỉ được gồm chữ số."
    except stdnum_errors.InvalidChecksum:
        return "Mã số thuế không đúng: chữ số kiểm tra không khớp. Vui lòng kiểm tra lại."
    except stdnum_errors.ValidationError:
        return "Mã số thuế không hợp lệ."
    return None


def phone_error(value: str) -> str | None:
    number = _SEPARATORS.sub("", value)
    for prefix in ("+84", "0084"):
        if number.startswith(prefix):
            number = "0" + number[len(prefix) :].removeprefix("0")
    if not (number.isascii() and _MOBILE.match(number)):
        return (
            "Số điện thoại di động không hợp lệ: cần 10 chữ số, bắt đầu bằng 03, 05, 07, 08 "
            "hoặc 09."
        )
    return None


def email_error(value: str) -> str | None:
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        return "Địa chỉ email không hợp lệ, ví dụ đúng: ten@vidu.vn."
    return None


def validate(application: Application) -> dict[str, str]:
    """Field name -> Vietnamese message, for every field in error (empty when all is well)."""
    errors: dict[str, str] = {}
    if not application.applicant_name:
        errors["applicant_name"] = (
            "Nhập họ và tên người nộp."
            if application.is_person
            else "Nhập tên tổ chức, doanh nghiệp."
        )
    elif len(application.applicant_name) > MAX_NAME:
        errors["applicant_name"] = f"Tên dài quá {MAX_NAME} ký tự."
    identifier_check = citizen_id_error if application.is_person else tax_code_error
    if message := identifier_check(application.applicant_identifier):
        errors["applicant_identifier"] = message
    if len(application.applicant_address) > MAX_ADDRESS:
        errors["applicant_address"] = f"Địa chỉ dài quá {MAX_ADDRESS} ký tự."
    if application.contact_email and (message := email_error(application.contact_email)):
        errors["contact_email"] = message
    if application.contact_phone and (message := phone_error(application.contact_phone)):
        errors["contact_phone"] = message
    if not application.contact_email and not application.contact_phone:
        errors["contact_email"] = "Nhập ít nhất email hoặc số điện thoại để nhận thông báo."
    if len(application.form_request) > MAX_REQUEST_TEXT:
        errors["form_request"] = f"Nội dung dài quá {MAX_REQUEST_TEXT} ký tự."
    return errors


# --- files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChosenFile:
    """A file the citizen chose for a document: its name and size (the content stays in flight)."""

    document_code: str
    file_name: str
    size_bytes: int


def document_field(code: str) -> str:
    """The form field (and element id) of a document's upload."""
    return f"document_{code}"


def extension_of(file_name: str) -> str:
    _, dot, extension = file_name.rpartition(".")
    extension = extension.lower() if dot else ""
    return {"jpeg": "jpg", "jpe": "jpg", "jfif": "jpg", "tif": "tiff"}.get(extension, extension)


def check_files(
    procedure: Procedure, files: Sequence[ChosenFile], *, max_file_bytes: int, max_total_bytes: int
) -> dict[str, str]:
    """Field name -> message for each document whose file is missing, of a type the document does
    not accept (by its name: intake checks the content), empty or too large."""
    errors: dict[str, str] = {}
    chosen = {f.document_code: f for f in files}
    for document in procedure.documents:
        field = document_field(document.code)
        upload = chosen.get(document.code)
        if upload is None:
            if document.mandatory:
                errors[field] = f"Chọn tệp cho giấy tờ bắt buộc: {document.name}."
            continue
        if message := file_error(document, upload, max_file_bytes):
            errors[field] = message
    total = sum(f.size_bytes for f in files)
    if total > max_total_bytes and not errors:
        errors["documents"] = (
            f"Tổng dung lượng các tệp là {size_text(total)}, vượt giới hạn "
            f"{size_text(max_total_bytes)} của một hồ sơ."
        )
    return errors


def file_error(document: RequiredDocument, upload: ChosenFile, max_file_bytes: int) -> str | None:
    accepted = [extension_of(f".{f}") for f in document.formats]
    if extension_of(upload.file_name) not in accepted:
        return (
            f"Tệp “{upload.file_name}” không đúng định dạng. Giấy tờ này nhận: "
            f"{formats_text(document.formats)}."
        )
    if upload.size_bytes == 0:
        return f"Tệp “{upload.file_name}” rỗng. Vui lòng chọn lại tệp."
    if upload.size_bytes > max_file_bytes:
        return (
            f"Tệp “{upload.file_name}” có dung lượng {size_text(upload.size_bytes)}, vượt giới "
            f"hạn {size_text(max_file_bytes)}."
        )
    return None


# --- intake's refusals ------------------------------------------------------------------------

_FIELD_OF_LOCATION = {
    ("applicant", "kind"): "applicant_kind",
    ("applicant", "name"): "applicant_name",
    ("applicant", "identifier"): "applicant_identifier",
    ("applicant", "address"): "applicant_address",
    ("contact", "email"): "contact_email",
    ("contact", "phone"): "contact_phone",
    ("contact",): "contact_email",
    ("form",): "form_request",
}


def vietnamese_part(message: str) -> str:
    """Intake's messages are Vietnamese first, English in a final parenthesis: keep the first.

    `Value error, Số CCCD phải gồm 12 chữ số (citizen ID must be 12 digits)` ->
    `Số CCCD phải gồm 12 chữ số.`
    """
    text = message.removeprefix("Value error, ").strip()
    if text.endswith(")") and (start := text.rfind(" (")) > 0:
        inside = text[start + 2 : -1]
        if inside.isascii():
            text = text[:start].rstrip()
    if text and text[-1] not in ".!?":
        text += "."
    return text


def field_errors_from_intake(problem: Mapping[str, Any]) -> dict[str, str]:
    """Intake's 422 on the dossier part (`errors[].location` like `["dossier", "applicant",
    "identifier"]`) or on a file (`document_type`, `missing`) as field -> message."""
    errors: dict[str, str] = {}
    for error in problem.get("errors") or []:
        location = tuple(str(part) for part in error.get("location", ()) if part != "dossier")
        field = _FIELD_OF_LOCATION.get(location[:2]) or _FIELD_OF_LOCATION.get(location[:1])
        if field and field not in errors:
            errors[field] = vietnamese_part(str(error.get("message", "")))
    for code in problem.get("missing") or []:
        errors.setdefault(document_field(str(code)), "Chọn tệp cho giấy tờ bắt buộc này.")
    if document := problem.get("document_type"):
        errors.setdefault(
            document_field(str(document)), vietnamese_part(str(problem.get("detail", "")))
        )
    return errors
