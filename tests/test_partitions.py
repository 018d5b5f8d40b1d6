"""Partitions of distributed runs, without a cluster: boundaries, headers, reading, placing messages."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlpack.exceptions import BadInput
from mlpack.io import JSON, NumpyNdarray, PandasDataFrame
from mlpack.partitions import MIN_PARTITION_BYTES, list_inputs, place, plan, read, shrinking_sizes
from mlpack.parts import OrderedOutput, PartWriter

COLUMNS = ["a", "b", "c"]


def _rows(n: int) -> str:
    return "".join(f"{i},{i * 2}.5,{i % 7}\n" for i in range(n))


def _arrays(descriptor, parts, tmp_path: Path) -> list[np.ndarray]:
    out = []
    for part in parts:
        opened = read(part, tmp_path)
        out += list(descriptor._iter(opened.source, part.fmt, 50, part.name))
    return out


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_csv_partitions_start_at_lines_and_read_like_the_whole_file(tmp_path, newline) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(("\ufeffa,b,c\n" + _rows(500)).replace("\n", newline).encode())
    parts = plan(str(path), None, NumpyNdarray(), 300)
    assert len(parts) > 10 and parts[0].lo == 0 and parts[-1].hi == path.stat().st_size
    data = path.read_bytes()
    assert all(data[p.lo - 1 : p.lo] == b"\n" for p in parts[1:])  # each starts after a line ending
    assert all(a.hi == b.lo for a, b in zip(parts, parts[1:]))
    assert parts[1].header == b"a,b,c" + newline.encode() and parts[0].header is None
    whole = np.concatenate(list(NumpyNdarray()._iter(str(path), "csv", 50, str(path))))
    np.testing.assert_array_equal(np.concatenate(_arrays(NumpyNdarray(), parts, tmp_path)), whole)
    assert len(whole) == 500


def test_a_headerless_csv_gets_no_header_in_front(tmp_path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(_rows(200))
    parts = plan(str(path), None, NumpyNdarray(), 200)
    assert all(p.header is None for p in parts)
    assert sum(len(a) for a in _arrays(NumpyNdarray(), parts, tmp_path)) == 200
    # declared columns that fit a headerless file: the same for a DataFrame API
    frames = PandasDataFrame(columns=COLUMNS)
    parts = plan(str(path), None, frames, 200)
    assert all(p.header is None for p in parts)
    got = pd.concat(_arrays(frames, parts, tmp_path))
    assert list(got.columns) == COLUMNS and len(got) == 200


def test_parquet_partitions_are_row_groups(tmp_path) -> None:
    path = tmp_path / "x.parquet"
    pd.DataFrame({"a": range(1000), "b": np.arange(1000) * 0.5}).to_parquet(path, row_group_size=100)
    parts = plan(str(path), None, NumpyNdarray(), 1)
    assert [p.row_groups for p in parts] == [(i,) for i in range(10)]
    got = np.concatenate(_arrays(NumpyNdarray(), parts, tmp_path))
    assert got.shape == (1000, 2) and got[-1, 0] == 999
    assert len(plan(str(path), None, NumpyNdarray(), 1 << 30)) == 1


def test_folders_and_globs_list_sorted_input_files(tmp_path) -> None:
    for name in ("b.csv", "a.csv", "c.jsonl", ".hidden.csv", "_SUCCESS", "notes.txt"):
        (tmp_path / name).write_text("a\n1\n")
    assert [n for _, n in list_inputs(str(tmp_path), None)] == [str(tmp_path / n) for n in ("a.csv", "b.csv", "c.jsonl")]
    assert [n for _, n in list_inputs(str(tmp_path / "*.csv"), None)] == [str(tmp_path / n) for n in ("a.csv", "b.csv")]
    with pytest.raises(BadInput, match="no input files"):
        list_inputs(str(tmp_path / "*.parquet"), None)
    with pytest.raises(BadInput, match="no such file"):
        list_inputs(str(tmp_path / "missing.csv"), None)


def test_place_moves_the_first_row_and_line_of_a_message() -> None:
    msg = "row 3 (line 4 of x.csv), column 'b': 'abc' is not a number"
    assert place(msg, 100, 120, 1) == "row 103 (line 123 of x.csv), column 'b': 'abc' is not a number"
    jsonl = "line 5 of x.jsonl is not valid JSON: at column 2"
    assert place(jsonl, 0, 40, 0) == "line 45 of x.jsonl is not valid JSON: at column 2"
    api = "API 'p' failed on rows 1-50: ValueError: row 7 is bad"
    assert place(api, 200, 0, 0) == "API 'p' failed on rows 201-250: ValueError: row 7 is bad"
    assert place("x.csv is not valid utf-8 text (lines 2-9)", 0, 10, 1) == "x.csv is not valid utf-8 text (lines 11-18)"


def test_a_bad_value_in_a_partition_is_placed_in_the_file(tmp_path) -> None:
    lines = ["a,b,c\n", *_rows(300).splitlines(keepends=True)]
    lines[250] = "1,abc,3\n"  # line 251, row 250
    path = tmp_path / "x.csv"
    path.write_text("".join(lines))
    parts = plan(str(path), None, NumpyNdarray(), 400)
    rows = newlines = 0
    for part in parts:
        opened = read(part, tmp_path)
        try:
            got = list(NumpyNdarray()._iter(opened.source, "csv", 50, part.name))
        except BadInput as exc:
            assert part.index > 0
            assert place(str(exc), rows, newlines, opened.prefix_lines).startswith(f"row 250 (line 251 of {path}), column 'b'")
            break
        rows += sum(len(a) for a in got)
        newlines += opened.newlines
    else:
        pytest.fail("no error")


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_parts_join_into_the_document_a_chunk_writer_makes(fmt) -> None:
    from mlpack.io import ChunkWriter

    results = [np.array([1, 2]), np.array([], dtype=int), pd.DataFrame({"x": [3.5], "y": ["a"]}).to_dict("records")]
    results = [np.array([1, 2]), np.array([], dtype=int), np.array([3, 4, 5])] if fmt != "json" else results
    whole = io.StringIO()
    with ChunkWriter(whole, fmt) as writer:
        for r in results:
            writer.write(r)
    joined = io.StringIO()
    out = OrderedOutput(fmt, joined)
    for i, r in enumerate(results):
        part = PartWriter(fmt)
        part.write(r)
        out.add(i, part.result())
    out.close()
    assert joined.getvalue() == whole.getvalue()


def test_json_records_of_a_jsonl_partition(tmp_path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text("".join(f'{{"a": {i}}}\n' for i in range(100)))
    parts = plan(str(path), None, JSON(), 200)
    assert len(parts) > 3 and all(p.header is None for p in parts)
    records = [r for part in parts for chunk in JSON()._iter(read(part, tmp_path).source, "jsonl", 7, part.name) for r in chunk]
    assert records == [{"a": i} for i in range(100)]


def test_default_partitions_shrink_towards_the_end_of_the_input(tmp_path) -> None:
    """Without --partition-size: each partition a share of what is left, over every file, the last ones small."""
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    row = "1.25,2.5,3.75\n"
    first.write_text("a,b,c\n" + row * 400_000)  # 5.6 MB
    second.write_text("a,b,c\n" + row * 100_000)
    total = first.stat().st_size + second.stat().st_size
    parts = plan(str(tmp_path), None, NumpyNdarray(), None, workers=2)
    sizes = [(p.hi if p.hi >= 0 else (first if p.url == str(first) else second).stat().st_size) - p.lo for p in parts]
    assert [p.url for p in parts] == sorted(p.url for p in parts) and sum(sizes) == total
    assert sizes[0] == pytest.approx(total / 4, rel=0.01)  # a quarter of the input for each of 2 workers' first
    # within a file, each partition but its last (the file's rest) no bigger than the one before
    cut = [i for i, p in enumerate(parts) if p.first] + [len(parts)]
    for a, b in zip(cut, cut[1:]):
        inner = sizes[a : b - 1]
        assert all(y <= x + len(row) for x, y in zip(inner, inner[1:])) and sizes[b - 1] <= max(inner or [total])
    assert cut == [0, 5, 7] and sizes[:3] == sorted(sizes[:3], reverse=True)
    assert max(sizes[-2:]) <= MIN_PARTITION_BYTES + len(row) < sizes[0] / 1.5
    # more workers: smaller first partitions; the bounds hold at both ends
    many = plan(str(first), None, NumpyNdarray(), None, workers=8)  # 1/16 of 5.6 MB is below the minimum
    assert MIN_PARTITION_BYTES <= many[0].hi < MIN_PARTITION_BYTES + len(row)
    size = shrinking_sizes(10 << 30, 2)
    assert size(0) == 64 << 20 and size((10 << 30) - 1000) == MIN_PARTITION_BYTES


def test_default_parquet_partitions_take_fewer_row_groups_towards_the_end(tmp_path) -> None:
    path = tmp_path / "x.parquet"
    data = np.random.default_rng(0).random((400_000, 4))  # incompressible: 640 KB per row group of 20,000 rows
    pd.DataFrame(data, columns=list("abcd")).to_parquet(path, row_group_size=20_000)
    parts = plan(str(path), None, NumpyNdarray(), None, workers=2)
    groups = [p.row_groups for p in parts]
    assert [g for gs in groups for g in gs] == list(range(20)) and [p.first for p in parts].count(True) == 1
    sizes = [len(g) for g in groups]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] >= 4 and sizes[-1] <= 2  # ~1/4 of the file, then down to 1 MiB
    got = np.concatenate(_arrays(NumpyNdarray(), parts, tmp_path))
    assert np.array_equal(got, data)
