import pytest
from pydantic import BaseModel, ValidationError
from stdnum.vn import mst

from services.intake.domain.applicants import (
    PROVINCE_CODES,
    Applicant,
    CitizenId,
    ContactInput,
    mask_identifier,
    normalise_phone,
    parse_citizen_id,
    validate_citizen_id,
    validate_email,
    validate_tax_code,
)
from shared.contracts.events import ApplicantKind


def tax_code(first_nine: str) -> str:
    """A tax code with the right check digit (asserting the prefix has one: some do not)."""
    digit = mst.calc_check_digit(first_nine)
    assert len(digit) == 1, f"{first_nine} has no valid check digit"
    return first_nine + digit


# --- citizen ID ---


def test_the_province_list_is_the_63_provinces() -> None:
    assert len(PROVINCE_CODES) == 63
    assert PROVINCE_CODES["001"] == "Hà Nội"
    assert PROVINCE_CODES["079"] == "Hồ Chí Minh"
    assert PROVINCE_CODES["096"] == "Cà Mau"


@pytest.mark.parametrize("value", ["001099012345", "079301000001", "096 185 123 456"])
def test_valid_citizen_ids_are_accepted_without_separators(value: str) -> None:
    assert validate_citizen_id(value) == value.replace(" ", "")


def test_the_century_and_sex_digit_is_decoded() -> None:
    man_1999 = parse_citizen_id("001099012345")
    assert (man_1999.province_name, man_1999.female, man_1999.birth_year) == ("Hà Nội", False, 1999)
    woman_2001 = parse_citizen_id("079301000001")
    assert (woman_2001.female, woman_2001.birth_year) == (True, 2001)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("003099012345", "Mã tỉnh 003"),  # 003 is not a province code
        ("097099012345", "Mã tỉnh 097"),
        ("00109901234", "12 chữ số"),
        ("0010990123456", "12 chữ số"),
        ("00109901234A", "chỉ được gồm chữ số"),
        ("", "12 chữ số"),
        ("００１０９９０１２３４５", "chỉ được gồm chữ số"),  # full-width digits
    ],
)
def test_malformed_citizen_ids_are_refused_with_a_vietnamese_message(
    value: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        validate_citizen_id(value)


def test_citizen_id_works_as_a_pydantic_field() -> None:
    class Form(BaseModel):
        cccd: CitizenId

    assert Form(cccd="001099012345").cccd == "001099012345"
    with pytest.raises(ValidationError, match="Số CCCD phải gồm 12 chữ số"):
        Form(cccd="123")


# --- tax code ---


def test_a_ten_digit_tax_code_with_its_check_digit_is_accepted() -> None:
    assert validate_tax_code("0100233488") == "0100233488"  # stdnum's documented example
    code = tax_code("010010969")
    assert validate_tax_code(code) == code


def test_a_wrong_check_digit_is_refused() -> None:
    code = tax_code("010010969")
    wrong = code[:9] + str((int(code[9]) + 1) % 10)
    with pytest.raises(ValueError, match="sai chữ số kiểm tra"):
        validate_tax_code(wrong)


@pytest.mark.parametrize("branch", ["0314409058-002", "0314409058002", " 0314409058 - 002 "])
def test_a_branch_code_is_accepted_with_or_without_dash_and_shown_dashed(branch: str) -> None:
    assert validate_tax_code(branch) == "0314409058-002"


@pytest.mark.parametrize("value", ["12345", "010023348", "01002334881", "0100233488-00"])
def test_tax_codes_of_the_wrong_length_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="10 chữ số"):
        validate_tax_code(value)


def test_a_tax_code_with_letters_is_refused() -> None:
    with pytest.raises(ValueError, match="chỉ được gồm chữ số"):
        validate_tax_code("01002334AB")


def test_branch_000_is_refused() -> None:
    with pytest.raises(ValueError, match="Mã số thuế"):
        validate_tax_code("0314409058-000")


# --- phone and email ---


@pytest.mark.parametrize(
    "value",
    [
        "0912345678",
        "+84912345678",
        "84912345678",
        "0912 345 678",
        "0912.345.678",
        "(+84) 912-345-678",
        "+84 0912345678",
        "0084912345678",
    ],
)
def test_mobile_numbers_are_normalised_to_e164(value: str) -> None:
    assert normalise_phone(value) == "+84912345678"


@pytest.mark.parametrize("prefix", ["03", "05", "07", "08", "09"])
def test_every_mobile_prefix_is_accepted(prefix: str) -> None:
    assert normalise_phone(prefix + "12345678") == "+84" + prefix[1] + "12345678"


@pytest.mark.parametrize(
    "value",
    [
        "0212345678",  # landline-style prefix
        "0112345678",
        "091234567",  # 9 digits
        "09123456789",  # 11 digits
        "+1 912345678",
        "0912abc678",
        "",
    ],
)
def test_invalid_phones_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="Số điện thoại di động không hợp lệ"):
        normalise_phone(value)


def test_email_domain_is_lower_cased_and_local_part_kept() -> None:
    assert validate_email("  Nguyen.Van.A@Example.GOV.VN ") == "Nguyen.Van.A@example.gov.vn"


@pytest.mark.parametrize("value", ["no-at-sign", "a@", "@example.vn", "a b@example.vn", "a@b"])
def test_invalid_emails_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="Địa chỉ email không hợp lệ"):
        validate_email(value)


def test_contact_needs_an_email_or_a_phone() -> None:
    assert ContactInput(phone="0912345678").phone == "+84912345678"
    assert ContactInput(email="a@example.vn").email == "a@example.vn"
    with pytest.raises(ValidationError, match="email hoặc số điện thoại"):
        ContactInput()
    with pytest.raises(ValidationError, match="email hoặc số điện thoại"):
        ContactInput(email="  ", phone="")


def test_contact_converts_to_the_event_record() -> None:
    record = ContactInput(email="a@example.vn", phone="0912 345 678").to_record()
    assert (record.email, record.phone) == ("a@example.vn", "+84912345678")


# --- applicant ---


def test_a_person_is_identified_by_a_citizen_id() -> None:
    applicant = Applicant(kind="person", name="  Nguyễn   Văn A ", identifier="001 099 012 345")
    assert applicant.kind is ApplicantKind.PERSON
    assert applicant.name == "Nguyễn Văn A"
    assert applicant.identifier == "001099012345"


def test_a_person_with_a_tax_code_is_refused_at_the_identifier_field() -> None:
    with pytest.raises(ValidationError) as caught:
        Applicant(kind="person", name="Nguyễn Văn A", identifier="0100233488")
    (error,) = caught.value.errors()
    assert error["loc"] == ("identifier",)
    assert "Số CCCD phải gồm 12 chữ số" in error["msg"]


def test_an_organisation_is_identified_by_a_tax_code_only() -> None:
    company = Applicant(kind="organisation", name="Công ty TNHH ABC", identifier="0314409058002")
    assert company.identifier == "0314409058-002"
    with pytest.raises(ValidationError, match="Mã số thuế"):
        Applicant(kind="organisation", name="Công ty TNHH ABC", identifier="001099012345")


def test_names_are_nfc_normalised_and_must_not_be_blank() -> None:
    decomposed = "Nguye\u0302\u0303n"  # "Nguyễn" as macOS sends it
    person = Applicant(kind="person", name=decomposed, identifier="001099012345")
    assert person.name == "Nguyễn"
    with pytest.raises(ValidationError, match="không được để trống"):
        Applicant(kind="person", name=" \t ", identifier="001099012345")
    with pytest.raises(ValidationError, match="300"):
        Applicant(kind="person", name="A" * 301, identifier="001099012345")


def test_an_unknown_kind_is_reported_once_on_kind() -> None:
    with pytest.raises(ValidationError) as caught:
        Applicant(kind="robot", name="X", identifier="anything")
    assert [error["loc"] for error in caught.value.errors()] == [("kind",)]


def test_applicant_converts_to_the_event_record() -> None:
    record = Applicant(
        kind="person", name="Nguyễn Văn A", identifier="001099012345", address="Hà Nội"
    ).to_record()
    assert (record.kind, record.identifier) == (ApplicantKind.PERSON, "001099012345")


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("001099012345", "********2345"),
        ("0100233488", "******3488"),
        ("0314409058-002", "**********-002"),
        ("12345", "**345"),
        ("", ""),
        (None, ""),
    ],
)
def test_identifiers_are_masked_to_their_last_digits(value: str | None, masked: str) -> None:
    assert mask_identifier(value) == masked
