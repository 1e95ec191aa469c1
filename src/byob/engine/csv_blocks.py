"""CSV read by Arrow a block of whole lines at a time, where Arrow reads it exactly as the csv
module would: the fast way through an import file (measured: Arrow splits a block about 200
times faster than the csv module builds its rows).

A block is *plain* when it has no quote, no NUL, no carriage return but before a newline, and is
UTF-8. In such a block every newline ends a record and every delimiter ends a field, for Arrow
and for the csv module alike, and physical lines are newlines counted. Anything else (a quoted
field, a row of the wrong width) is left to the csv module, which reads the rest of the file
from the start of that block and can say on which line each record starts.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv

BOM = b"\xef\xbb\xbf"
# Bytes asked of the file at a time: a block is a few of these joined. At most the longest line
# allowed, so that _LineLimit hands them over whole.
_READ_BYTES = 1 << 20
_TAIL_BYTES = 1 << 16
_PARSE = pacsv.ParseOptions(
    quote_char=False, escape_char=False, newlines_in_values=False, ignore_empty_lines=True
)


@dataclass(frozen=True)
class Block:
    data: bytes  # whole lines; the file's last block may lack its final newline
    first_line: int  # the physical line its first byte is on (1-based)


class Blocks:
    """A file's (decompressed) bytes in blocks of about ``size`` bytes, each ending at a newline;
    the first of about ``first`` bytes, each next one twice the last, up to ``size`` (so that
    COPY has the first rows soon and then takes one block while the next is read).

    ``rest`` holds the bytes read past the last block (the start of its next line)."""

    def __init__(
        self, source: IO[bytes] | io.RawIOBase, size: int, first: int | None = None
    ) -> None:
        self._source = source
        self._size = size
        self._first = min(size, first or size)
        self.rest = b""

    def __iter__(self) -> Iterator[Block]:
        line, size = 1, self._first
        while True:
            parts, have, ended, eof = [self.rest], len(self.rest), False, False
            while have < size or not ended:
                # Past the size without a newline: the rest of a line, a little at a time.
                wanted = size - have if have < size else _TAIL_BYTES
                chunk = self._source.read(min(wanted, _READ_BYTES))
                if not chunk:
                    eof = True
                    break
                parts.append(chunk)
                have += len(chunk)
                ended = ended or b"\n" in chunk
            data = b"".join(parts)
            self.rest = b""
            if not eof:
                cut = data.rindex(b"\n") + 1
                data, self.rest = data[:cut], data[cut:]
            if not data:
                return
            yield Block(data, line)
            line += data.count(b"\n")
            size = min(2 * size, self._size)


def plain(data: bytes) -> bool:
    """Whether Arrow splits these lines into the records and fields the csv module would."""
    if b'"' in data or b"\x00" in data:
        return False
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return False  # a lone carriage return ends a line for the csv module, not for our count
    if not data.isascii():
        try:
            data.decode()
        except UnicodeDecodeError:
            return False
    return True


def header_line(data: bytes, delimiter: str) -> tuple[list[str], int] | None:
    """The first line's fields and its length with its newline, when it is plain and not blank
    (else None: the csv module reads the header)."""
    end = data.find(b"\n") + 1 or len(data)
    line = data[:end]
    if not plain(line):
        return None
    text = line.decode().removesuffix("\n").removesuffix("\r")
    return (text.split(delimiter), end) if text else None


def texts(data: bytes, delimiter: str, width: int, positions: list[int]) -> list[pa.Array] | None:
    """The fields at ``positions`` of plain lines of ``width`` fields, as text (an empty field
    is NULL); None when a line has another width."""
    names = [str(i) for i in range(width)]
    taken = [names[p] for p in positions]
    try:
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(
                column_names=names, block_size=len(data) + 1, use_threads=False
            ),
            parse_options=_with_delimiter(delimiter),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(taken, pa.string()),
                include_columns=taken,
                null_values=[""],
                strings_can_be_null=True,
                check_utf8=False,  # plain() checked the whole block, fields not taken included
            ),
        )
    except pa.ArrowInvalid:
        return None
    columns = [table.column(i) for i in range(len(taken))]
    return [c.chunk(0) if c.num_chunks == 1 else c.combine_chunks() for c in columns]


def _with_delimiter(delimiter: str) -> Any:
    if delimiter == ",":
        return _PARSE
    return pacsv.ParseOptions(
        delimiter=delimiter,
        quote_char=False,
        escape_char=False,
        newlines_in_values=False,
        ignore_empty_lines=True,
    )


class Resumed(io.RawIOBase):
    """The bytes Arrow did not take, then the rest of the file: what the csv module reads when a
    block is not plain or does not convert. Counts lines as they pass, like _LineLimit."""

    def __init__(self, head: bytes, source: IO[bytes] | io.RawIOBase, line: int) -> None:
        self._head = memoryview(head)
        self._source = source
        self.line = line  # the line the next byte belongs to
        self.consumed = 0  # bytes read so far

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            chunk = bytes(self._head[: len(buffer)])
            self._head = self._head[len(chunk) :]
        else:
            chunk = self._source.read(min(len(buffer), _READ_BYTES)) or b""
        size = len(chunk)
        buffer[:size] = chunk
        self.consumed += size
        self.line += chunk.count(b"\n")
        return size
