"""Validation of the applicant's identity and contact details (pure; no I/O).

Citizen ID (CCCD) and tax code formats: DOMAIN.md §7. Both are basic personal data under
Decree 13/2023: never log them raw; show them through `mask_identifier`.

Each validator is a plain function raising `ValueError` with a Vietnamese-first message, wrapped as
a pydantic `Annotated` type so API models can use it as a field type.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Annotated

from email_validator import EmailNotValidError
from email_validator import validate_email as _validate_email
from pydantic import AfterValidator, BaseModel, ValidationInfo, field_validator, model_validator
from stdnum import exceptions as stdnum_errors
from stdnum.vn import mst

from shared.contracts.events import Applicant as ApplicantRecord
from shared.contracts.events import ApplicantKind
from shared.contracts.events import Contact as ContactRecord

# Province codes printed on citizen ID cards (Decree 137/2015, Circular 07/2016, annex): the
# 63 provinces before the 2025 merger. Cards already issued keep these codes, and the merged
# provinces reuse codes from this list, so it remains the set of valid prefixes.
PROVINCE_CODES: dict[str, str] = {
    "001": "Hà Nội",
    "002": "Hà Giang",
    "004": "Cao Bằng",
    "006": "Bắc Kạn",
    "008": "Tuyên Quang",
    "010": "Lào Cai",
    "011": "Điện Biên",
    "012": "Lai Châu",
    "014": "Sơn La",
    "015": "Yên Bái",
    "017": "Hòa Bình",
    "019": "Thái Nguyên",
    "020": "Lạng Sơn",
    "022": "Quảng Ninh",
    "024": "Bắc Giang",
    "025": "Phú Thọ",
    "026": "Vĩnh Phúc",
    "027": "Bắc Ninh",
    "030": "Hải Dương",
    "031": "Hải Phòng",
    "033": "Hưng Yên",
    "034": "Thái Bình",
    "035": "Hà Nam",
    "036": "Nam Định",
    "037": "Ninh Bình",
    "038": "Thanh Hóa",
    "040": "Nghệ An",
    "042": "Hà Tĩnh",
    "044": "Quảng Bình",
    "045": "Quảng Trị",
    "046": "Thừa Thiên Huế",
    "048": "Đà Nẵng",
    "049": "Quảng Nam",
    "051": "Quảng Ngãi",
    "052": "Bình Định",
    "054": "Phú Yên",
    "056": "Khánh Hòa",
    "058": "Ninh Thuận",
    "060": "Bình Thuận",
    "062": "Kon Tum",
    "064": "Gia Lai",
    "066": "Đắk Lắk",
    "067": "Đắk Nông",
    "068": "Lâm Đồng",
    "070": "Bình Phước",
    "072": "Tây Ninh",
    "074": "Bình Dương",
    "075": "Đồng Nai",
    "077": "Bà Rịa - Vũng Tàu",
    "079": "Hồ Chí Minh",
    "080": "Long An",
    "082": "Tiền Giang",
    "083": "Bến Tre",
    "084": "Trà Vinh",
    "086": "Vĩnh Long",
    "087": "Đồng Tháp",
    "089": "An Giang",
    "091": "Kiên Giang",
    "092": "Cần Thơ",
    "093": "Hậu Giang",
    "094": "Sóc Trăng",
    "095": "Bạc Liêu",
    "096": "Cà Mau",
}

# Separators people type inside numbers; removed before validation.
_SEPARATORS = re.compile(r"[\s.\-()]")


# --- Citizen ID (CCCD) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CitizenIdParts:
    """What a valid citizen ID encodes."""

    province_code: str
    province_name: str
    female: bool
    birth_year: int
    serial: str


def parse_citizen_id(value: str) -> CitizenIdParts:
    """Split a citizen ID into its parts; `ValueError` (Vietnamese first) if it is not valid.

    Digit 4 encodes century and sex: 0/1 = 1900s male/female, 2/3 = 2000s, 4/5 = 2100s, …
    """
    number = _SEPARATORS.sub("", value)
    if number and not (number.isascii() and number.isdigit()):
        raise ValueError("Số CCCD chỉ được gồm chữ số (citizen ID must contain digits only)")
    if len(number) != 12:
        raise ValueError("Số CCCD phải gồm 12 chữ số (citizen ID must be 12 digits)")
    province = number[:3]
    if province not in PROVINCE_CODES:
        raise ValueError(
            f"Mã tỉnh {province} trong số CCCD không tồn tại "
            f"(unknown province code {province} in citizen ID)"
        )
    century_and_sex = int(number[3])
    return CitizenIdParts(
        province_code=province,
        province_name=PROVINCE_CODES[province],
        female=century_and_sex % 2 == 1,
        birth_year=1900 + (century_and_sex // 2) * 100 + int(number[4:6]),
        serial=number[6:],
    )


def validate_citizen_id(value: str) -> str:
    """The 12 digits of a valid citizen ID (separators removed)."""
    parse_citizen_id(value)
    return _SEPARATORS.sub("", value)


CitizenId = Annotated[str, AfterValidator(validate_citizen_id)]


# --- Tax code (MST) ------------------------------------------------------------------------------


def validate_tax_code(value: str) -> str:
    """A valid tax code: `NNNNNNNNNN`, or `NNNNNNNNNN-NNN` for a branch (dash added if missing)."""
    try:
        number = mst.validate(value)
    except stdnum_errors.InvalidLength:
        raise ValueError(
            "Mã số thuế phải gồm 10 chữ số, hoặc 13 chữ số dạng NNNNNNNNNN-NNN cho chi nhánh "
            "(tax code must be 10 digits, or 13 as NNNNNNNNNN-NNN for a branch)"
        ) from None
    except stdnum_errors.InvalidFormat:
        raise ValueError(
            "Mã số thuế chỉ được gồm chữ số (tax code must contain digits only)"
        ) from None
    except stdnum_errors.InvalidChecksum:
        raise ValueError("Mã số thuế sai chữ số kiểm tra (tax code check digit is wrong)") from None
    except stdnum_errors.ValidationError:
        raise ValueError("Mã số thuế không hợp lệ (invalid tax code)") from None
    return mst.format(number)


TaxCode = Annotated[str, AfterValidator(validate_tax_code)]


# --- Phone -------------------------------------------------------------------------------------

_MOBILE = re.compile(r"^0[35789]\d{8}$")


def normalise_phone(value: str) -> str:
    """A Vietnamese mobile number in E.164 (`+84912345678`).

    Accepts `0912345678`, `+84912345678`, `84912345678`, `(+84) 912.345.678`; mobile numbers only
    (03x, 05x, 07x, 08x, 09x; 10 digits in the national form).
    """
    number = _SEPARATORS.sub("", value)
    for prefix in ("+84", "0084", "84"):
        # `84…` only in its 11-digit form: a 10-digit `084…` is not a mobile number anyway.
        if number.startswith(prefix) and (prefix != "84" or len(number) == 11):
            number = "0" + number[len(prefix) :].removeprefix("0")  # `+84 0912…` is common
            break
    if not number.isascii() or not _MOBILE.match(number):
        raise ValueError(
            "Số điện thoại di động không hợp lệ; cần 10 chữ số, bắt đầu bằng 03, 05, 07, 08 "
            "hoặc 09 (invalid Vietnamese mobile number)"
        )
    return "+84" + number[1:]


VietnamesePhone = Annotated[str, AfterValidator(normalise_phone)]


# --- Email -------------------------------------------------------------------------------------


def validate_email(value: str) -> str:
    """A syntactically valid address with its domain lower-cased; no DNS look-up (pure)."""
    try:
        result = _validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        raise ValueError("Địa chỉ email không hợp lệ (invalid email address)") from None
    return f"{result.local_part}@{result.domain.lower()}"


Email = Annotated[str, AfterValidator(validate_email)]


# --- Names -------------------------------------------------------------------------------------


def clean_text(value: str) -> str:
    """NFC-normalised (browsers on macOS send decomposed Vietnamese), control and format
    characters turned into spaces, runs of whitespace collapsed, stripped."""
    value = unicodedata.normalize("NFC", value)
    value = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in value)
    return " ".join(value.split())


def validate_name(value: str) -> str:
    """A person's or organisation's name: cleaned by `clean_text`, 1–300 characters."""
    value = clean_text(value)
    if not value:
        raise ValueError("Tên người nộp không được để trống (name is required)")
    if len(value) > 300:
        raise ValueError("Tên người nộp dài quá 300 ký tự (name longer than 300 characters)")
    return value


def validate_address(value: str) -> str:
    value = clean_text(value)
    if len(value) > 500:
        raise ValueError("Địa chỉ dài quá 500 ký tự (address longer than 500 characters)")
    return value


Name = Annotated[str, AfterValidator(validate_name)]
Address = Annotated[str, AfterValidator(validate_address)]


# --- Models ------------------------------------------------------------------------------------


class Applicant(BaseModel):
    """The applicant as entered on a submission; `identifier` is validated by `kind`."""

    kind: ApplicantKind
    name: Name
    identifier: str
    address: Address | None = None

    # A field validator (not a model validator) so that an error points at `identifier`.
    @field_validator("identifier")
    @classmethod
    def _identifier_matches_kind(cls, value: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        if kind == ApplicantKind.PERSON:
            return validate_citizen_id(value)
        if kind == ApplicantKind.ORGANISATION:
            return validate_tax_code(value)
        return value  # `kind` itself is invalid and already reported

    def to_record(self) -> ApplicantRecord:
        """The applicant as carried by `DossierSubmitted` (internal topics only)."""
        return ApplicantRecord(kind=self.kind, name=self.name, identifier=self.identifier)


class ContactInput(BaseModel):
    """How to reach the applicant: an email, a mobile phone, or both."""

    email: Email | None = None
    phone: VietnamesePhone | None = None

    @field_validator("email", "phone", mode="before")
    @classmethod
    def _blank_is_missing(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _at_least_one(self) -> ContactInput:
        if self.email is None and self.phone is None:
            raise ValueError(
                "Cần ít nhất email hoặc số điện thoại để liên hệ (email or phone is required)"
            )
        return self

    def to_record(self) -> ContactRecord:
        return ContactRecord(email=self.email, phone=self.phone)


def mask_identifier(value: str | None) -> str:
    """`012345678901` -> `********8901`, `0100233488-001` -> `**********-001`: for display.

    Keeps the last 4 characters of a citizen ID or 10-digit tax code, the branch suffix of a
    13-digit one, the last 3 of anything shorter.
    """
    if not value:
        return ""
    keep = 4 if len(value) >= 10 else 3
    if "-" in value:
        keep = len(value) - value.rindex("-")
    if len(value) <= keep:
        return "*" * len(value)
    return "*" * (len(value) - keep) + value[-keep:]
