"""``POST /ingest/insurer``: the adapter's routes in a small Starlette app (httpx ASGI
transport), and through ``ivz serve`` once the integrator has mounted them."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from adapters.insurer.http import routes
from fhir_server.service.resources import ResourceService
from tests.adapters.insurer.helpers import Fresh, sample
from tests.conftest import LiveServer


def _post(service: ResourceService, **kwargs: Any) -> httpx.Response:
    app = Starlette(routes=routes())
    app.state.service = service

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/ingest/insurer", **kwargs)

    return asyncio.run(send())


def test_csv_body_answers_with_the_report(service: ResourceService) -> None:
    data = Fresh()(sample("tk.csv"))
    r = _post(service, params={"layout": "tk"}, content=data, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["rows"], body["imported"], body["rejected"], body["format"]) == (4, 4, 0, "csv")


def test_json_body_is_read_as_a_json_array(service: ResourceService) -> None:
    data = Fresh()(sample("tk.json"))
    headers = {"Content-Type": "application/json"}
    r = _post(service, params={"layout": "tk"}, content=data, headers=headers)
    assert r.status_code == 200, r.text
    assert (r.json()["format"], r.json()["imported"]) == ("json", 4)


def test_ndjson_body_is_read_as_json_lines(service: ResourceService) -> None:
    data = Fresh()(sample("tk.jsonl"))
    headers = {"Content-Type": "application/x-ndjson"}
    r = _post(service, params={"layout": "tk"}, content=data, headers=headers)
    assert (r.status_code, r.json()["format"], r.json()["imported"]) == (200, "jsonl", 4)


def test_multipart_upload_of_a_windows_1252_file(service: ResourceService) -> None:
    data = Fresh()(sample("tk_windows1252.csv"), "cp1252")
    files = {"file": ("export.csv", data, "text/csv")}
    r = _post(service, params={"layout": "tk"}, files=files)
    assert r.status_code == 200, r.text
    assert (r.json()["encoding"], r.json()["imported"]) == ("cp1252", 4)


def test_charset_parameter_chooses_the_encoding(service: ResourceService) -> None:
    data = Fresh()(sample("aok.csv"), "iso-8859-15")
    headers = {"Content-Type": "text/csv; charset=iso-8859-15"}
    r = _post(service, params={"layout": "aok"}, content=data, headers=headers)
    assert (r.status_code, r.json()["encoding"]) == (200, "iso-8859-15")


def test_bad_rows_come_back_in_the_report(service: ResourceService) -> None:
    data = Fresh(kvnrs=False)(sample("tk_errors.csv"))
    r = _post(service, params={"layout": "tk"}, content=data, headers={"Content-Type": "text/csv"})
    body = r.json()
    assert (r.status_code, body["rejected"]) == (200, 8)
    assert body["errors"][0]["field"] == "KVNR" and body["errors"][0]["row"] == 2


def test_missing_layout_is_a_400(service: ResourceService) -> None:
    r = _post(service, content=b"x", headers={"Content-Type": "text/csv"})
    assert r.status_code == 400 and "layout" in r.json()["error"]


def test_unknown_layout_is_a_400(service: ResourceService) -> None:
    r = _post(
        service, params={"layout": "nope"}, content=b"x", headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == 400 and "no layout 'nope'" in r.json()["error"]


def test_layout_given_as_a_path_is_refused(service: ResourceService) -> None:
    params = {"layout": "/work/main/mappings/insurer/tk.yaml"}
    r = _post(service, params=params, content=b"x", headers={"Content-Type": "text/csv"})
    assert r.status_code == 400 and "is not a layout name" in r.json()["error"]


def test_unsupported_media_type_is_a_415(service: ResourceService) -> None:
    headers = {"Content-Type": "application/pdf"}
    r = _post(service, params={"layout": "tk"}, content=b"%PDF", headers=headers)
    assert r.status_code == 415


def test_file_of_another_layout_is_a_422(service: ResourceService) -> None:
    headers = {"Content-Type": "text/csv"}
    r = _post(service, params={"layout": "tk"}, content=sample("aok.csv"), headers=headers)
    assert r.status_code == 422 and "lacks the columns" in r.json()["error"]


def test_multipart_without_file_part_is_a_400(service: ResourceService) -> None:
    r = _post(service, params={"layout": "tk"}, data={"other": "x"}, files={"x": ("a", b"b")})
    assert r.status_code == 400 and "'file'" in r.json()["error"]


def test_live_server_accepts_an_export_once_the_routes_are_mounted(server: LiveServer) -> None:
    url = f"http://127.0.0.1:{server.port}/ingest/insurer"
    data = Fresh()(sample("tk.csv"))
    r = httpx.post(url, params={"layout": "tk"}, content=data, headers={"Content-Type": "text/csv"})
    if r.status_code in (404, 405):
        pytest.skip("adapters.insurer.http.routes() is not mounted in create_app yet")
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 4
