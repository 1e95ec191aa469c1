"""Read one file of an import as Arrow record batches of the declared column types.

The file arrives as a binary stream and is read in bounded memory: one batch of rows at a
time, no line above ``MAX_LINE_BYTES``. A file is accepted whole or refused whole: the first
bad rows (up to ``MAX_REPORTED_PROBLEMS``, all from the batch where the first one appears)
raise ``FileRejectedError``, and the caller discards the batches it already took (they belong
to the same transaction). The tenant column is never read from the file.

CSV is split by Arrow a block of whole lines at a time while the lines are plain (no quotes:
`engine.csv_blocks`), then each block's text is converted by Arrow in one vectorised pass. At
the first block that is not plain or does not convert, the rest of the file goes through the
csv module, which keeps the physical line where each record starts (Arrow cannot report it):
a bad file is reported exactly as the csv module finds it, a plain good file never pays for
Python's rows. JSON Lines are split into text values by Python. Only a batch that fails is
walked value by value to say which values are bad.

``read_import_chunks(as_is=True)`` (what a run loads) also hands over a plain block whose values
PostgreSQL reads exactly as Arrow did as its own lines (CsvLines), so that COPY is given the
file's bytes instead of the typed values written back as text.
"""

from __future__ import annotations

import csv
import gzip as gzip_module
import io
import itertools
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

from byob.domain.imports import (
    MAX_LINE_BYTES,
    MAX_REPORTED_PROBLEMS,
    ImportColumn,
    ImportFormat,
    ImportSpec,
    RowProblem,
    ValueCheck,
    shorten,
)
from byob.domain.types import Kind
from byob.engine import csv_blocks
from byob.engine.import_parquet import read_parquet
from byob.engine.import_values import (
    InvalidValue,
    copy_reads_as_is,
    from_text,
    import_schema,
    locate,
    no_json_constant,
    raise_problems,
    rejected,
)
from byob.errors import FileRejectedError

DEFAULT_BATCH_ROWS = 65_536
# A batch also ends once its rows have taken this many bytes of the file: on the way to COPY a
# batch is held about six times over (the csv module's strings, Arrow's text, the typed
# columns, the CSV for COPY), so a row count alone let 65,536 rows of 350 bytes reach 240 MB.
# Smaller batches were no slower (measured 4-16 MiB, 200 MB file).
DEFAULT_BATCH_BYTES = 8 << 20
# A CSV file's first block for Arrow (and COPY) has about this many bytes, each next one twice
# the last up to ``batch_bytes``: COPY starts on a file's first rows while the next are read,
# where blocks of 8 MiB from the start (a whole 9 MB file at once) had byob and PostgreSQL take
# turns (bench/README.md "Import benchmark").
FIRST_BLOCK_BYTES = 1 << 20
# The csv module is asked for rows this many at a time (in C), then the batch's byte count is
# looked at; the next ask is sized from the bytes per row so far.
_FIRST_ASK = 16
# Python's csv module refuses fields above a process-wide limit (128 KiB by default); a quoted
# field may span lines, so allow a few lines' worth. Records past it are refused, which also
# bounds memory when a quote is never closed.
MAX_FIELD_CHARS = 16 * MAX_LINE_BYTES

_NULL_STRING = pa.scalar(None, pa.string())
# Delimiters with which a plain block's lines can go to COPY as they are.
_AS_IS_DELIMITERS = ",;|\t"


@dataclass(frozen=True)
class CsvLines:
    """Rows of a plain CSV block that COPY may be given as the file has them (``lines``): each
    line one row, its fields the columns ``names`` in that order split by ``delimiter``, no
    blank line, every line ended by a newline; every value was checked by ``from_text`` and is
    read by PostgreSQL as ``batch`` has it (``copy_reads_as_is``) when the target column has
    the declared type. ``batch`` holds the same rows typed, in declared order."""

    batch: pa.RecordBatch
    lines: bytes
    names: tuple[str, ...]
    delimiter: str


def read_import_file(
    stream: IO[bytes],
    spec: ImportSpec,
    *,
    gzip: bool = False,
    size: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[pa.RecordBatch]:
    """Yield the file's rows in batches of at most ``batch_rows``, typed as declared; a CSV or
    JSON Lines batch also ends after about ``batch_bytes`` of (decompressed) file.

    ``gzip`` comes from the key (``is_gzip``); ``size`` is the object's size when known, so an
    oversized file is refused before a byte is read. Parquet needs a seekable stream.
    Raises ``FileRejectedError`` for the first bad rows or a file byob will not read.
    """
    for chunk in read_import_chunks(
        stream,
        spec,
        gzip=gzip,
        size=size,
        batch_rows=batch_rows,
        batch_bytes=batch_bytes,
        max_line_bytes=max_line_bytes,
    ):
        yield chunk.batch if isinstance(chunk, CsvLines) else chunk  # (CsvLines: not asked for)


def read_import_chunks(
    stream: IO[bytes],
    spec: ImportSpec,
    *,
    gzip: bool = False,
    size: int | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    max_line_bytes: int = MAX_LINE_BYTES,
    as_is: bool = False,
) -> Iterator[pa.RecordBatch | CsvLines]:
    """As ``read_import_file``; with ``as_is``, a plain CSV block whose lines COPY can read as
    they are comes as CsvLines (all its rows, however many), every other rows as batches."""
    if size is not None and (problem := spec.size_problem(size)):
        raise rejected(problem)
    if spec.format is ImportFormat.PARQUET:
        if gzip:
            raise rejected("Parquet files compress inside; a gzipped Parquet file is not read")
        yield from read_parquet(stream, spec, batch_rows, batch_bytes)
        return
    binary: IO[bytes] | gzip_module.GzipFile = (
        gzip_module.GzipFile(fileobj=stream, mode="rb") if gzip else stream
    )
    limited = _LineLimit(binary, max_line_bytes)
    try:
        if spec.format is ImportFormat.CSV:
            yield from _csv_batches(limited, spec, batch_rows, batch_bytes, as_is)
        else:
            yield from _json_batches(limited, spec, _Sized(limited, batch_rows, batch_bytes))
    except (gzip_module.BadGzipFile, EOFError, zlib.error) as exc:
        raise rejected(f"not a complete gzip file ({exc}); was it cut short?") from None


def _text(counted: _LineLimit | csv_blocks.Resumed, bom: bool) -> io.TextIOWrapper:
    """Text for the csv module or the JSON decoder; newline="" leaves line ends to the csv
    module. The caller detaches it: the caller's stream must stay open."""
    encoding = "utf-8-sig" if bom else "utf-8"  # utf-8-sig drops a byte order mark
    return io.TextIOWrapper(io.BufferedReader(counted), encoding=encoding, newline="")


# --- lines -------------------------------------------------------------------------------------


class _LineLimit(io.RawIOBase):
    """The decompressed bytes, refusing a line longer than the limit as soon as it passes it,
    so no line is ever held whole. Checked per chunk in C (find, count), not per line."""

    def __init__(self, source: IO[bytes] | gzip_module.GzipFile, limit: int) -> None:
        self._source = source
        self._limit = limit
        self._run = 0  # bytes since the last newline
        self.line = 1  # the line the next byte belongs to
        self.consumed = 0  # bytes read so far

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # A chunk no longer than the limit cannot hold a whole too-long line: only the line
        # running across chunk boundaries needs counting.
        chunk = self._source.read(min(len(buffer), self._limit))
        self.consumed += len(chunk)
        first = chunk.find(b"\n")
        if first < 0:
            self._run += len(chunk)
        else:
            if self._run + first > self._limit + 1:  # +1: a "\r" before the "\n"
                self._refuse()
            self.line += chunk.count(b"\n")
            self._run = len(chunk) - chunk.rfind(b"\n") - 1
        if self._run > self._limit + 1:
            self._refuse()
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def _refuse(self) -> None:
        raise FileRejectedError(
            (
                RowProblem(
                    line=self.line,
                    column=None,
                    value=None,
                    reason=f"the line is longer than {self._limit} bytes; byob reads lines of "
                    f"at most {self._limit} bytes",
                ),
            )
        )


@dataclass(frozen=True)
class _Sized:
    """When a batch is full: ``rows`` rows, or ``bytes`` of the file read since it started."""

    source: _LineLimit | csv_blocks.Resumed
    rows: int
    bytes: int

    def take(self, reader: Any, before: int) -> list[list[str]]:
        """The next batch of rows from a csv reader, asked for in C a run of rows at a time,
        each run sized from the bytes per row so far: no Python step per row, and a batch's
        memory follows its bytes, not its row count."""
        start = self.source.consumed
        rows: list[list[str]] = []
        ask = min(_FIRST_ASK, self.rows)
        while True:
            more = _take(reader, ask, before)
            rows += more
            used = self.source.consumed - start
            if len(more) < ask or len(rows) >= self.rows or used >= self.bytes:
                return rows
            per_row = max(used / len(rows), 1.0)
            # At most doubling: the first rows may come from read-ahead, costing nothing.
            left = int((self.bytes - used) / per_row)
            ask = max(1, min(self.rows - len(rows), 2 * ask, left))

    def full(self, rows: int, start: int) -> bool:
        return rows >= self.rows or self.source.consumed - start >= self.bytes


# --- CSV ---------------------------------------------------------------------------------------


def _csv_batches(
    limited: _LineLimit, spec: ImportSpec, batch_rows: int, batch_bytes: int, as_is: bool
) -> Iterator[pa.RecordBatch | CsvLines]:
    """Plain blocks are split and converted by Arrow; from the first other block on, the csv
    module reads the rest of the file (and the header, when its line is not plain)."""
    schema = import_schema(spec)
    positions: list[int] = list(range(len(spec.columns)))
    width = len(positions)
    header = spec.csv_header
    arrow_splits = spec.csv_delimiter.isascii()  # Arrow's delimiter is one byte
    blocks = csv_blocks.Blocks(limited, batch_bytes, FIRST_BLOCK_BYTES)
    for block in blocks:
        data, line = block.data, block.first_line
        if line == 1:
            data = data.removeprefix(csv_blocks.BOM)
        if header:
            if not data:
                return  # a byte order mark alone
            found = csv_blocks.header_line(data, spec.csv_delimiter)
            if found is not None:
                positions, width = _header_positions(found[0], spec, line)
                data, line, header = data[found[1] :], line + 1, False
        if not header and not data:
            continue
        batch = texts = None
        if not header and arrow_splits and csv_blocks.plain(data):
            texts = csv_blocks.texts(data, spec.csv_delimiter, width, positions)
            batch = None if texts is None else _converted(texts, spec, schema)
        if batch is None:
            resumed = csv_blocks.Resumed(data + blocks.rest, limited, line)
            sized = _Sized(resumed, batch_rows, batch_bytes)
            yield from _csv_module_batches(resumed, spec, sized, header, positions, width)
            return
        if as_is and texts is not None:
            lines = _as_is_lines(data, texts, spec, positions, width, batch.num_rows)
            if lines is not None:
                names = [""] * width
                for column, position in zip(spec.columns, positions, strict=True):
                    names[position] = column.name
                yield CsvLines(batch, lines, tuple(names), spec.csv_delimiter)
                continue
        for start in range(0, batch.num_rows, batch_rows):
            yield batch.slice(start, batch_rows)


def _as_is_lines(
    data: bytes,
    texts: list[pa.Array],
    spec: ImportSpec,
    positions: list[int],
    width: int,
    rows: int,
) -> bytes | None:
    """A plain block's lines as COPY can read them (CRLF made LF, a last newline added), or
    None when COPY could read them otherwise than Arrow did: a field the import does not take
    (COPY cannot skip one, and the tenant column is never read from the file), a blank line
    (Arrow skips it, COPY refuses it) or a value ``copy_reads_as_is`` doubts."""
    if spec.csv_delimiter not in _AS_IS_DELIMITERS or width != len(spec.columns):
        return None
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")  # plain: every carriage return ends a line
    if data.count(b"\n") + (not data.endswith(b"\n")) != rows:
        return None  # a blank line (Arrow read a row from every other line)
    if not all(copy_reads_as_is(c, t) for c, t in zip(spec.columns, texts, strict=True)):
        return None
    return data if data.endswith(b"\n") else data + b"\n"


def _converted(texts: list[pa.Array], spec: ImportSpec, schema: pa.Schema) -> pa.RecordBatch | None:
    """The text columns as the declared types, or None when a value does not fit (the csv
    module then reads the block again to say on which line)."""
    try:
        arrays = [from_text(c, t) for c, t in zip(spec.columns, texts, strict=True)]
    except InvalidValue:
        return None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _csv_module_batches(
    resumed: csv_blocks.Resumed,
    spec: ImportSpec,
    sized: _Sized,
    header: bool,
    positions: list[int],
    width: int,
) -> Iterator[pa.RecordBatch]:
    """Rows are split by the csv module in C; Python touches a row only when a batch is bad."""
    if csv.field_size_limit() < MAX_FIELD_CHARS:
        csv.field_size_limit(MAX_FIELD_CHARS)
    before = resumed.line - 1  # lines read before the csv module's first
    text = _text(resumed, bom=False)
    reader = csv.reader(text, delimiter=spec.csv_delimiter, strict=True)
    schema = import_schema(spec)
    try:
        if header:
            (names,) = _take(reader, None, before)
            if not names:
                return  # an empty file
            positions, width = _header_positions(names, spec, before + reader.line_num)
        while True:
            first_line = before + reader.line_num + 1
            rows = sized.take(reader, before)
            if not rows:
                return
            lengths = set(map(len, rows))
            problems: list[RowProblem] = []
            if lengths != {width}:
                starts = _start_lines(rows, first_line)
                problems = [
                    RowProblem(
                        line=start,
                        column=None,
                        value=None,
                        reason=f"expected {width} fields, found {len(row)}",
                    )
                    for start, row in zip(starts, rows, strict=True)
                    if row and len(row) != width
                ][:MAX_REPORTED_PROBLEMS]
                kept = [
                    (start, row)
                    for start, row in zip(starts, rows, strict=True)
                    if len(row) == width
                ]
                rows = [row for _, row in kept]
                line_of: Callable[[int], int] = [start for start, _ in kept].__getitem__
            else:
                line_of = _LazyStarts(rows, first_line)
            by_column = list(zip(*rows, strict=True)) if rows else [()] * width
            texts = [_nulls_for_empty(pa.array(by_column[p], type=pa.string())) for p in positions]
            yield _to_batch(texts, line_of, spec, schema, problems)
    except UnicodeDecodeError as exc:
        raise rejected(f"not UTF-8 text near line {resumed.line}: {exc.reason}") from None
    finally:
        text.detach()


def _take(reader: Any, count: int | None, before: int) -> list[list[str]]:
    """Up to ``count`` rows (None: the next non-blank row only), with the reader's errors told
    as the line they were found on (``before``: lines of the file before the reader's first)."""
    try:
        if count is None:
            return [next((row for row in reader if row), [])]
        return list(itertools.islice(reader, count))
    except csv.Error as exc:
        line = before + reader.line_num
        raise FileRejectedError(
            (RowProblem(line=line, column=None, value=None, reason=f"not CSV: {exc}"),)
        ) from None


def _start_lines(rows: list[list[str]], first_line: int) -> list[int]:
    """The line each row starts on: a row spans one line plus the newlines inside its quoted
    fields. Counted only for a batch that has a problem to report."""
    starts, line = [], first_line
    for row in rows:
        starts.append(line)
        line += 1 + sum(field.count("\n") for field in row)
    return starts


class _LazyStarts:
    """Start lines of a batch's rows, counted on the first question (only a bad batch asks)."""

    def __init__(self, rows: list[list[str]], first_line: int) -> None:
        self._rows, self._first, self._starts = rows, first_line, list[int]()

    def __call__(self, index: int) -> int:
        if not self._starts:
            self._starts = _start_lines(self._rows, self._first)
        return self._starts[index]


def _nulls_for_empty(text: pa.Array) -> pa.Array:
    """An empty CSV field is NULL (PostgreSQL's COPY reads an unquoted one so)."""
    return pc.if_else(pc.equal(pc.binary_length(text), 0), _NULL_STRING, text)


def _header_positions(header: list[str], spec: ImportSpec, line: int) -> tuple[list[int], int]:
    names = [h.strip() for h in header]
    missing = [c for c in spec.column_names() if c not in names]
    twice = sorted({c for c in spec.column_names() if names.count(c) > 1})
    if missing or twice:
        reason = (
            f"the header lacks column(s) {', '.join(map(repr, missing))}"
            if missing
            else f"the header names {', '.join(map(repr, twice))} more than once"
        )
        raise FileRejectedError(
            (
                RowProblem(
                    line=line,
                    column=None,
                    value=None,
                    reason=f"{reason} (it has: {', '.join(names)})",
                ),
            )
        )
    return [names.index(c) for c in spec.column_names()], len(names)


# --- JSON Lines --------------------------------------------------------------------------------


def _json_batches(limited: _LineLimit, spec: ImportSpec, sized: _Sized) -> Iterator[pa.RecordBatch]:
    text = _text(limited, bom=True)
    try:
        yield from _json_text_batches(text, spec, sized)
    except UnicodeDecodeError as exc:
        raise rejected(f"not UTF-8 text near line {limited.line}: {exc.reason}") from None
    finally:
        text.detach()


def _json_text_batches(
    text: io.TextIOWrapper, spec: ImportSpec, sized: _Sized
) -> Iterator[pa.RecordBatch]:
    schema = import_schema(spec)
    started = sized.source.consumed
    starts: list[int] = []
    rows: list[list[str | None]] = []
    problems: list[RowProblem] = []
    for record in _json_records(text, spec):
        if isinstance(record, RowProblem):
            problems.append(record)
            if len(problems) >= MAX_REPORTED_PROBLEMS:
                break
            continue
        starts.append(record[0])
        rows.append(record[1])
        if sized.full(len(rows), started):
            yield _json_batch(rows, starts, spec, schema, problems)
            starts, rows = [], []
            started = sized.source.consumed
    if rows or problems:
        yield _json_batch(rows, starts, spec, schema, problems)


def _json_batch(
    rows: list[list[str | None]],
    starts: list[int],
    spec: ImportSpec,
    schema: pa.Schema,
    problems: list[RowProblem],
) -> pa.RecordBatch:
    by_column = list(zip(*rows, strict=True)) if rows else [()] * len(spec.columns)
    texts = [pa.array(values, type=pa.string()) for values in by_column]
    return _to_batch(texts, starts.__getitem__, spec, schema, problems)


class _Number(str):
    """A JSON number kept as its text, so decimals are never rounded through a float."""


_Record = tuple[int, list[str | None]] | RowProblem


_TOO_DEEP = "nested too deeply to read (a few hundred levels at most)"


def _json_records(text: io.TextIOWrapper, spec: ImportSpec) -> Iterator[_Record]:
    decoder = json.JSONDecoder(
        parse_float=_Number, parse_int=_Number, parse_constant=no_json_constant
    )
    takers = [(c, _json_taker(c)) for c in spec.columns]
    for number, line in enumerate(text, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        try:
            obj = decoder.decode(stripped)
        except ValueError as exc:
            yield RowProblem(
                line=number, column=None, value=shorten(stripped), reason=f"not JSON: {exc}"
            )
            continue
        except RecursionError:  # Python's decoder recurses: a line is a row, not a tree
            yield RowProblem(line=number, column=None, value=shorten(stripped), reason=_TOO_DEEP)
            continue
        if not isinstance(obj, dict):
            yield RowProblem(
                line=number,
                column=None,
                value=shorten(stripped),
                reason="each line must be a JSON object",
            )
            continue
        values: list[str | None] = []
        for column, take in takers:
            value = obj.get(column.name)
            if value is None:
                values.append(None)
                continue
            try:
                taken = take(value)
            except RecursionError:  # a json column's value written back out
                yield RowProblem(
                    line=number, column=column.name, value=shorten(stripped), reason=_TOO_DEEP
                )
                break
            if taken is None:
                yield RowProblem(
                    line=number,
                    column=column.name,
                    value=shorten(_json_text(value)),
                    reason=f"expected {_json_expected(column)}, found {_json_kind(value)}",
                )
                break
            values.append(taken)
        else:
            yield number, values


def _json_taker(column: ImportColumn) -> Callable[[Any], str | None]:
    """How a JSON value becomes the column's text, or None when its JSON type is wrong."""
    kind = column.type.kind
    if column.check is ValueCheck.JSON:
        return _json_text
    if kind in (Kind.INT16, Kind.INT32, Kind.INT64, Kind.FLOAT32, Kind.FLOAT64, Kind.DECIMAL):
        return lambda v: str(v) if isinstance(v, str) else None  # a number, or a numeric string
    if kind is Kind.BOOL:
        return lambda v: (
            ("true" if v else "false")
            if isinstance(v, bool)
            else (v if isinstance(v, str) and not isinstance(v, _Number) else None)
        )
    return lambda v: v if isinstance(v, str) and not isinstance(v, _Number) else None


def _json_expected(column: ImportColumn) -> str:
    kind = column.type.kind
    if kind in (Kind.INT16, Kind.INT32, Kind.INT64, Kind.FLOAT32, Kind.FLOAT64, Kind.DECIMAL):
        return "a number"
    return "true or false" if kind is Kind.BOOL else "a string"


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, _Number):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an object" if isinstance(value, dict) else "an array"


def _json_text(value: Any) -> str:
    """A decoded JSON value as compact JSON, each number as the file wrote it: jsonb keeps every
    digit of a number (json its very text), which a float would round, or make Infinity."""
    if isinstance(value, _Number):
        return value
    if isinstance(value, dict):
        return "{" + ",".join([f"{json.dumps(k)}:{_json_text(v)}" for k, v in value.items()]) + "}"
    if isinstance(value, list):
        return "[" + ",".join([_json_text(v) for v in value]) + "]"
    return json.dumps(value)


# --- batches -----------------------------------------------------------------------------------


def _to_batch(
    texts: list[pa.Array],
    line_of: Callable[[int], int],
    spec: ImportSpec,
    schema: pa.Schema,
    problems: list[RowProblem],
) -> pa.RecordBatch:
    """Text columns as the declared types; any problem, found before or here, rejects the file."""
    arrays = []
    for column, text in zip(spec.columns, texts, strict=True):
        try:
            arrays.append(from_text(column, text))
        except InvalidValue:
            problems += locate(column, text, line_of)
    raise_problems(problems)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
