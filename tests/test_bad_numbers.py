"""Bad numbers are refused as bad input, never as a raw error (issue 13, defects 5 and 6).

``str.isdigit()`` accepts '²' and '٣', ``int()`` accepts ' 1', '+1' and '1_0', and
a number beyond the database's column type overflowed deep in the driver. Now a
number is ASCII digits within the range the database holds (versions: PostgreSQL's
int4; limits, offsets, counts: BIGINT; durations: 36500 days), else:

- the Python API raises ``InvalidArgumentError`` naming the range;
- the CLI prints one line without "unexpected": status 1 for a version or a
  duration (our parser, like "Invalid version '1.5'"), status 2 for an integer
  option click reads (``--depth``, ``--keep-last``, like ``--depth -1``);
- the browser answers 400. A version path segment that is not digits at all
  ('-1', '1.5', '0x10') may be an alias, so an unknown one stays a 404; an empty
  query value means "absent", as from an empty form field.

The HTTP cases run against a real ``linea-luigid``: one module-scoped server on
SQLite and one on PostgreSQL.
"""

from __future__ import annotations

import itertools
import json
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from scheduler_support import LINEA_LUIGID, get, scheduler_env, scheduler_process

import linea_luigi as ll
from linea_luigi.cli import main

#: the largest version: ``ll_artifacts.version`` is an INTEGER, int4 on PostgreSQL
MAX_VERSION = 2**31 - 1
#: the largest limit, offset or count: a BIGINT
MAX_COUNT = 2**63 - 1
HUGE = "99999999999999999999999"
#: text that is not a whole number in ASCII digits (or is one out of every range)
BAD_TEXT = ["²", "٣", HUGE, str(MAX_VERSION + 1), "-1", "1.5", "+1", " 1", "0x10", "1_0"]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def filled(db_url: str, storage_dir: Path) -> ll.ArtifactStore:
    store = ll.ArtifactStore(db_url, str(storage_dir))
    first = store.save(1, "x")
    store.save(2, "x", upstream=[first])
    return store


# -- the shared parser --------------------------------------------------------------------


def test_parse_count_takes_ascii_digits_in_range_only() -> None:
    from linea_luigi.names import MAX_VERSION as max_version
    from linea_luigi.names import check_count, parse_count

    assert max_version == MAX_VERSION
    assert parse_count("0", "n") == 0 and parse_count("007", "n") == 7
    assert parse_count(str(MAX_COUNT), "n") == MAX_COUNT
    with pytest.raises(ll.InvalidArgumentError, match=f"from 0 to {MAX_COUNT}"):
        parse_count(str(MAX_COUNT + 1), "n")
    assert parse_count(5, "n", minimum=1, maximum=5) == 5
    assert parse_count(np.int64(3), "n") == 3
    assert check_count(np.int64(3), "n") == 3
    # Python refuses int() of 4301+ digits; that must be "out of range", not a ValueError
    for bad in [*BAD_TEXT, "", "9" * 5000, "١٢", "\uff11", 1.0, None, True, MAX_VERSION + 1]:
        with pytest.raises(ll.InvalidArgumentError, match=r"^n must be a whole number") as info:
            parse_count(bad, "n", maximum=MAX_VERSION)
        assert len(str(info.value)) < 200  # a 5000-digit number is not echoed whole
    with pytest.raises(ll.InvalidArgumentError, match="from 1 to 5"):
        parse_count("6", "n", minimum=1, maximum=5)
    with pytest.raises(ll.InvalidArgumentError, match="ASCII digits"):
        parse_count("²", "n")
    with pytest.raises(ll.InvalidArgumentError):
        check_count("3", "n")  # the Python API takes ints, never text


# -- the Python API -----------------------------------------------------------------------

CALLS: dict[str, Callable[[ll.ArtifactStore, Any], Any]] = {
    "get": lambda s, v: s.get("x", v),
    "exists": lambda s, v: s.exists("x", v),
    "load": lambda s, v: s.load("x", v),
    "delete": lambda s, v: s.delete("x", v),
    "set_alias": lambda s, v: s.set_alias("x", v, "prod"),
    "upstream": lambda s, v: s.upstream("x", v),
    "downstream": lambda s, v: s.downstream("x", v),
}


def test_versions_beyond_the_column_are_invalid_arguments(filled: ll.ArtifactStore) -> None:
    for call, version in itertools.product(CALLS, (MAX_VERSION + 1, 2**63, 2**70, np.int64(2**62))):
        with pytest.raises(ll.InvalidArgumentError, match=f"at most {MAX_VERSION}") as info:
            CALLS[call](filled, version)
        assert repr(version) in str(info.value), call
    # the largest version is a version: not found, not refused
    assert filled.exists("x", MAX_VERSION) is False
    for call in CALLS.keys() - {"exists"}:
        with pytest.raises(ll.ArtifactNotFoundError, match=f"no version {MAX_VERSION}"):
            CALLS[call](filled, MAX_VERSION)
    assert [a.version for a in filled.versions("x")] == [0, 1]
    assert filled.aliases("x") == {}


def test_limits_and_offsets_beyond_bigint_are_invalid_arguments(filled: ll.ArtifactStore) -> None:
    for bad in (MAX_COUNT + 1, 2**70):
        with pytest.raises(ll.InvalidArgumentError, match=f"limit .*{MAX_COUNT}"):
            filled.list(limit=bad)
        with pytest.raises(ll.InvalidArgumentError, match=f"offset .*{MAX_COUNT}"):
            filled.list(offset=bad)
        with pytest.raises(ll.InvalidArgumentError, match=f"page_size .*{MAX_COUNT}"):
            list(filled.iter_list(page_size=bad))
        with pytest.raises(ll.InvalidArgumentError, match=f"keep_last .*{MAX_COUNT}"):
            filled.gc(keep_last=bad)
    # the largest of each is accepted by the database itself
    assert [a.version for a in filled.list(limit=MAX_COUNT)] == [1]
    assert filled.list(offset=MAX_COUNT) == []
    assert [a.name for a in filled.iter_list(page_size=MAX_COUNT)] == ["x"]
    assert filled.gc(keep_last=MAX_COUNT).versions == []


@pytest.mark.parametrize("what", ["older_than", "grace"])
def test_durations_beyond_a_century_or_in_other_digits_are_invalid(
    filled: ll.ArtifactStore, what: str
) -> None:
    bad: list[Any] = [
        "99999999999d",  # OverflowError: Python int too large to convert to C int
        "9" * 400 + "s",  # a float infinity
        "36501d",
        "5215w",
        "٣d",  # '\d' matched Arabic-Indic digits
        timedelta(days=36501),
        timedelta.max,  # now - timedelta.max is before year 1
    ]
    for value in bad:
        with pytest.raises(ll.InvalidArgumentError, match=f"{what}.*36500 days"):
            filled.gc(**{what: value})
    assert filled.gc(**{what: "36500d"}).versions == []
    assert filled.gc(**{what: timedelta(days=36500)}).versions == []
    assert [a.version for a in filled.versions("x")] == [0, 1]


# -- the CLI ------------------------------------------------------------------------------


def _cli(store: ll.ArtifactStore, db_url: str, *argv: str) -> Result:
    root = str(store.values.root_uri)
    return CliRunner().invoke(main, ["--db-url", db_url, "--storage-dir", root, *argv])


def _one_line(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output and "unexpected" not in result.output
    lines = result.stderr.strip().splitlines()
    if code == 1:
        assert len(lines) == 1, result.stderr
    return lines[-1]


def test_cli_versions_out_of_range_are_one_line(filled: ll.ArtifactStore, db_url: str) -> None:
    filled.save(0, "a/b")
    for spec in ("a/b:99999999999999999999", f"x:{MAX_VERSION + 1}", "x:²", "x:٣"):
        for argv in (["get", spec], ["show", spec], ["lineage", spec], ["tag", spec, "prod"]):
            line = _one_line(_cli(filled, db_url, *argv), 1)
            assert line.startswith("Error: Bad version in") and "ASCII digits" in line, line
    for version in (HUGE, str(MAX_VERSION + 1), "²", "٣"):
        line = _one_line(_cli(filled, db_url, "delete", "x", "--version", version, "-y"), 1)
        assert "version must be a whole number from 0 to 2147483647" in line, line
    assert filled.aliases("x") == {} and [a.version for a in filled.versions("x")] == [0, 1]


def test_cli_integer_options_are_usage_errors(filled: ll.ArtifactStore, db_url: str) -> None:
    for value in (HUGE, str(MAX_COUNT + 1), "²", "٣", "+1", " 1", "1_0", "1.5", "-1", ""):
        for argv in (["lineage", "x", "--depth", value], ["gc", "--keep-last", value]):
            line = _one_line(_cli(filled, db_url, *argv), 2)
            assert line.startswith("Error: Invalid value for '--"), line
    assert _cli(filled, db_url, "lineage", "x", "--depth", str(MAX_COUNT)).exit_code == 0


def test_cli_durations_out_of_range_are_one_line(filled: ll.ArtifactStore, db_url: str) -> None:
    for option in ("--older-than", "--grace"):
        for value in ("99999999999d", "36501d", "٣d"):
            line = _one_line(_cli(filled, db_url, "gc", option, value), 1)
            assert "36500 days" in line, line
    assert [a.version for a in filled.versions("x")] == [0, 1]


# -- the browser over HTTP -------------------------------------------------------------------


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


def _cases() -> list[tuple[str, int]]:
    """(path, expected status) for every bad number in every place the browser reads one."""
    cases: list[tuple[str, int]] = []
    for text in BAD_TEXT:
        is_number = text.isdigit()  # digits of any script are a version, never an alias
        for prefix in ("", "/api"):
            cases.append((f"{prefix}/artifacts/x/{_q(text)}", 400 if is_number else 404))
            cases.append((f"{prefix}/artifacts/x?before={_q(text)}", 400))
            cases.append((f"{prefix}/artifacts?limit={_q(text)}", 400))
            cases.append((f"{prefix}/artifacts/x?limit={_q(text)}", 400))
        cases.append((f"/artifacts/x/0?depth={_q(text)}", 400))
    for prefix in ("", "/api"):
        cases.append((f"{prefix}/artifacts/x/{MAX_VERSION}", 404))  # a version, just not saved
        cases.append((f"{prefix}/artifacts/x?before={MAX_VERSION}", 200))
        cases.append((f"{prefix}/artifacts/x?before=&limit=", 200))  # empty: as if absent
    cases.append(("/artifacts/x/1?depth=", 200))
    return cases


CASES = _cases()


def _check(port: int, path: str, status: int) -> str | None:
    """None if ``path`` answers ``status`` as a proper page, else what was wrong."""
    got, body = get(port, path)
    if got != status:
        return f"{path}: {got} {body[:300]}"
    if status == 400:
        if path.startswith("/api/"):
            said = json.loads(body)["error"]
        elif 'id="ll-error"' not in body:
            return f"{path}: 400 without the error page"
        else:
            said = body
        if "must be a whole number" not in said:
            return f"{path}: 400 that does not say what is accepted: {said[:300]}"
    return None


def _serve(tmp: Path, db_url: str) -> Any:
    store = ll.ArtifactStore(db_url, str(tmp / "artifacts"))
    first = store.save(1, "x")
    store.save(2, "x", upstream=[first])
    cfg = tmp / "luigi.cfg"
    cfg.write_text(f"[artifact_store]\ndb_connection = {db_url}\n")
    return scheduler_process(LINEA_LUIGID, tmp, scheduler_env(tmp, cfg))


@pytest.fixture(scope="module")
def sqlite_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp = tmp_path_factory.mktemp("bad-numbers")
    with _serve(tmp, f"sqlite:///{tmp / 'db.sqlite'}") as port:
        yield port


@pytest.mark.parametrize(("path", "status"), CASES, ids=[p for p, _ in CASES])
def test_http_bad_numbers_sqlite(sqlite_port: int, path: str, status: int) -> None:
    assert _check(sqlite_port, path, status) is None


def test_http_bad_numbers_postgresql(tmp_path: Path, pg_url: str) -> None:
    with _serve(tmp_path, pg_url) as port:
        wrong = [w for path, status in CASES if (w := _check(port, path, status)) is not None]
    assert wrong == []
