"""An insurer client imports its own members only; other restricted kinds import nothing."""

from __future__ import annotations

from tests.access.conftest import IK_A, IK_B, World
from tests.adapters.insurer.helpers import fresh, sample

CSV = {"Content-Type": "text/csv; charset=utf-8"}


def _export() -> bytes:
    """The TK sample (insurer A), its second row moved to insurer B."""
    lines = fresh(sample("tk.csv")).decode("utf-8").splitlines()
    lines[2] = lines[2].replace(f";{IK_A};", f";{IK_B};", 1)
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def test_rows_of_another_insurer_are_row_errors(world: World) -> None:
    with world.client("insurer-a") as http:
        response = http.post(
            "/../ingest/insurer", params={"layout": "tk"}, content=_export(), headers=CSV
        )
    assert response.status_code == 200, response.text
    report = response.json()
    foreign = [e for e in report["errors"] if e["field"] == "IK_Kasse"]
    assert [e["row"] for e in foreign] == [2]
    assert IK_A in foreign[0]["reason"]
    assert report["imported"] >= 1 and report["rejected"] >= 1


def test_a_team_may_not_import_exports(world: World) -> None:
    with world.client("team-01") as http:
        response = http.post(
            "/../ingest/insurer", params={"layout": "tk"}, content=_export(), headers=CSV
        )
    assert response.status_code == 403
