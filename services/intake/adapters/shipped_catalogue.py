"""The catalogue shipped with intake: the data files packaged in `services/intake/catalogue/`,
read and validated (`services.intake.domain.catalogue` parses them)."""

from __future__ import annotations

import csv
import json
from importlib import resources

from services.intake.domain.catalogue import (
    PROCEDURES_FILE,
    UNITS_FILE,
    Unit,
    parse_procedures,
    parse_units,
)
from shared.contracts.catalogue import Procedure

DATA_PACKAGE = "services.intake.catalogue"


def load_catalogue() -> tuple[list[Unit], list[Procedure]]:
    """The units and procedures shipped with the service, validated."""
    data = resources.files(DATA_PACKAGE)
    units = parse_units(csv.DictReader(data.joinpath(UNITS_FILE).read_text("utf-8").splitlines()))
    document = json.loads(data.joinpath(PROCEDURES_FILE).read_text("utf-8"))
    return units, parse_procedures(document["procedures"], units)
