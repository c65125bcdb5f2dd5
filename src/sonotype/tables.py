"""The one reader of the tables people give sonotype: annotation tables, per-file metadata, clip labels.

Every table is read by the same rules:

* text: UTF-8 with or without a byte-order mark (what Excel's "CSV UTF-8" writes), or UTF-16 with its
  byte-order mark (Excel's "Unicode text");
* the delimiter is the one of comma, tab and semicolon found most often in the header line (comma on a
  tie), so CSV, TSV (Raven selection tables) and the semicolon CSV of European spreadsheets all work;
  values may be quoted as in CSV;
* column names match whatever their case and spacing (``" Start "`` is ``start``); two columns that
  read the same are refused; columns with an empty name are ignored;
* cells are stripped of surrounding spaces; lines whose cells are all blank are skipped; a line with
  more non-blank cells than the header has columns is refused (an unquoted delimiter inside a value);
* line numbers in messages are the file's own (counting blank lines and quoted line breaks).

:func:`read_table` checks the required columns (the error names the file, the missing columns and the
columns found); :class:`Row` converts values (the error names file, line, column, value and what was
expected). The functions that read one kind of table keep only their column mapping and conversions.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import DataError

#: the delimiters a table may use, in the order that breaks a tie in the header line
DELIMITERS = (",", "\t", ";")
_NAMES = {",": "comma", "\t": "tab", ";": "semicolon"}


def column_key(name: str) -> str:
    """The name a column is matched by: lower case, surrounding spaces dropped, inner runs of spaces one space."""
    return " ".join(str(name).split()).lower()


def file_key(raw: str, *, keep_paths: bool = False) -> str:
    """A file name written in a table -> the name it is matched by: its base name (``keep_paths``: the
    path as written, ``/``-separated, without ``.`` parts). Windows ``\\`` separators are read as ``/``."""
    posix = str(raw).strip().replace("\\", "/")
    parts = [p for p in PurePosixPath(posix).parts if p != "."]
    name = str(PurePosixPath(*parts)) if parts else ""
    return name if keep_paths else PurePosixPath(name).name


def _and(names: Sequence[str]) -> str:
    q = [repr(n) for n in names]
    return q[0] if len(q) == 1 else f"{', '.join(q[:-1])} and {q[-1]}"


@dataclass(frozen=True)
class Row:
    """One line of a table: ``cells`` maps each column's :func:`column_key` to its stripped text
    (``""`` for a cell the line lacks)."""

    path: str
    line: int  # 1-based line number in the file
    cells: dict

    @property
    def where(self) -> str:
        """``"FILE, line N"``, the start of every message about this row."""
        return f"{self.path}, line {self.line}"

    def __getitem__(self, column: str) -> str:
        """The text of ``column`` (``""`` when the table has no such column or the cell is empty)."""
        return self.cells.get(column_key(column), "")

    def error(self, column: str, expected: str) -> DataError:
        """The error for a bad value in ``column``: file, line, column, value and what was expected."""
        return DataError(f"{self.where}, column {column_key(column)!r}: expected {expected}, got {self[column]!r}")

    def number(self, column: str, *, expected: str = "a number") -> float:
        """The cell as a finite float; anything else raises :meth:`error`."""
        try:
            v = float(self[column])
        except ValueError:
            raise self.error(column, expected) from None
        if not math.isfinite(v):
            raise self.error(column, f"{expected} (finite)")
        return v

    def file_name(self, column: str = "filename", *, keep_paths: bool = False) -> str:
        """The cell as a file name (:func:`file_key`); an empty one raises :meth:`error`."""
        name = file_key(self[column], keep_paths=keep_paths)
        if not name:
            raise self.error(column, "a file name (base name or path)")
        return name


@dataclass(frozen=True)
class Table:
    """A table read by :func:`read_table`."""

    path: str
    what: str  # what the table is, for messages ("annotation table")
    columns: dict  # column key -> the column's name as written (stripped), in file order
    delimiter: str
    rows: tuple  # of Row; blank lines left out


def _decode(data: bytes, p: Path, what: str) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        enc = "utf-16"
    else:
        enc = "utf-8-sig"
    try:
        return data.decode(enc)
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise DataError(f"{what} {p}, line {line}: not {enc.replace('-sig', '')} text (byte {data[e.start]:#04x}); "
                        "save the table as 'CSV UTF-8' (or UTF-16 with a byte-order mark)") from None


def read_table(path: str | Path, *, what: str, required: Sequence[str], optional: Sequence[str] = (),
               units: str = "", allow_empty: bool = False) -> Table:
    """Read a delimited text table by the module's rules.

    ``what`` names the table in messages; ``required`` are the column names it must have (matched by
    :func:`column_key`); ``optional`` and ``units`` (e.g. ``"start, end in seconds"``) only describe
    the expected layout in the error. A table without data rows raises unless ``allow_empty``.
    Raises :class:`~sonotype.errors.DataError` for a missing or unreadable file.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} {p} does not exist" + (" (it is a folder)" if p.is_dir() else ""))
    text = _decode(p.read_bytes(), p, what)
    layout = ", ".join(required) + (f" (optional: {', '.join(optional)})" if optional else "") + \
        (f"; {units}" if units else "")
    header_line = next((ln for ln in text.splitlines() if ln.strip()), None)
    if header_line is None:
        raise DataError(f"{what} {p} is empty; expected a header line with the columns {layout}")
    delimiter = max(DELIMITERS, key=header_line.count)  # the first of the most frequent: comma on a tie
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[tuple[int, list[str]]] = []
    try:
        for cells in reader:
            records.append((reader.line_num, [c.strip() for c in cells]))
    except csv.Error as e:
        raise DataError(f"{what} {p}, line {reader.line_num}: {e}; check the quoting of that line") from None
    records = [(n, cells) for n, cells in records if any(cells)]
    if not records:
        raise DataError(f"{what} {p} has no column names; expected a header line with the columns {layout}")
    written = records[0][1]
    columns: dict[str, str] = {}
    for name in written:
        key = column_key(name)
        if not key:
            continue
        if key in columns:
            raise DataError(f"{what} {p}: columns {columns[key]!r} and {name!r} both read as {key!r} (case and "
                            "spaces are ignored in column names); rename or remove one")
        columns[key] = name
    missing = [c for c in required if column_key(c) not in columns]
    if missing:
        raise DataError(f"{what} {p} lacks column(s) {_and(missing)}; found {list(columns.values())} "
                        f"({_NAMES[delimiter]}-separated); expected the columns {layout} (names match "
                        "whatever their case and spacing; comma-, tab- or semicolon-separated)")
    keys = [column_key(c) for c in written]
    rows = []
    for n, cells in records[1:]:
        extra = [c for c in cells[len(keys):] if c]
        if extra:
            raise DataError(f"{p}, line {n}: {len(cells)} values but the header has {len(keys)} columns "
                            f"(extra: {extra[:3]}); quote values that contain a {_NAMES[delimiter]}")
        row = {k: (cells[i] if i < len(cells) else "") for i, k in enumerate(keys) if k}
        rows.append(Row(str(p), n, row))
    if not rows and not allow_empty:
        raise DataError(f"{what} {p} has no rows below its header; expected the columns {layout}")
    return Table(str(p), what, columns, delimiter, tuple(rows))
