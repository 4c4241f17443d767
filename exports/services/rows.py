"""Reading the selected instructions: one SQL query, streamed, in a fixed order (image id, instruction id).

Two readers of the same rows:
- `iter_rows` — one row per instruction (`select_sql`, the statement the benchmark's COPY floor runs).
  On PostgreSQL: text `COPY (SELECT …) TO STDOUT` read straight from libpq, one CopyData message per
  row, split on tabs (numbers come back as strings). Measured on 100k rows: text COPY + split costs
  what the bare COPY floor costs (0.18 s vs 0.21–0.27 s); binary COPY through `copy.rows()` 0.32 s, a
  named cursor with fetchmany 0.33 s.
- `iter_images` — what the build reads: one item per image with its instructions. On PostgreSQL the
  server groups them (`json_agg`) and a binary COPY of that one json column is parsed by orjson: at 1M
  instructions the reading costs the Python process 0.6 s of CPU instead of 1.4 s (the server works
  ~1 s more, on the core the Python process does not use; whole build 6.9 s → 5.2 s, same bytes).
Elsewhere (SQLite) a plain cursor is read in chunks (and grouped in Python). Either way nothing holds
more than one row, image or chunk, and the caller runs it inside its snapshot transaction.
"""

import datetime
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import orjson
from django.db import connection

from corpus.rules import RULES_VERSION

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
    "checked",
    "conversation",
    "turn",
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
    checked: bool  # its content passed the current rules when written (corpus.services)
    conversation: int  # the dialogue it is a turn of, 0 for a single instruction
    turn: int  # its turn in that dialogue (1, 2, …), 0 for a single instruction


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
    if selection.languages:
        among("i.language", selection.languages)
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


# Whether an instruction's content is the content corpus.services found valid under the current rules
# (the database keeps content_digest up to date on every write); such rows need no second check.
_CHECKED = "(i.checked_rules = %s AND i.checked_digest = i.content_digest)"
# A dialogue's turn: its conversation and turn number, 0 and 0 for a single instruction (no NULLs: COPY's
# text format would spell them \N).
_DIALOGUE = "COALESCE(i.conversation_id, 0), COALESCE(i.turn, 0)"


def select_sql(selection: Selection, *, vendor: str | None = None) -> tuple[str, list]:
    """The export's SELECT (with %s placeholders) and its parameters. The benchmark's COPY floor runs
    exactly this statement."""
    vendor = vendor or connection.vendor
    options = "i.options::text" if vendor == "postgresql" else "i.options"
    where, params = _where(selection)
    sql = (
        f"SELECT i.id, i.version, i.type, i.question, {options}, i.answer, "
        f"im.id, im.sha256, im.file, d.slug, {_CHECKED}, {_DIALOGUE} {_FROM}WHERE {where} "
        "ORDER BY i.image_id, i.id"
    )
    return sql, [RULES_VERSION, *params]


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


def images_sql(selection: Selection) -> tuple[str, list]:
    """The same rows as select_sql, one row per image: a JSON array [image id, sha256, file, domain,
    [[instruction id, version, type, question, options, answer, checked, conversation, turn], …]]
    (PostgreSQL only)."""
    where, params = _where(selection)
    sql = (
        "SELECT json_build_array(im.id, im.sha256, im.file, d.slug, "
        "json_agg(json_build_array(i.id, i.version, i.type, i.question, i.options, i.answer, "
        f"{_CHECKED}, {_DIALOGUE}))) "
        f"{_FROM}WHERE {where} GROUP BY im.id, d.id ORDER BY im.id"
    )
    return sql, [RULES_VERSION, *params]


def iter_images(selection: Selection) -> Iterator[list]:
    """An iterator of [image id, sha256, file, domain, instructions] per image in image-id order, each
    image's instructions as [id, version, type, question, options (parsed), answer, checked,
    conversation, turn] in id order — the
    rows of iter_rows grouped by image. Call (and iterate) inside transaction.atomic().

    On PostgreSQL the server groups and JSON-encodes (binary COPY of one json column, parsed by orjson):
    a quarter of the messages and no text splitting in Python, whose core is the export's bottleneck
    (the server works on the other one). Elsewhere the rows of iter_rows are grouped here."""
    if connection.vendor == "postgresql":
        return _iter_copy_json(literal_sql(*images_sql(selection)))  # no generator in between
    return _group_rows(iter_rows(selection))


def _group_rows(rows: Iterator[tuple]) -> Iterator[list]:
    loads = orjson.loads
    group: list | None = None
    for iid, ver, typ, question, options, answer, image_id, sha, file_name, dom, checked, dlg, turn in rows:
        if group is None or group[0] != image_id:
            if group is not None:
                yield group
            group = [image_id, sha, file_name, dom, []]
        group[4].append([iid, ver, typ, question, loads(options), answer, bool(checked), int(dlg), int(turn)])
    if group is not None:
        yield group


_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00"


def _iter_copy_json(query: str) -> Iterator[list]:
    """Rows of `COPY (query) TO STDOUT (FORMAT binary)` for a query of one json column, parsed. Each
    tuple is: int16 field count (1), int32 length, the bytes; the first message also holds the file
    header, the last one is the int16 -1 trailer."""
    from psycopg import errors

    loads = orjson.loads
    first = True
    with _copy_messages(f"COPY ({query}) TO STDOUT (FORMAT binary)") as messages:
        for message in messages:
            data = memoryview(message)  # libpq's buffer: sliced without copies
            if first:
                if bytes(data[:11]) != _BINARY_HEADER:
                    raise errors.DatabaseError("export COPY: not a binary COPY header")
                # signature, int32 flags, int32 length of the header extension, the extension
                data = data[19 + int.from_bytes(data[15:19], "big") :]
                first = False
                if not len(data):
                    continue
            head = bytes(data[:6])
            if head == b"\xff\xff":
                continue  # the trailer
            if len(head) < 6 or head[:2] != b"\x00\x01" or int.from_bytes(head[2:6], "big") != len(data) - 6:
                raise errors.DatabaseError("export COPY: unexpected binary tuple")
            image = loads(data[6:])
            image[4].sort()  # json_agg keeps no order of its own: by instruction id
            yield image


@contextmanager
def _copy_messages(statement: str) -> Iterator[Iterator[bytes]]:
    """The CopyData messages of a `COPY … TO STDOUT` statement, read straight from libpq. If the caller
    stops early, the COPY is cancelled and drained so the connection stays usable."""
    from psycopg import errors, pq

    connection.ensure_connection()
    conn = connection.connection
    pgconn = conn.pgconn
    pgconn.send_query(statement.encode())
    result = pgconn.get_result()
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        message = pgconn.get_error_message() if hasattr(pgconn, "get_error_message") else pgconn.error_message
        while pgconn.get_result() is not None:
            pass
        raise errors.DatabaseError(f"export COPY did not start: {message!r}")
    get = pgconn.get_copy_data
    state = {"finished": False}

    def messages() -> Iterator[bytes]:
        while True:
            nbytes, data = get(0)  # blocks until PostgreSQL sends the next message
            if nbytes == -1:
                state["finished"] = True
                return
            if nbytes == -2:
                raise errors.DatabaseError(f"export COPY failed: {pgconn.error_message!r}")
            yield data

    try:
        yield messages()
    finally:
        if not state["finished"]:
            conn.cancel_safe() if hasattr(conn, "cancel_safe") else conn.cancel()
            while get(0)[0] >= 0:
                pass
        failure = None
        while (result := pgconn.get_result()) is not None:
            if result.status != pq.ExecStatus.COMMAND_OK and state["finished"]:
                failure = result.error_message
        if failure:
            raise errors.DatabaseError(f"export COPY failed: {failure!r}")


def _unescape_field(text: str) -> str:
    return _ESCAPE_RE.sub(lambda m: _UNESCAPE.get(m.group(1), m.group(1)), text) if "\\" in text else text


def _slow_lines(text: str) -> Iterator[list[str]]:
    for line in text[:-1].split("\n"):
        fields = line.split("\t")
        yield [_unescape_field(field) for field in fields] if "\\" in line else fields


def _iter_copy_text(query: str) -> Iterator[list[str]]:
    """Rows of `COPY (query) TO STDOUT` (text format), as lists of field strings.

    psycopg's `Copy` iterator costs more per row than the server does (generator + wait layers per
    CopyData message: 0.43 s against 0.26 s for 100k rows, measured); a blocking `PQgetCopyData` loop
    (`_copy_messages`) does not."""
    ncolumns = len(COLUMNS)
    with _copy_messages(f"COPY ({query}) TO STDOUT") as messages:
        for data in messages:
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


def preview(selection: Selection, *, limit: int = 5) -> dict:
    """What a selection matches before anything is built: instructions and distinct images (one
    aggregate query) and the first `limit` rows in export order (one more). Reads only; the counts are
    before the build's rule check, which may skip rows that break the rules."""
    where, params = _where(selection)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), count(DISTINCT i.image_id) {_FROM}WHERE {where}", params)
        instructions, images = cursor.fetchone()
        cursor.execute(
            "SELECT i.id, i.type, i.question, i.options, i.answer, i.image_id, d.slug "
            f"{_FROM}WHERE {where} ORDER BY i.image_id, i.id LIMIT %s",
            [*params, limit],
        )
        sample = []
        for iid, type_, question, options, answer, image_id, domain in cursor.fetchall():
            if isinstance(options, str):
                options = orjson.loads(options)
            sample.append(
                {
                    "instruction_id": iid,
                    "type": type_,
                    "question": question,
                    "options": options or [],
                    "answer": answer,
                    "image_id": image_id,
                    "domain": domain,
                }
            )
    return {"instructions": instructions, "images": images, "sample": sample}
