"""Reading the selected instructions: one SQL query, streamed, in a fixed order (image id, instruction id).

On PostgreSQL the rows come through `COPY (SELECT …) TO STDOUT` read by psycopg's `cursor.copy()`, one
CopyData message per row, split on tabs here. Measured on 100k rows (bench/export.py's data): text COPY
+ split costs what the bare COPY floor costs (0.18 s vs 0.21–0.27 s), binary COPY through
`copy.rows()` 0.32 s, a named cursor with fetchmany 0.33 s — the per-row generator layers of rows()
cost more than splitting a line. Numbers come back as strings on this path; the build only formats and
compares them. Elsewhere (SQLite) a plain cursor is read in chunks. Either way nothing holds more than
one row or chunk, and the caller runs it inside its snapshot transaction.
"""

import datetime
import re
from collections.abc import Iterator
from typing import NamedTuple

from django.db import connection

from .specs import Selection

# The columns of one row, in order. `options` is JSON text (parsed only when not "[]").
COLUMNS = (
    "instruction_id",
    "version",
    "type",
    "question",
    "options",
    "answer",
    "image_id",
    "sha256",
    "file",
    "domain",
)
# COPY's text format escapes these (and nothing else: no NULLs are selected).
_UNESCAPE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_ESCAPE_RE = re.compile(r"\\(.)")


class Row(NamedTuple):
    instruction_id: int
    version: int
    type: str
    question: str
    options: str
    answer: str
    image_id: int
    sha256: str
    file: str
    domain: str


def _where(selection: Selection) -> tuple[str, list]:
    clauses: list[str] = []
    params: list = []

    def among(column: str, values: tuple) -> None:
        # IN with one placeholder per value: with a single status PostgreSQL plans it as equality and
        # reads the (status, image_id, id) index in order — no sort.
        clauses.append(f"{column} IN ({', '.join(['%s'] * len(values))})")
        params.extend(values)

    among("i.status", selection.statuses)
    if selection.domains:
        among("d.slug", selection.domains)
    if selection.types:
        among("i.type", selection.types)
    if selection.models:
        among("i.model_name", selection.models)
    if selection.date_from:
        clauses.append("i.created_at >= %s")
        params.append(datetime.datetime.combine(selection.date_from, datetime.time(), tzinfo=datetime.UTC))
    if selection.date_to:
        clauses.append("i.created_at < %s")
        end = selection.date_to + datetime.timedelta(days=1)
        params.append(datetime.datetime.combine(end, datetime.time(), tzinfo=datetime.UTC))
    return " AND ".join(clauses), params


_FROM = (
    "FROM corpus_instruction i "
    "JOIN corpus_image im ON im.id = i.image_id "
    "JOIN corpus_domain d ON d.id = im.domain_id "
)


def select_sql(selection: Selection, *, vendor: str | None = None) -> tuple[str, list]:
    """The export's SELECT (with %s placeholders) and its parameters. The benchmark's COPY floor runs
    exactly this statement."""
    vendor = vendor or connection.vendor
    options = "i.options::text" if vendor == "postgresql" else "i.options"
    where, params = _where(selection)
    sql = (
        f"SELECT i.id, i.version, i.type, i.question, {options}, i.answer, "
        f"im.id, im.sha256, im.file, d.slug {_FROM}WHERE {where} ORDER BY i.image_id, i.id"
    )
    return sql, params


def count_rows(selection: Selection) -> int:
    """How many rows the SELECT yields (before the rule check). Joins only when a domain is chosen, so
    the usual count is an index-only scan of (status, image_id, id)."""
    where, params = _where(selection)
    joins = _FROM if selection.domains else "FROM corpus_instruction i "
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) {joins}WHERE {where}", params)
        return cursor.fetchone()[0]


def literal_sql(sql: str, params: list) -> str:
    """The statement with its parameters bound client-side (COPY takes no server-side parameters)."""
    from psycopg import ClientCursor

    connection.ensure_connection()
    return ClientCursor(connection.connection).mogrify(sql, params)


def iter_rows(selection: Selection, *, chunk_size: int = 2000) -> Iterator[tuple]:
    """Yield the selected rows as tuples in COLUMNS order, streamed. Call inside transaction.atomic()."""
    sql, params = select_sql(selection)
    if connection.vendor == "postgresql":
        yield from _iter_copy_text(literal_sql(sql, params))
        return
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while True:
            chunk = cursor.fetchmany(chunk_size)
            if not chunk:
                return
            yield from chunk


def _unescape_field(text: str) -> str:
    return _ESCAPE_RE.sub(lambda m: _UNESCAPE.get(m.group(1), m.group(1)), text) if "\\" in text else text


def _slow_lines(text: str) -> Iterator[list[str]]:
    for line in text[:-1].split("\n"):
        fields = line.split("\t")
        yield [_unescape_field(field) for field in fields] if "\\" in line else fields


def _iter_copy_text(query: str) -> Iterator[list[str]]:
    """Rows of `COPY (query) TO STDOUT`, read straight from libpq (psycopg's `pgconn`).

    psycopg's `Copy` iterator costs more per row than the server does (generator + wait layers per
    CopyData message: 0.43 s against 0.26 s for 100k rows, measured); a blocking `PQgetCopyData` loop
    does not. If the caller stops early, the COPY is cancelled and drained so the connection stays
    usable (the surrounding atomic block then rolls back)."""
    from psycopg import errors, pq

    connection.ensure_connection()
    conn = connection.connection
    pgconn = conn.pgconn
    pgconn.send_query(f"COPY ({query}) TO STDOUT".encode())
    result = pgconn.get_result()
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        message = pgconn.get_error_message() if hasattr(pgconn, "get_error_message") else pgconn.error_message
        while pgconn.get_result() is not None:
            pass
        raise errors.DatabaseError(f"export COPY did not start: {message!r}")
    get = pgconn.get_copy_data
    ncolumns = len(COLUMNS)
    finished = False
    try:
        while True:
            nbytes, data = get(0)  # blocks until PostgreSQL sends the next row
            if nbytes == -1:
                break
            if nbytes == -2:
                raise errors.DatabaseError(f"export COPY failed: {pgconn.error_message!r}")
            # One CopyData message = one row ending in a newline (tabs and newlines inside values are
            # escaped), so the usual message splits into exactly len(COLUMNS) fields, the last one
            # ending in the newline. Anything else (several rows in one message) takes the slow path.
            text = str(data, "utf-8")
            fields = text.split("\t")
            if len(fields) != ncolumns or "\\" in text:
                yield from _slow_lines(text)
                continue
            fields[-1] = fields[-1][:-1]
            yield fields
        finished = True
    finally:
        if not finished:
            conn.cancel_safe() if hasattr(conn, "cancel_safe") else conn.cancel()
            while get(0)[0] >= 0:
                pass
        failure = None
        while (result := pgconn.get_result()) is not None:
            if result.status != pq.ExecStatus.COMMAND_OK and finished:
                failure = result.error_message
        if failure:
            raise errors.DatabaseError(f"export COPY failed: {failure!r}")
