"""The cohort as the insurer would send it: a ``tk`` layout CSV (mappings/insurer/tk.yaml).

Writing the real export format (and reading it back through the adapter) is the point: the
demo exercises the same path as a production import, rather than writing resources directly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from fhir_server.demo.cohort import BERLIN, INSURER_IK, INSURER_NAME, Case

#: The 23 TK columns, in the export's order.
COLUMNS = [
    "Fallnummer",
    "Eingangsdatum",
    "KVNR",
    "IK_Kasse",
    "Kasse",
    "Nachname",
    "Vorname",
    "Geburtsdatum",
    "Geschlecht",
    "PLZ",
    "Ort",
    "Telefon",
    "EMail",
    "Diagnosen_ICD10GM",
    "OPS_Code",
    "OPS_Text",
    "Operateur_LANR",
    "Operateur_Name",
    "Klinik_IK",
    "Klinik_Name",
    "OP_Termin",
    "Einwilligung",
    "Bemerkung",
]


def _row(case: Case) -> list[str]:
    local = case.received.astimezone(BERLIN)
    return [
        case.number,
        local.strftime("%Y-%m-%d %H:%M"),
        case.kvnr,
        INSURER_IK,
        INSURER_NAME,
        case.family,
        case.given,
        case.birth_date.strftime("%d.%m.%Y"),
        case.sex,
        case.postal_code,
        case.city,
        case.phone,
        case.email,
        ";".join(case.diagnoses),
        case.ops,
        case.ops_text,
        case.surgeon_lanr,
        case.surgeon_name,
        case.hospital_ik,
        case.hospital_name,
        case.surgery_date.strftime("%d.%m.%Y"),
        case.consent,
        "Synthetischer Demofall",
    ]


def tk_csv(cases: Iterable[Case]) -> bytes:
    """UTF-8, ``;``-separated, CRLF, as the TK export arrives."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(_row(c) for c in cases)
    return out.getvalue().encode("utf-8")
