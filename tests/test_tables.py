"""The one table reader (sonotype.tables) and the three readers built on it: annotation tables,
per-file metadata and clip labels read by the same rules."""

from __future__ import annotations

import csv

import pytest

from sonotype.discovery.clustereval import read_labels
from sonotype.errors import DataError
from sonotype.runner.batch import read_metadata_table
from sonotype.tables import column_key, file_key, read_table
from sonotype.training.dataset import Event, read_annotations

ROWS = [["deploy/x.wav", "5.0", "6.5", "up call"],
        ["x.wav", "1", "2", "gun, shot"],  # a value holding a comma (quoted in a CSV)
        ["y.wav", "0", "0.25", "up;call"]]  # ... and a semicolon


def write(path, header, rows, *, delimiter=",", encoding="utf-8"):
    """The reference writer: the csv module (the trusted library), any delimiter and encoding."""
    with open(path, "w", newline="", encoding=encoding) as f:
        csv.writer(f, delimiter=delimiter).writerows([header, *rows])
    return path


@pytest.mark.parametrize("delimiter", [",", "\t", ";"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_every_delimiter_and_encoding_reads_the_same_cells(tmp_path, delimiter, encoding):
    p = write(tmp_path / "t.txt", ["Filename", " Start ", "END", "label"], ROWS, delimiter=delimiter,
              encoding=encoding)
    t = read_table(p, what="test table", required=("filename", "start", "end"))
    assert t.delimiter == delimiter
    assert list(t.columns) == ["filename", "start", "end", "label"]
    assert list(t.columns.values()) == ["Filename", "Start", "END", "label"]  # as written, stripped
    assert [[r[c] for c in ("FILENAME", "start", "End", "label")] for r in t.rows] == ROWS
    assert [r.line for r in t.rows] == [2, 3, 4]
    # the annotation reader over the same file
    ann = read_annotations(p)
    assert ann == {"x.wav": [Event(1.0, 2.0, "gun, shot"), Event(5.0, 6.5, "up call")],
                   "y.wav": [Event(0.0, 0.25, "up;call")]}


def test_header_names_ignore_case_and_spaces():
    assert column_key("  File   Name ") == "file name" == column_key("FILE NAME")
    assert column_key("start") == column_key(" START\t")


def test_missing_column_message_names_file_missing_and_found(tmp_path):
    p = write(tmp_path / "ann.csv", ["file", "begin", "end"], [["x.wav", "1", "2"]])
    with pytest.raises(DataError) as e:
        read_table(p, what="annotation table", required=("filename", "start", "end"), optional=("label",))
    msg = str(e.value)
    assert str(p) in msg
    assert "'filename' and 'start'" in msg and "'end'" not in msg.split("found")[0]
    assert "['file', 'begin', 'end']" in msg and "optional: label" in msg


def test_bad_number_names_file_line_column_value_and_expectation(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("filename,start,end\n\nx.wav,1,2\n\n\nx.wav,1,abc\n")  # blank lines are counted
    t = read_table(p, what="t", required=("start",))
    assert [r.line for r in t.rows] == [3, 6]
    assert t.rows[0].number("start") == 1.0
    with pytest.raises(DataError) as e:
        t.rows[1].number("end", expected="seconds")
    assert str(e.value) == f"{p}, line 6, column 'end': expected seconds, got 'abc'"
    p.write_text("filename,start\nx.wav,nan\n")
    with pytest.raises(DataError, match=r"line 2, column 'start': expected a number \(finite\), got 'nan'"):
        read_table(p, what="t", required=()).rows[0].number("start")
    p.write_text("filename,start,end\nx.wav,1,abc\n")
    with pytest.raises(DataError, match=rf"{p.name}, line 2, column 'end': expected seconds, got 'abc'"):
        read_annotations(p)


def test_empty_tables(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("")
    with pytest.raises(DataError, match="is empty; expected a header line with the columns filename"):
        read_table(p, what="t", required=("filename",))
    p.write_text("\n  \n")
    with pytest.raises(DataError, match="is empty"):
        read_table(p, what="t", required=("filename",))
    p.write_text("filename,label\n\n")
    with pytest.raises(DataError, match=r"t\.csv has no rows"):
        read_table(p, what="t", required=("filename",))
    assert read_table(p, what="t", required=("filename",), allow_empty=True).rows == ()
    p.write_text("")
    for reader in (read_annotations, read_metadata_table, read_labels):
        with pytest.raises(DataError, match="does not exist"):
            reader(tmp_path / "nothere.csv")
        with pytest.raises(DataError, match="is empty"):
            reader(p)


def test_blank_lines_crlf_and_quoted_line_breaks_keep_the_file_line_numbers(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b'filename,note\r\n\r\na.wav,"two\r\nlines"\r\n ,  \r\nb.wav,x\r\n')
    t = read_table(p, what="t", required=("filename",))
    assert [(r.line, r["filename"], r["note"]) for r in t.rows] == [(4, "a.wav", "two\r\nlines"), (6, "b.wav", "x")]


def test_refused_layouts(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("filename,start\na, b.wav,1\n")  # an unquoted comma inside a name
    with pytest.raises(DataError, match=r"line 2: 3 values but the header has 2 columns.*quote values"):
        read_table(p, what="t", required=())
    p.write_text("filename,start,\nb.wav,1,\n")  # an empty trailing column is fine
    assert read_table(p, what="t", required=()).rows[0].cells == {"filename": "b.wav", "start": "1"}
    p.write_text("Start,start\n1,2\n")
    with pytest.raises(DataError, match="'Start' and 'start' both read as 'start'"):
        read_table(p, what="t", required=())
    p.write_bytes("filename\nd\xe9j\xe0.wav\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"t\.csv, line 2: not utf-8 text.*CSV UTF-8"):
        read_table(p, what="t", required=())
    p.write_text("filename,start,end\n  ,1,2\n")  # times without a file name
    with pytest.raises(DataError, match="line 2, column 'filename': expected a file name"):
        read_annotations(p)


def test_file_names_are_base_names_whatever_the_separator():
    assert file_key(r" C:\data\site1\x.wav ") == "x.wav" == file_key("./site1/x.wav")
    assert file_key(r"site1\x.wav", keep_paths=True) == "site1/x.wav" == file_key("./site1/./x.wav", keep_paths=True)
    assert file_key("  ") == ""


def test_metadata_and_labels_tables(tmp_path):
    p = write(tmp_path / "m.tsv", ["FileName", "Site", "Recording Date", "encounter"],
              [[r"D:\deploy\a.wav", "Bimini", "2019-10-28", ""], ["b.wav", " Azores ", "", "E2"]], delimiter="\t")
    assert read_metadata_table(p) == {"a.wav": {"site": "Bimini", "recording date": "2019-10-28"},
                                      "b.wav": {"site": "Azores", "encounter": "E2"}}
    p = write(tmp_path / "l.csv", ["Filename", "Label"], [["a/x.wav", "up"], ["y.wav", ""], ["z.wav", "down"]],
              delimiter=";")
    assert read_labels(p) == {"x.wav": "up", "z.wav": "down"}
    p = write(tmp_path / "bad.csv", ["filename", "type"], [["x.wav", "up"]])
    with pytest.raises(DataError, match=r"labels table .*bad\.csv lacks column\(s\) 'label'; found \['filename', "):
        read_labels(p)
