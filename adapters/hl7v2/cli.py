"""``ivz hl7 ...``: ingest files, send over MLLP, list and replay failures, purge, listen,
and the outbound outbox (``ivz hl7 outbox``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from adapters.hl7v2.ack import (
    ACCEPT,
    COMMIT_ACCEPT,
    AckReply,
    application_ack_wanted,
    is_original_mode,
    read_ack,
)
from adapters.hl7v2.inbox import IntakeSettings
from adapters.hl7v2.parse import read_header, split_messages
from adapters.hl7v2.types import V2Error
from adapters.mllp import MLLPClient
from fhir_server.logging import configure as configure_logging
from fhir_server.service.hl7_outbox import DELIVERED, Hl7OutboxService, OutboxRow
from fhir_server.service.hl7_outbox import STATUSES as OUTBOX_STATUSES
from fhir_server.service.messages import RETAINED_BY_DEFAULT, MessageService, Status
from fhir_server.settings import get_settings
from fhir_server.storage import migrate
from fhir_server.storage.database import Database

app = typer.Typer(
    help="HL7 v2: intake (files, MLLP, failed messages) and the outbound outbox.",
    no_args_is_help=True,
)
console = Console()

#: Seconds to wait for an application ACK that MSH-16 (ER/SU) makes conditional.
_CONDITIONAL_WAIT = 2.0

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url", help="SQLAlchemy URL (default: IVZ_DATABASE_URL or sqlite:///./ivz.db)"
    ),
]
Files = Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)]


def _database(url: str | None) -> Database:
    db = Database(url or get_settings().database_url)
    migrate.upgrade(db)
    return db


def _quiet() -> None:
    """Per-message log lines would tear the progress bar apart."""
    configure_logging("WARNING", get_settings().log_json)


def _messages(files: list[Path]) -> list[tuple[Path, bytes]]:
    found: list[tuple[Path, bytes]] = []
    for path in files:
        data = path.read_bytes()
        try:
            parts = split_messages(data)
        except V2Error:
            parts = [data]  # the intake rejects it with a proper error
        found.extend((path, part) for part in parts or [data])
    return found


@app.command()
def ingest(files: Files, database_url: DatabaseUrl = None) -> None:
    """Store and process every message of FILES (multi-message files and batches too).

    Exits 1 when any message was not accepted (AE/AR), so scripts notice.
    """
    from adapters.hl7v2.listener import Intake

    _quiet()
    db = _database(database_url)
    intake = Intake.open(db)
    messages = _messages(files)
    tally: Counter[str] = Counter()
    problems: list[tuple[Path, str, str]] = []
    try:
        with Progress(
            TextColumn("[bold]ingest"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("ingest", total=len(messages))
            for path, raw in messages:
                outcome = intake.ingest(raw, "file")
                tally[outcome.code] += 1
                tally["duplicate"] += outcome.duplicate
                if outcome.error is not None:
                    problems.append((path, outcome.code, outcome.error.message))
                progress.advance(task)
    finally:
        intake.close()
        db.dispose()
    table = Table(title=f"{len(messages)} messages from {len(files)} files")
    for column in ("accepted (AA)", "failed (AE)", "rejected (AR)", "resends"):
        table.add_column(column, justify="right")
    table.add_row(*(str(tally[k]) for k in ("AA", "AE", "AR", "duplicate")))
    console.print(table)
    for path, code, message in problems[:50]:
        console.print(f"[red]{code}[/red] {escape(path.name)}: {escape(message)}", soft_wrap=True)
    if problems:
        raise typer.Exit(1)


async def _send_one(client: MLLPClient, raw: bytes, timeout: float) -> tuple[bool, str]:
    """Send one message and read the ACKs it asks for; ok and what to print."""
    header = read_header(raw)
    await client.send(raw, timeout)
    reply = read_ack(await client.receive(timeout))
    if reply.code != COMMIT_ACCEPT or is_original_mode(header):
        return _judge(header.control_id, reply)
    condition = header.application_ack_type.strip().upper()
    if application_ack_wanted(header, ACCEPT) and condition != "SU":
        return _judge(header.control_id, read_ack(await client.receive(timeout)))
    if condition in ("ER", "SU"):  # an application ACK comes only on error (or success)
        try:
            return _judge(header.control_id, read_ack(await client.receive(_CONDITIONAL_WAIT)))
        except TimeoutError:
            if condition == "SU":
                return False, "CA, but no application ACK (MSH-16 SU: failures are silent)"
    return _judge(header.control_id, reply)


def _judge(control_id: str, reply: AckReply) -> tuple[bool, str]:
    detail = "; ".join(reply.errors)
    if reply.acknowledged_id != control_id:
        return False, f"MSA-2 '{reply.acknowledged_id}' does not match MSH-10 '{control_id}'"
    return reply.ok, f"{reply.code}{': ' + detail if detail else ''}"


async def _send_all(
    messages: list[tuple[Path, bytes]], host: str, port: int, timeout: float
) -> int:
    bad = 0
    async with await MLLPClient.connect(host, port, timeout) as client:
        for path, raw in messages:
            try:
                ok, text = await _send_one(client, raw, timeout)
            except (V2Error, ValueError, TimeoutError, ConnectionError) as exc:
                ok, text = False, f"{type(exc).__name__}: {exc}"
            bad += not ok
            colour = "green" if ok else "red"
            console.print(
                f"[{colour}]{escape(text)}[/{colour}] {escape(path.name)}", soft_wrap=True
            )
    return bad


@app.command()
def send(
    files: Files,
    host: Annotated[str, typer.Option(help="MLLP host")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="MLLP port")] = 2575,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each ACK")] = 30.0,
) -> None:
    """Send every message of FILES over MLLP; exit 1 on AE/AR or a wrong MSA-2."""
    bad = asyncio.run(_send_all(_messages(files), host, port, timeout))
    if bad:
        console.print(f"[red]{bad} message(s) not accepted[/red]")
        raise typer.Exit(1)


@app.command()
def failed(
    database_url: DatabaseUrl = None,
    limit: Annotated[int, typer.Option(help="At most this many")] = 100,
) -> None:
    """List failed messages with their errors (tab-separated when piped; replay them by id)."""
    db = _database(database_url)
    try:
        rows = MessageService(db).by_status(Status.FAILED, limit)
    finally:
        db.dispose()
    columns = ("id", "received", "sender", "MSH-10", "type", "tries", "error")
    lines = [
        (
            str(m.id),
            m.received_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{m.sending_application}@{m.sending_facility}",
            m.control_id or "",
            f"{m.message_type}^{m.trigger_event}",
            str(m.attempts),
            (m.error or "").replace("\t", " ")[:300],
        )
        for m in rows
    ]
    if not console.is_terminal:
        for line in lines:
            typer.echo("\t".join(line))
        return
    table = Table(title=f"{len(rows)} failed message(s)")
    for column in columns:
        table.add_column(column, overflow="fold")
    for line in lines:
        table.add_row(*(escape(cell) for cell in line))
    console.print(table)


@app.command()
def replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Message ids")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Every failed message")] = False,
    stuck: Annotated[
        bool, typer.Option("--stuck", help="Messages a crash left unprocessed (lease expired)")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Process stored messages again, e.g. after a mapping fix; exit 1 if any still fails."""
    from adapters.hl7v2.listener import Intake

    if not ids and not all_failed and not stuck:
        raise typer.BadParameter("give message ids, --all-failed or --stuck")
    _quiet()
    db = _database(database_url)
    intake = Intake.open(db)
    try:
        chosen = list(ids or [])
        chosen += intake.messages.ids(Status.FAILED) if all_failed else []
        chosen += intake.messages.abandoned() if stuck else []
        results = intake.worker.replay(dict.fromkeys(chosen))
    finally:
        intake.close()
        db.dispose()
    bad = 0
    for message_id, outcome in results:
        if outcome is None:
            bad += 1
            console.print(f"[red]{message_id}: unknown or being processed[/red]")
        elif outcome.error is not None:
            bad += 1
            problem = escape(outcome.error.message)
            console.print(f"[red]{message_id}: {outcome.code} {problem}[/red]", soft_wrap=True)
        else:
            console.print(f"[green]{message_id}: {outcome.code}[/green]")
    console.print(f"replayed {len(results)}, {len(results) - bad} processed")
    if bad:
        raise typer.Exit(1)


@app.command()
def purge(
    days: Annotated[
        int | None, typer.Option(help="Older than this (default IVZ_HL7_RETENTION_DAYS)")
    ] = None,
    include_failed: Annotated[
        bool, typer.Option("--include-failed", help="Failed messages too")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete processed and rejected messages past the retention period."""
    keep = IntakeSettings().retention_days if days is None else days
    if keep < 0:
        raise typer.BadParameter("days must not be negative")
    statuses = (*RETAINED_BY_DEFAULT, Status.FAILED) if include_failed else RETAINED_BY_DEFAULT
    db = _database(database_url)
    try:
        gone = MessageService(db).purge(timedelta(days=keep), statuses)
    finally:
        db.dispose()
    console.print(f"purged {gone} message(s) older than {keep} day(s)")


@app.command()
def outbox(
    retry: Annotated[
        int | None, typer.Option("--retry", help="Send this failed or cancelled row again")
    ] = None,
    show: Annotated[int | None, typer.Option("--show", help="Print this row's message")] = None,
    status: Annotated[
        str | None, typer.Option(help="Only rows in this state (pending, delivered, ...)")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows")] = 100,
    database_url: DatabaseUrl = None,
) -> None:
    """Outbound HL7 v2 messages (docs/hl7v2-outbound.md): list them, show one, retry one."""
    if status is not None and status not in OUTBOX_STATUSES:
        raise typer.BadParameter(f"status must be one of {', '.join(OUTBOX_STATUSES)}")
    db = _database(database_url)
    service = Hl7OutboxService(db)
    try:
        if retry is not None:
            before = service.retry(retry)
            if before is None:
                console.print(f"[red]no outbox row {retry}[/red]")
                raise typer.Exit(1)
            if before.status == DELIVERED:
                console.print(f"[red]row {retry} was delivered already; not sent again[/red]")
                raise typer.Exit(1)
            if service.superseded(before):
                console.print(
                    f"[red]row {retry} is superseded by a later version of "
                    f"{before.res_type}/{before.res_id}; not sent again[/red]"
                )
                raise typer.Exit(1)
            console.print(f"row {retry}: {before.status} -> pending (due now)")
            return
        if show is not None:
            row = service.get(show)
            if row is None:
                console.print(f"[red]no outbox row {show}[/red]")
                raise typer.Exit(1)
            typer.echo(row.message.decode("utf-8", errors="replace").replace("\r", "\n"), nl=False)
            return
        rows, counts = service.overview(status, limit=limit)
    finally:
        db.dispose()
    _print_outbox(rows, counts)


def _print_outbox(rows: list[OutboxRow], counts: dict[str, int]) -> None:
    columns = ("id", "status", "created", "resource", "endpoint", "MSH-10", "tries", "ack", "error")
    lines = [
        (
            str(r.id),
            r.status,
            r.created.strftime("%Y-%m-%d %H:%M:%S"),
            f"{r.res_type}/{r.res_id}/_history/{r.version_id}",
            f"{r.endpoint_id} {r.address}",
            r.control_id,
            str(r.attempts),
            r.ack_code or "",
            (r.last_error or "").replace("\t", " ")[:300],
        )
        for r in rows
    ]
    if not console.is_terminal:
        for line in lines:
            typer.echo("\t".join(line))
        return
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "empty"
    table = Table(title=f"HL7 v2 outbox: {summary}")
    for column in columns:
        table.add_column(column, overflow="fold")
    for line in lines:
        table.add_row(*(escape(cell) for cell in line))
    console.print(table)


@app.command()
def mllp(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="MLLP port")] = 2575,
    database_url: DatabaseUrl = None,
    reuse_port: Annotated[
        bool, typer.Option("--reuse-port", help="Share the port with other processes")
    ] = False,
) -> None:
    """Run the MLLP listener in the foreground (store, process, acknowledge)."""
    from adapters.hl7v2.listener import serve_mllp

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    db = _database(database_url)
    try:
        asyncio.run(serve_mllp(host, port, db, reuse_port=reuse_port))
    except KeyboardInterrupt:
        pass
    finally:
        db.dispose()


if __name__ == "__main__":  # pragma: no cover
    app()
