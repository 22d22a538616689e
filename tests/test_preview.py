"""Previews that never run a value: the browser (a real ``linea-luigid``), its API and ``show``.

One scheduler serves a store holding a Parquet frame (with a script tag and a
terminal escape in its cells), an ``.npy`` array, a very wide frame, a frame of
1 MB strings, a Parquet file damaged after saving, and a pickle whose
unpickling would create a file. Each is read through the version page, the
JSON API and ``linea-luigi show`` (text and ``--json``). Hostile files go
straight to ``values.preview``; on the loopback S3 server the bytes a preview
transfers are counted by a relaying proxy.
"""

from __future__ import annotations

import html
import io
import json
import re
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from fault_support import DOWN, TcpProxy
from scheduler_support import LINEA_LUIGID, get, scheduler_env, scheduler_process

import linea_luigi as ll
from linea_luigi.cli import main as cli_main
from linea_luigi.settings.urls import parse_db_url
from linea_luigi.values import preview
from linea_luigi.web import Catalog

EVIL = "<script>alert(1)</script>"
ESCAPE = "\x1b[2J\x1b]0;owned\x07"
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
MB = 1_000_000
TIMES = "\u00d7"  # the multiplication sign pages use between sizes
#: what a page or document about one value may weigh, however wide or long its cells
SMALL_PAGE = 64_000
SMALL_DOC = 32_000


class Trap:
    """Unpickling this creates ``path``: the mark of a process that loaded the value."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (open, (str(self.path), "w"))


def frame() -> pd.DataFrame:
    """100 rows whose cells are known as text: what the preview must show."""
    text = [f"row {i}" for i in range(100)]
    text[0], text[1] = EVIL, f"bell{ESCAPE}end"
    return pd.DataFrame(
        {
            "n": range(100),
            "text": text,
            "x": [i / 4 for i in range(100)],
            "when": [START + timedelta(hours=i) for i in range(100)],
            "colour": pd.Categorical(["red", "green"][i % 2] for i in range(100)),
        }
    )


def expected_head() -> list[list[str]]:
    df = frame()
    return [
        [str(i), df["text"][i], str(i / 4), str(START + timedelta(hours=i)), df["colour"][i]]
        for i in range(20)
    ]


@dataclass
class Site:
    port: int
    store: ll.ArtifactStore
    db_url: str
    storage: Path
    mark: Path

    def page(self, path: str) -> str:
        status, body = get(self.port, path)
        assert status == 200, body[:500]
        return body

    def api(self, name: str) -> tuple[dict[str, Any], int]:
        body = self.page(f"/api/artifacts/{name}/latest")
        return json.loads(body), len(body.encode())

    def cli(self, *argv: str) -> str:
        args = ["--db-url", self.db_url, "--storage-dir", str(self.storage), *argv]
        result = CliRunner().invoke(cli_main, args)
        assert result.exit_code == 0, (result.output, result.exception)
        return result.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("preview")
    db_url = f"sqlite:///{tmp / 'db.sqlite'}"
    storage = tmp / "artifacts"
    store = ll.ArtifactStore(db_url, str(storage))
    mark = tmp / "unpickled.mark"
    store.save(frame(), "frame")
    store.save(np.arange(24, dtype=np.float32).reshape(2, 3, 4), "array")
    store.save(pd.DataFrame({f"c{i:04d}": range(30) for i in range(2000)}), "wide")
    store.save(pd.DataFrame({f"s{i}": [chr(65 + i) * MB] * 21 for i in range(2)}), "long")
    store.save(Trap(mark), "trap")
    damaged = store.save(frame().iloc[::-1], "damaged")  # its own file to damage
    path = storage / damaged.location
    path.write_bytes(b"\0" * damaged.size_bytes)  # same size, no Parquet left in it
    cfg = tmp / "luigi.cfg"
    cfg.write_text(f"[artifact_store]\ndb_connection = {db_url}\n")  # the database only
    with scheduler_process(LINEA_LUIGID, tmp, scheduler_env(tmp, cfg)) as port:
        yield Site(port, store, db_url, storage, mark)


def _table(page: str) -> str:
    found = re.search(r'<table id="ll-preview-head">(.*?)</table>', page, re.S)
    assert found is not None, page[-3000:]
    return found.group(1)


def _rows(table: str) -> list[list[str]]:
    body = table.split("<tbody>", 1)[1]
    return [
        [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


# -- Parquet ---------------------------------------------------------------------------------


def test_parquet_preview_in_the_api_rows_schema_and_first_rows(site: Site) -> None:
    doc, _ = site.api("frame")
    assert doc["serializer"] == "parquet" and doc["value_type"] == "pandas.DataFrame"
    assert doc["libraries"]["pandas"] == pd.__version__
    assert doc["libraries"]["pyarrow"] == pa.__version__
    p = doc["preview"]
    assert p["kind"] == "parquet" and p["rows"] == 100 and p["columns_total"] == 5
    schema = pq.read_schema(site.store.get("frame").uri.removeprefix("file://"))
    assert p["columns"] == [{"name": f.name, "type": str(f.type)} for f in schema]
    assert [c["name"] for c in p["columns"]] == ["n", "text", "x", "when", "colour"]
    assert p["head"] == expected_head()
    assert p["truncated"] == ["showing the first 20 of 100 rows"]


def test_parquet_preview_on_the_version_page_is_escaped(site: Site) -> None:
    page = site.page("/artifacts/frame/latest")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert re.search(r'id="ll-value-type">pandas\.DataFrame<', page)
    assert re.search(r'id="ll-serializer">parquet<', page)
    libraries = re.search(r'id="ll-libraries">([^<]*)<', page)
    assert libraries is not None and f"pandas {pd.__version__}" in libraries.group(1)
    assert f"100 rows {TIMES} 5 columns" in page
    table = _table(page)
    for column in ("n", "text", "x", "when", "colour"):
        assert f"<th>{column}<br>" in table
    assert "timestamp[us, tz=UTC]" in table or "timestamp[ns, tz=UTC]" in table
    assert _rows(table) == expected_head()
    assert "showing the first 20 of 100 rows" in page


def test_show_prints_the_preview_and_show_json_is_the_api_document(site: Site) -> None:
    out = site.cli("show", "frame")
    assert "value type:   pandas.DataFrame" in out and "serializer:   parquet" in out
    libraries = re.search(r"^libraries:\s+(.*)$", out, re.M)
    assert libraries is not None
    assert f"pandas {pd.__version__}" in libraries.group(1)
    assert f"pyarrow {pa.__version__}" in libraries.group(1)
    assert "preview:" in out and "100 rows x 5 columns" in out
    assert "    colour: dictionary<values=string" in out
    table = out.split("first rows:", 1)[1].splitlines()
    assert table[1].split() == ["n", "text", "x", "when", "colour"]
    assert table[2].split()[:2] == ["0", EVIL]
    assert table[21].split()[:3] == ["19", "row", "19"]
    assert "note: showing the first 20 of 100 rows" in out
    assert "\x1b" not in out and "\x07" not in out  # a cell cannot drive the terminal
    assert "bell\\x1b[2J" in out

    doc, _ = site.api("frame")
    assert json.loads(site.cli("show", "frame", "--json")) == doc


def test_a_damaged_parquet_file_is_described_not_raised(site: Site) -> None:
    doc, _ = site.api("damaged")
    assert doc["preview"]["kind"] == "unavailable"
    assert "no PAR1 marker" in doc["preview"]["note"]
    page = site.page("/artifacts/damaged/latest")
    assert re.search(r'id="ll-preview-note">[^<]*no PAR1 marker', page)
    assert "no PAR1 marker" in site.cli("show", "damaged")


# -- wide frames and long cells stay small ---------------------------------------------------


def test_a_frame_of_2000_columns_gives_a_small_preview(site: Site) -> None:
    doc, size = site.api("wide")
    p = doc["preview"]
    assert size < SMALL_DOC, size
    assert p["columns_total"] == 2000 and p["rows"] == 30
    assert [c["name"] for c in p["columns"]] == [f"c{i:04d}" for i in range(50)]
    assert p["head"][19] == ["19"] * 50 and len(p["head"]) == 20
    assert "showing 50 of 2000 columns" in p["truncated"]
    page = site.page("/artifacts/wide/latest")
    assert len(page.encode()) < SMALL_PAGE, len(page.encode())
    assert "c0049" in page and "c0050" not in page and "showing 50 of 2000 columns" in page
    out = site.cli("show", "wide")
    assert len(out) < SMALL_DOC and "note: showing 50 of 2000 columns" in out


def test_1mb_strings_are_cut_and_say_so(site: Site) -> None:
    doc, size = site.api("long")
    p = doc["preview"]
    assert size < SMALL_DOC, size
    assert len(p["head"]) == 20
    for row in p["head"]:
        assert [len(cell) for cell in row] == [preview.MAX_CELL] * 2
        assert row[0].startswith("A" * 150) and row[0].endswith("…")
    assert f"long cells cut to {preview.MAX_CELL} characters" in p["truncated"]
    page = site.page("/artifacts/long/latest")
    assert len(page.encode()) < SMALL_PAGE and "long cells cut to 200 characters" in page
    out = site.cli("show", "long")
    assert len(out) < SMALL_DOC and "note: long cells cut to 200 characters" in out


# -- arrays and pickles ----------------------------------------------------------------------


def test_npy_preview_dtype_and_shape(site: Site) -> None:
    doc, _ = site.api("array")
    assert doc["serializer"] == "npy" and doc["value_type"] == "numpy.ndarray"
    assert doc["libraries"]["numpy"] == np.__version__
    assert doc["preview"] == {"kind": "npy", "dtype": "float32", "shape": [2, 3, 4],
                              "fortran_order": False}  # fmt: skip
    page = site.page("/artifacts/array/latest")
    assert re.search(r"<dt>dtype</dt><dd[^>]*>float32</dd>", page)
    assert re.search(rf"<dt>Shape</dt><dd[^>]*>2 {TIMES} 3 {TIMES} 4</dd>", page)
    out = site.cli("show", "array")
    assert "numpy array: dtype float32, shape 2 x 3 x 4, C order" in out


def test_a_planted_pickle_is_never_opened_by_page_api_or_show(site: Site) -> None:
    trap = site.store.get("trap")
    assert trap.serializer == "cloudpickle"
    page = site.page("/artifacts/trap/latest")
    note = "not previewed: pickled values are never opened by the server"
    assert re.search(rf'id="ll-preview-note">{note}<', page)
    doc, _ = site.api("trap")
    assert doc["preview"] == {"kind": "pickle", "note": note}
    assert doc["value_type"] == f"{__name__}.Trap"
    assert note in site.cli("show", "trap")
    assert json.loads(site.cli("show", "trap", "--json"))["preview"]["kind"] == "pickle"
    assert not site.mark.exists()
    site.store.load("trap")  # the trap is real: loading it leaves the mark
    assert site.mark.exists()
    site.mark.unlink()


# -- hostile files, straight to values.preview -----------------------------------------------


class Counting(io.BytesIO):
    """A stored file that counts the bytes read from it."""

    read_bytes = 0

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        self.read_bytes += len(data)
        return data


def _of(serializer: str, data: bytes) -> tuple[dict[str, Any], int]:
    handle = Counting(data)
    return preview.of_file(serializer, handle, len(data)), handle.read_bytes


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, write_page_checksum=True)
    return out.getvalue()


def test_a_footer_declaring_too_much_is_refused_before_parsing() -> None:
    body = b"PAR1" + b"\0" * 1000
    for length in (preview.MAX_FOOTER + 1, 2**32 - 1):
        doc, read = _of("parquet", body + struct.pack("<I", length) + b"PAR1")
        assert doc["kind"] == "unavailable" and "a preview reads" in doc["note"]
        assert read == 8  # the length and the marker, nothing else
    doc, _ = _of("parquet", body + struct.pack("<I", 5000) + b"PAR1")
    assert doc["kind"] == "unavailable" and "more than the file holds" in doc["note"]


def test_damaged_parquet_gives_a_reason_never_an_exception() -> None:
    good = _parquet(pa.table({"a": list(range(1000)), "s": [f"v{i}" for i in range(1000)]}))
    assert _of("parquet", good)[0]["kind"] == "parquet"
    kinds = set()
    for at in range(0, len(good), 7):  # every seventh byte flipped in turn
        bad = bytearray(good)
        bad[at] ^= 0xFF
        doc, _ = _of("parquet", bytes(bad))
        kinds.add(doc["kind"])
        assert doc["kind"] in ("parquet", "unavailable")
        assert doc["kind"] == "parquet" or doc["note"]
    assert kinds == {"parquet", "unavailable"}
    doc, _ = _of("parquet", good[: len(good) // 2])
    assert doc["kind"] == "unavailable"
    doc, _ = _of("parquet", b"PAR")
    assert doc["kind"] == "unavailable" and "shorter than its markers" in doc["note"]


def test_a_bad_page_checksum_is_reported() -> None:
    good = _parquet(pa.table({"a": list(range(1000))}))
    bad = bytearray(good)
    bad[100] ^= 0x01  # inside the first data page
    doc, _ = _of("parquet", bytes(bad))
    assert doc["kind"] == "unavailable" and "could not be read as Parquet" in doc["note"]


def test_npy_headers_are_read_never_the_data() -> None:
    for array in (np.zeros((300, 400)), np.asfortranarray(np.ones((5, 7), dtype="<i2"))):
        out = io.BytesIO()
        np.save(out, array)
        doc, read = _of("npy", out.getvalue())
        assert doc == {
            "kind": "npy",
            "dtype": str(array.dtype),
            "shape": list(array.shape),
            "fortran_order": bool(array.flags.f_contiguous and array.ndim > 1),
        }
        assert read == len(out.getvalue()) - array.nbytes  # the header, to its last byte
    out = io.BytesIO()
    np.save(out, np.array([Trap(Path("never")), 1], dtype=object), allow_pickle=True)
    doc, read = _of("npy", out.getvalue())
    assert doc["dtype"] == "object" and doc["shape"] == [2] and "never loaded" in doc["note"]
    assert read <= 256
    with pytest.warns(UserWarning, match="format 3.0"):
        out = io.BytesIO()
        np.save(out, np.zeros(3, dtype=[("名前", "<i4")]))  # a UTF-8 header: version 3
    doc, _ = _of("npy", out.getvalue())
    assert doc["shape"] == [3] and "名前" in doc["dtype"]


def test_hostile_npy_headers_are_refused() -> None:
    magic = b"\x93NUMPY\x02\x00"
    doc, read = _of("npy", magic + struct.pack("<I", 2**31) + b"{")
    assert doc["kind"] == "unavailable" and "64 KiB" in doc["note"] and read == 12
    code = "{'descr': __import__('os').system('touch pwned'), 'fortran_order': False, 'shape': ()}"
    raw = code.encode().ljust(200) + b"\n"
    doc, _ = _of("npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(raw)) + raw)
    assert doc["kind"] == "unavailable" and not Path("pwned").exists()
    doc, _ = _of("npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", 500) + b"{")
    assert doc == {"kind": "unavailable", "note": "not a .npy file: it ends inside its header"}
    assert _of("npy", b"PK\x03\x04 a zip")[0]["kind"] == "unavailable"
    assert _of("npy", b"\x93NUMPY\x09\x00\x00\x00")[0]["kind"] == "unavailable"


def test_pickles_are_not_read_and_unknown_serializers_are_said(tmp_path: Path) -> None:
    assert _of("cloudpickle", b"anything") == (preview.PICKLE_PREVIEW, 0)
    doc, read = _of("zstd-pickle", b"anything")
    assert doc["kind"] == "unavailable" and "zstd-pickle" in doc["note"] and read == 0


def test_without_pyarrow_the_preview_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _parquet(pa.table({"a": [1]}))
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    doc, read = _of("parquet", data)
    assert doc["kind"] == "unavailable" and read == 0
    assert "pip install 'linea-luigi[arrow]'" in doc["note"]


# -- on S3: the footer and the first pages, never the whole file -----------------------------


@pytest.fixture
def proxy(endpoint: str) -> Iterator[TcpProxy]:
    relay = TcpProxy(int(endpoint.rsplit(":", 1)[1]))
    yield relay
    relay.cut()


def test_an_s3_preview_transfers_a_small_part_of_a_large_frame(
    bucket: str, endpoint: str, proxy: TcpProxy, sqlite_url: str
) -> None:
    root = f"s3://{bucket}/preview"
    endpoint_options = {"client_kwargs": {"endpoint_url": endpoint}}
    writer = ll.ArtifactStore(sqlite_url, root, endpoint_options, cache_dir="none")
    rng = np.random.default_rng(7)
    rows = 1_700_000
    df = pd.DataFrame({f"f{i}": rng.random(rows) for i in range(4)})
    art = writer.save(df, "big")
    assert art.serializer == "parquet" and art.size_bytes > 50 * 2**20
    proxied = {"client_kwargs": {"endpoint_url": f"http://127.0.0.1:{proxy.port}"}}
    catalog = Catalog(parse_db_url(sqlite_url), None, proxied)

    before = proxy.relayed[DOWN]
    doc = catalog.detail("big", "latest").preview
    transferred = proxy.relayed[DOWN] - before
    assert doc["kind"] == "parquet" and doc["rows"] == rows
    assert doc["head"][5] == [str(df[f"f{i}"][5]) for i in range(4)]
    assert 0 < transferred < 0.15 * art.size_bytes, (transferred, art.size_bytes)

    before = proxy.relayed[DOWN]
    reader = ll.ArtifactStore(sqlite_url, root, proxied)
    reader.read_bytes(art)
    assert proxy.relayed[DOWN] - before >= art.size_bytes  # the proxy sees whole reads
