"""Generated hostile input for the browser's routes, the CLI's arguments and the store's API.

Numbers (Unicode digits, huge, negative, floats, empty), globs (unbalanced
brackets, reversed ranges, long runs of ``*`` and ``?``) and names (control
characters, percent-encodings, 10,000 characters) go to a real
``linea-luigid``, to ``linea-luigi`` (in this process; the nastiest also
through the console script) and to the store's API, on SQLite and on
PostgreSQL. Whatever comes in, the answer is ours: no HTTP status of 500 or
more (the database is up, so not even a 503), no CLI run that ends in
"unexpected", a traceback or a database failure, no store call that raises
anything but our own "bad argument" or "not found", and each answer within
2 s. The store holds the names that made a regex filter backtrack for
minutes: 255 ``a``s and a realistic long name.

Hypothesis is derandomized, so CI runs the same examples every time. A run in
this process is cut off by a SIGALRM watchdog (a backtracking regex checks for
signals), so a regression fails in seconds instead of hanging.
"""

from __future__ import annotations

import http.client
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TypeVar
from urllib.parse import quote, urlencode

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from scheduler_support import LINEA_LUIGID, scheduler_env, scheduler_process, script

import linea_luigi as ll
from linea_luigi.cli import main as cli_main
from linea_luigi.db.engine import dispose_all
from linea_luigi.errors import ArtifactNotFoundError, InvalidArgumentError

T = TypeVar("T")

#: the most any one request, CLI run or store call may take
LIMIT_S = 2.0
#: when a request or an in-process run is given up (a hung one must not hang CI)
GIVE_UP_S = 3.0
#: tornado's limit on a request's head: past it, it closes the connection unanswered
MAX_HEAD = 65536

AS = "a" * 255
LONG_NAME = "warehouse.customer_churn.features_weekly_rollup.eu_west_1_v3"
SPACED = "Quarterly report \u2013 Zürich ☃ 2024"
SEEDED = ("model", "a/b", SPACED, LONG_NAME, AS)

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NO_SHRINKING = (Phase.explicit, Phase.reuse, Phase.generate)


def fill(store: ll.ArtifactStore) -> None:
    """The names and versions every fuzzed command runs against."""
    for name in (AS, LONG_NAME, SPACED, "a/b"):
        store.save(name, name)
    base = store.save(1, "model")
    store.save(2, "model", upstream=[base])
    store.save(3, "model")
    store.set_alias("model", 1, "production")


# -- strategies ------------------------------------------------------------------------------

#: superscript, Arabic-Indic, mathematical, fullwidth, N'Ko, Lao, circled, Roman, ½, ideographic
UNICODE_DIGITS = ("²", "٣", "\U0001d7d9", "\uff15", "߃", "໒", "①", "Ⅻ", "½", "\u3007")
ODD_NUMBERS = (
    *("", " ", "\t", "+1", "-1", "-0", "0x10", "1e9", "1_000", "1.0", "١٢", " 7 ", "1\x00"),
    *("nan", "inf", "-inf", "0" * 40 + "1", "9" * 20, "99999999999999999999999", "9" * 400),
    *(str(2**31), str(2**63 - 1), str(2**63), str(2**64)),
)


def numbers() -> st.SearchStrategy[str]:
    """Numbers as someone might type them in a URL or on a command line, most of them wrong."""
    return st.one_of(
        st.sampled_from(ODD_NUMBERS),
        st.integers(min_value=-3, max_value=5).map(str),
        st.integers().map(str),
        st.integers(min_value=2**31 - 2, max_value=2**80).map(str),
        st.floats().map(str),
        st.text(st.characters(categories=("Nd", "No", "Nl")), min_size=1, max_size=4),
        st.tuples(st.integers(0, 99), st.sampled_from(UNICODE_DIGITS)).map(
            lambda t: f"{t[0]}{t[1]}"
        ),
    )


def durations() -> st.SearchStrategy[str]:
    """``gc`` durations: a generated number and a unit, or a plain odd one."""
    units = st.sampled_from(("d", "h", "m", "s", "w", "", " d", "D", "x", "dd"))
    return st.one_of(
        st.tuples(numbers(), units).map("".join),
        st.sampled_from(("", "d", "99999999999d", "9" * 30 + "s", "1e308d", "-1d", "²d", "1.5h")),
    )


GLOB_PIECES = (
    *("*", "?", "[", "]", "[!", "[z-a]", "[a-z]", "[!a]", "[]", "[!]", "[]]", "[^a]", "[a-"),
    *("a", "c", "Z", "\\", "^", "$", ".", "(", ")", "|", "{2}", "+", "-", "%", "_", " ", "'"),
)


def globs() -> st.SearchStrategy[str]:
    """Name filters: bracket soup, regex syntax, and runs of wildcards that make a regex crawl."""
    return st.one_of(
        st.lists(st.sampled_from(GLOB_PIECES), max_size=40).map("".join),
        st.tuples(st.integers(1, 40), st.sampled_from(("*c", "c", "*", "?Z", "*a"))).map(
            lambda t: "*a" * t[0] + t[1]
        ),
        st.integers(1, 30).map(lambda k: "*?" * k + "*Z"),
        st.tuples(
            st.sampled_from(("*", "?", "*?", "[", "]", "[a-", "a*")), st.integers(1, 3000)
        ).map(lambda t: t[0] * t[1]),
        st.text(max_size=50),
    )


ODD_NAMES = (
    *("", " ", ".", "..", "/", "a/b", "../../etc/passwd", "%00", "%2F", "model%2F0", "\x00"),
    *("@", "@production", "model@production", "model@", "model@@x", "model@no-such", ":", "a:b"),
    *("model:1", "model\n", "\u202emodel", "x" * 256, "x" * 10_000, "é" * 10_000),
    "\U0001d7d9" * 3000,
)


def names() -> st.SearchStrategy[str]:
    """Artifact names and aliases: the stored ones, odd ones, any text, control characters."""
    return st.one_of(
        st.sampled_from(SEEDED),
        st.sampled_from(ODD_NAMES),
        st.text(max_size=30),
        st.text(st.characters(categories=("Cc", "Cf", "Zl", "Zp")), min_size=1, max_size=5),
        st.tuples(st.sampled_from(SEEDED), st.text(max_size=8)).map(lambda t: f"{t[0]}@{t[1]}"),
    )


#: path segments sent as they are: raw percent-encodings, not text to encode
RAW_SEGMENTS = ("%00", "%FF", "%C0%AF", "%2e%2e", "..", ".", "%", "%G1", "%E2%80%AE", "%ZZ")


def segment(text: str) -> str:
    return quote(text, safe="")


def seeded_segments() -> st.SearchStrategy[str]:
    return st.sampled_from(SEEDED).map(segment)


def name_segments() -> st.SearchStrategy[str]:
    return st.one_of(names().map(segment), st.sampled_from(RAW_SEGMENTS))


def version_segments() -> st.SearchStrategy[str]:
    return st.one_of(
        numbers().map(segment),
        st.sampled_from(("latest", "production", "LATEST", "0", "1", "2", "3")),
        name_segments(),
    )


QUERY_KEYS = ("q", "family", "after", "before", "limit", "depth")


@st.composite
def requests(
    draw: st.DrawFn,
    name: st.SearchStrategy[str],
    version: st.SearchStrategy[str],
    value: st.SearchStrategy[str],
    query: dict[str, st.SearchStrategy[str]] | None = None,
) -> str:
    """A GET path over every route: listing, one name or one version; page or API."""
    path = draw(st.sampled_from(("/artifacts", "/api/artifacts")))
    depth = draw(st.integers(0, 2))
    if depth >= 1:
        path += "/" + draw(name)
    if depth == 2:
        path += "/" + draw(version)
    if draw(st.booleans()):
        path += "/"
    args = draw(st.dictionaries(st.sampled_from(QUERY_KEYS), value, max_size=3))
    args.update({key: draw(strategy) for key, strategy in (query or {}).items()})
    encoded = urlencode(args, quote_via=quote)
    return f"{path}?{encoded}" if encoded else path


# -- HTTP -----------------------------------------------------------------------------------


@dataclass
class Site:
    port: int
    db_url: str
    storage: Path

    def check(self, path: str) -> None:
        """GET ``path``: answered in time, below 500, and without a traceback."""
        status, body, took = fetch(self.port, path)
        assert took < LIMIT_S, f"{path[:300]} took {took:.1f} s (status {status})"
        # the database is up: a 503 blames it for what was a bad request
        assert status != 503, (status, path[:300], gist(body))
        assert status < 500, (status, path[:300], gist(body))
        assert "Traceback" not in body, (path[:300], body[:2000])


def gist(body: str) -> str:
    """The text of a page (its styles and tags dropped), or a JSON body, shortened."""
    text = re.sub(r"<style.*?</style>|<[^>]+>", " ", body, flags=re.S)
    return " ".join(text.split())[:500]


def fetch(port: int, path: str) -> tuple[int, str, float]:
    """Status, body and wall time of one GET, given up after ``GIVE_UP_S``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=GIVE_UP_S)
    start = time.monotonic()
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode("utf-8", errors="replace")
        return response.status, body, time.monotonic() - start
    except TimeoutError:
        raise AssertionError(f"{path[:300]}: no answer within {GIVE_UP_S} s") from None
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        # closed with a FIN or, while the client still sends, a reset: only for a huge head
        assert len(path) > MAX_HEAD - 1000, f"{path[:300]}: connection closed, no answer"
        return 431, "(tornado closed the connection: request head too large)", 0.0
    finally:
        conn.close()


def serve(tmp: Path, db_url: str, storage: Path) -> Iterator[Site]:
    """A ``linea-luigid`` whose browser reads ``db_url``."""
    cfg = tmp / "luigi.cfg"
    cfg.write_text(
        f"[artifact_store]\ndb_connection = {db_url}\nartifact_storage_dir = {storage}\n"
    )
    with scheduler_process(LINEA_LUIGID, tmp, scheduler_env(tmp, cfg)) as port:
        yield Site(port, db_url, storage)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("fuzz")
    db_url, storage = f"sqlite:///{tmp / 'db.sqlite'}", tmp / "artifacts"
    fill(ll.ArtifactStore(db_url, str(storage)))
    yield from serve(tmp, db_url, storage)


def test_the_seeded_store_is_served(site: Site) -> None:
    """The fuzzing below reaches real pages: the seeded names answer 200."""
    for name in SEEDED:
        for path in (f"/artifacts/{segment(name)}", f"/api/artifacts/{segment(name)}/latest"):
            status, body, _ = fetch(site.port, path)
            assert status == 200, (path, body[:300])
    status, body, _ = fetch(site.port, "/api/artifacts/model/production")
    assert status == 200 and '"version": 1' in body


@settings(FUZZ, max_examples=1000)
@given(path=requests(seeded_segments(), version_segments(), numbers()))
@example(path="/artifacts/model/%C2%B2")  # the cases issue 13 reported first
@example(path="/artifacts/model?before=%C2%B2")
@example(path="/artifacts?limit=%C2%B2")
@example(path="/artifacts/model/0?depth=%C2%B2")
@example(path="/api/artifacts/model/99999999999999999999999")
@example(path="/api/artifacts/model?before=99999999999999999999999")
def test_routes_with_generated_numbers(site: Site, path: str) -> None:
    site.check(path)


@settings(FUZZ, max_examples=1000)
@given(path=requests(name_segments(), version_segments(), names()))
def test_routes_with_generated_names(site: Site, path: str) -> None:
    site.check(path)


# a pattern that overran leaves the server busy, so a shrunk example would blame the next,
# innocent request; test_cli_with_generated_globs shrinks the same patterns in-process
@settings(FUZZ, max_examples=500, phases=NO_SHRINKING)
@given(path=requests(seeded_segments(), version_segments(), globs(), {"q": globs()}))
@example(path="/api/artifacts?q=%5Bz-a%5D")
@example(path="/api/artifacts?q=*a*a*a*a*c")
@example(path="/api/artifacts?q=" + segment("*?*?*?*?*?*?*Z"))
def test_name_filters_with_generated_globs(site: Site, path: str) -> None:
    site.check(path)


@settings(FUZZ, max_examples=200, phases=NO_SHRINKING)
@given(
    path=requests(
        seeded_segments(), version_segments(), st.one_of(numbers(), globs()), {"q": globs()}
    )
)
def test_postgresql_browser_with_generated_globs_and_numbers(pg_site: Site, path: str) -> None:
    pg_site.check(path)


@pytest.fixture
def pg_site(pg_url: str, tmp_path: Path) -> Iterator[Site]:
    """A ``linea-luigid`` on a filled PostgreSQL database (``pg_url`` fails in CI without one)."""
    fill(ll.ArtifactStore(pg_url, str(tmp_path / "artifacts")))
    yield from serve(tmp_path, pg_url, tmp_path / "artifacts")


# -- CLI ------------------------------------------------------------------------------------


class Overtime(BaseException):
    """The watchdog's interruption of a run that went on far too long."""


@contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Interrupt the main thread after ``seconds``, and every 0.2 s after (retries too).

    A backtracking regex checks for signals, so even a match SQLite runs is cut
    short (SQLite then reports its function as failed: the elapsed time tells).
    """

    def fire(signum: int, frame: FrameType | None) -> None:
        raise Overtime(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.2)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def timed(call: Callable[[], T]) -> tuple[T, float]:
    """``call()`` and its wall time, given up after ``GIVE_UP_S``."""
    start = time.monotonic()
    try:
        with watchdog(GIVE_UP_S):
            result = call()
    except Overtime:
        dispose_all()  # the interrupted call may have left a connection behind
        raise AssertionError(f"ran over {GIVE_UP_S} s") from None
    return result, time.monotonic() - start


#: what ``db/engine.py`` says of a database that failed; it is up, so never for an argument
BLAMES_THE_DATABASE = re.compile(r"artifact database .* is (unavailable|locked)|Database error on")


def check_cli(argv: list[str], code: int, output: str, took: float) -> None:
    """What every run of ``linea-luigi`` must do, whatever its arguments."""
    shown = [a[:200] for a in argv]
    assert took < LIMIT_S, f"linea-luigi {shown} took {took:.1f} s: {output[-500:]}"
    assert "unexpected" not in output, (shown, output[-1000:])
    assert "Traceback" not in output, (shown, output[-2000:])
    assert not BLAMES_THE_DATABASE.search(output), (shown, output[-1000:])
    assert code in (0, 1, 2), (shown, code, output[-1000:])


@dataclass
class Cli:
    """``linea-luigi`` in this process, on one store."""

    db_url: str
    storage: Path

    def run(self, *argv: str) -> Result:
        args = ["--db-url", self.db_url, "--storage-dir", str(self.storage), *argv]
        result, took = timed(lambda: CliRunner().invoke(cli_main, args))
        check_cli(list(argv), result.exit_code, result.output, took)
        assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
        return result


@pytest.fixture(scope="module")
def cli(site: Site) -> Cli:
    """The CLI on the store the server reads (only reading commands run here)."""
    return Cli(site.db_url, site.storage)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A throwaway store for the commands that write: ``delete``, ``tag`` and ``untag``."""
    tmp = tmp_path_factory.mktemp("scratch")
    db_url, storage = f"sqlite:///{tmp / 'db.sqlite'}", tmp / "artifacts"
    fill(ll.ArtifactStore(db_url, str(storage)))
    return Cli(db_url, storage)


def specs() -> st.SearchStrategy[str]:
    """``NAME[:VERSION]`` and ``NAME@ALIAS`` with generated parts."""
    return st.one_of(
        names(),
        st.tuples(names(), numbers()).map(":".join),
        st.tuples(st.sampled_from(SEEDED), numbers()).map(":".join),
    )


def command(*parts: str | st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    """An argument list: fixed words and generated values, in order."""
    return st.tuples(*(st.just(p) if isinstance(p, str) else p for p in parts)).map(list)


def reading_commands() -> st.SearchStrategy[list[str]]:
    return st.one_of(
        command("get", specs()),
        command("show", specs()),
        command("show", specs(), "--json"),
        command("versions", names()),
        command("lineage", specs(), "--depth", numbers()),
        command("lineage", specs(), "--downstream"),
        command("gc", "--dry-run", "--keep-last", numbers(), "--older-than", durations()),
        command("gc", "--dry-run", "--older-than", durations(), "--grace", durations()),
    )


def writing_commands() -> st.SearchStrategy[list[str]]:
    return st.one_of(
        command("delete", names(), "--version", numbers(), "--yes"),
        command("delete", st.sampled_from(SEEDED), "--version", numbers(), "--yes"),
        command("tag", specs(), names()),
        command("untag", names(), names()),
    )


def test_the_cli_reaches_the_seeded_store(cli: Cli, scratch: Cli) -> None:
    """The fuzzing below runs real commands: on the seeded names they succeed."""
    listed = cli.run("list", "*").output
    assert all(name in listed for name in SEEDED if name != AS), listed
    assert cli.run("get", "model@production").output.strip() == "2"
    lineage = cli.run("lineage", "model:1", "--depth", "1").output.splitlines()
    assert lineage == ["model v1", "└── model v0"]
    assert "deleted 1 version" in scratch.run("delete", "model", "--version", "2", "--yes").output
    replenish(scratch)


@settings(FUZZ, max_examples=1000)
@given(argv=reading_commands())
@example(argv=["get", "a/b:99999999999999999999"])
@example(argv=["gc", "--dry-run", "--older-than", "99999999999d"])
def test_cli_with_generated_arguments(cli: Cli, argv: list[str]) -> None:
    cli.run(*argv)


@settings(FUZZ, max_examples=400)
@given(pattern=globs(), as_json=st.booleans())
@example(pattern="[z-a]", as_json=False)
@example(pattern="*a*a*a*a*c", as_json=False)
def test_cli_with_generated_globs(cli: Cli, pattern: str, as_json: bool) -> None:
    cli.run("list", pattern, *(["--json"] if as_json else []))


@settings(FUZZ, max_examples=300)
@given(argv=writing_commands())
def test_cli_writes_with_generated_arguments(scratch: Cli, argv: list[str]) -> None:
    try:
        scratch.run(*argv)
    finally:
        replenish(scratch)


def replenish(cli: Cli) -> None:
    """Save again what a fuzzed ``delete`` removed, so every example meets the same names."""
    store = ll.ArtifactStore(cli.db_url, str(cli.storage))
    for name in SEEDED:
        while len(store.versions(name)) < (3 if name == "model" else 1):
            store.save(name, name)


@settings(FUZZ, max_examples=200)
@given(
    argv=st.one_of(
        command("list", globs()),
        command("get", st.tuples(st.sampled_from(SEEDED), numbers()).map(":".join)),
        command("lineage", "model", "--depth", numbers()),
        command("versions", names()),
    )
)
def test_cli_on_postgresql_with_generated_globs_and_numbers(pg_cli: Cli, argv: list[str]) -> None:
    pg_cli.run(*argv)


@pytest.fixture
def pg_cli(pg_url: str, tmp_path: Path) -> Cli:
    fill(ll.ArtifactStore(pg_url, str(tmp_path / "artifacts")))
    return Cli(pg_url, tmp_path / "artifacts")


#: the nastiest arguments, through the installed console script (real stdout and stderr)
NASTY = [
    ["list", "[z-a]"],
    ["list", "*a*a*a*a*a*a*a*a*a*c"],
    ["list", "*?*?*?*?*?*?*?*Z"],
    ["get", "model:99999999999999999999"],
    ["get", "model:²"],
    ["show", "x" * 10_000],
    ["lineage", "model:1", "--depth", "٣"],
    ["gc", "--dry-run", "--older-than", "99999999999d"],
]

Console = Callable[[list[str]], tuple[int, str, float]]


@pytest.fixture(scope="module")
def console(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Console:
    """Run the console script on the site's store: exit code, stdout + stderr, and the
    seconds beyond the run time of a trivial command (the imports alone take about 1 s)."""
    base = [*script("linea-luigi", "linea_luigi.cli as m; m.main()")]
    base += ["--db-url", site.db_url, "--storage-dir", str(site.storage)]
    tmp = tmp_path_factory.mktemp("console")
    (tmp / "luigi.cfg").write_text("")
    env = scheduler_env(tmp, tmp / "luigi.cfg")  # an empty luigi.cfg, no LINEA_LUIGI_* variable

    def timed_run(argv: list[str]) -> tuple[int, str, float]:
        start = time.monotonic()
        try:
            done = subprocess.run(
                [*base, *argv], capture_output=True, text=True, env=env, cwd=tmp, timeout=30
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(f"linea-luigi {argv[:3]} ran over 30 s") from None
        return done.returncode, done.stdout + done.stderr, time.monotonic() - start

    code, output, startup = timed_run(["versions", "model"])
    assert code == 0, output

    def run(argv: list[str]) -> tuple[int, str, float]:
        code, output, took = timed_run(argv)
        return code, output, took - startup

    return run


@pytest.mark.parametrize("argv", NASTY, ids=lambda argv: " ".join(argv)[:40])
def test_console_script_with_the_nastiest_arguments(console: Console, argv: list[str]) -> None:
    code, output, took = console(argv)
    check_cli(argv, code, output, took)


# -- the store's API, on SQLite and PostgreSQL ------------------------------------------------


def expect_ours(call: Callable[[], object]) -> None:
    """``call`` returns, or raises our "bad argument" or "not found", within the limit."""

    def guarded() -> Exception | None:
        try:
            call()
        except (InvalidArgumentError, ArtifactNotFoundError):
            pass
        except Exception as err:
            return err
        return None

    error, took = timed(guarded)
    assert took < LIMIT_S, f"took {took:.1f} s" + (f", then {error!r}" if error else "")
    if error is not None:
        raise AssertionError(f"not ours: {type(error).__name__}: {error}") from error


@pytest.fixture(params=["sqlite", "postgresql"])
def api_store(request: pytest.FixtureRequest, tmp_path: Path) -> ll.ArtifactStore:
    """A filled store on each backend (PostgreSQL: the ``pg_url`` fixture, failing in CI)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    else:
        url = request.getfixturevalue("pg_url")
    store = ll.ArtifactStore(url, str(tmp_path / "artifacts"))
    fill(store)
    return store


@settings(FUZZ, max_examples=150)
@given(
    pattern=globs(),
    name=st.one_of(st.sampled_from(SEEDED), names()),
    number=st.one_of(st.integers(), st.integers(min_value=2**62, max_value=2**80)),
)
@example(pattern="[z-a]", name="model", number=2**63)
@example(pattern="*a*a*a*a*c", name="x", number=2**70)
def test_store_api_with_generated_globs_and_numbers(
    api_store: ll.ArtifactStore, pattern: str, name: str, number: int
) -> None:
    store = api_store
    expect_ours(lambda: store.list(pattern))
    expect_ours(lambda: store.list(pattern, limit=number))
    expect_ours(lambda: store.list(limit=5, offset=number))
    expect_ours(lambda: store.get(name, number))
    expect_ours(lambda: store.exists(name, number))
    expect_ours(lambda: store.upstream(name, number))
    expect_ours(lambda: store.set_alias(name, number, "fuzzed"))
