"""The command line speaks its own terms: advice as commands, declining is not failing, plain JSON.

Every error whose next step is a call carries it as ``Advice``; through the CLI
the message must name the ``linea-luigi`` command and no Python call, and the
command it names must run. ``show --json`` is the document of
``/api/artifacts/<name>/<version>`` (compared against a real ``linea-luigid``),
aliases show in ``versions`` and ``show``, and the README's command block runs
as written against a store the example pipeline filled.
"""

from __future__ import annotations

import json
import pickle
import re
import shlex
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from scheduler_support import LINEA_LUIGID, get, scheduler_env, scheduler_process
from test_cli import SCRIPT
from test_example import ROOT, Sandbox

import linea_luigi as ll
from linea_luigi.cli import main

#: advice written as Python: ``store.x(``, ``ll.x(``, ``options.set(``, ``f()``, ``X(k=...)``,
#: ``<version>`` (the store's repr, naming the database, is not advice and may show)
PYTHON_CALL = re.compile(r"\b(store|ll|options)\.\w+\(|\w+\(\)|\w+\(\w+=\.\.\.\)|<version>")
#: a command the message tells a shell user to run
COMMAND = re.compile(r"`(linea-luigi [^`]+)`")


class Cli:
    """A store on SQLite and a folder, and the command line pointed at it."""

    def __init__(self, store: ll.ArtifactStore, args: list[str]) -> None:
        self.store = store
        self.args = args

    def run(self, *argv: str, input: str | None = None) -> Result:
        return CliRunner().invoke(main, [*self.args, *argv], input=input)

    def error(self, *argv: str) -> str:
        """The one error line of a command that must fail with status 1."""
        result = self.run(*argv)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        [line] = result.stderr.strip().splitlines()
        return line

    def follow(self, message: str, **placeholders: str) -> list[Result]:
        """Run every command ``message`` names (placeholders filled in), as a user would."""
        commands = COMMAND.findall(message)
        assert commands, message
        done = []
        for command in commands:
            words = shlex.split(command)[1:]
            for key, value in placeholders.items():
                words = [w.replace(key, value) for w in words]
            done.append(self.run(*words))
        return done


@pytest.fixture
def cli(sqlite_url: str, storage_dir: Path) -> Cli:
    store = ll.ArtifactStore(db_url=sqlite_url, storage_dir=str(storage_dir))
    store.save(1, "model")
    store.save(2, "model")
    store.save("text", "other")
    store.save(3, "my model")
    return Cli(store, ["--db-url", sqlite_url, "--storage-dir", str(storage_dir)])


def in_cli_terms(message: str, *commands: str) -> None:
    """``message`` names each of ``commands`` and no Python call."""
    for command in commands:
        assert f"`{command}" in message, (command, message)
    assert PYTHON_CALL.search(message) is None, message


# -- errors in CLI terms -----------------------------------------------------------------------


def test_unknown_name_points_at_list(cli: Cli) -> None:
    for argv in (["get", "nonexistent"], ["show", "modle:0"], ["versions", "nope"]):
        line = cli.error(*argv)
        in_cli_terms(line, "linea-luigi list`")
    assert "Did you mean 'model'" in cli.error("show", "modle:0")
    [listed] = cli.follow(cli.error("get", "nonexistent"))
    assert listed.exit_code == 0 and "model" in listed.stdout
    with pytest.raises(ll.ArtifactNotFoundError, match=r"`store\.list\(\)` shows every name\."):
        cli.store.get("nonexistent")  # the Python message keeps the Python call


def test_missing_alias_points_at_tag(cli: Cli) -> None:
    line = cli.error("get", "model@prod")
    in_cli_terms(line, "linea-luigi tag model:VERSION prod`")
    [tagged] = cli.follow(line, VERSION="1")
    assert tagged.exit_code == 0, tagged.output
    assert cli.store.get("model@prod").version == 1
    with pytest.raises(
        ll.ArtifactNotFoundError, match=r"store\.set_alias\('other', <version>, 'prod'\)\."
    ):
        cli.store.get("other@prod")


def test_refused_delete_points_at_tag_and_untag(cli: Cli) -> None:
    cli.store.set_alias("my model", 0, "production")
    line = cli.error("delete", "my model", "--version", "0", "--yes")
    in_cli_terms(
        line,
        "linea-luigi tag 'my model:VERSION' production`",
        "linea-luigi untag 'my model' production`",
    )
    assert "Refusing to delete" in line and "my model@production -> v0" in line
    cli.store.save(4, "my model")
    moved, removed = cli.follow(line, VERSION="1")
    assert moved.exit_code == 0 and "-> version 1" in moved.stdout
    assert removed.exit_code == 0 and "removed my model@production" in removed.stdout
    assert "deleted 1 version" in cli.run("delete", "my model", "--version", "0", "-y").stdout
    with pytest.raises(ll.ArtifactInUseError, match=r"store\.remove_alias\('model', 'x'\)"):
        cli.store.set_alias("model", 0, "x")
        cli.store.delete("model", 0)


def test_deleting_through_an_alias_names_the_aliased_version(cli: Cli) -> None:
    cli.store.set_alias("model", 1, "production")
    for version in ("latest", "all"):
        line = cli.error("delete", "model@production", "--version", version, "-y")
        in_cli_terms(line, "linea-luigi untag model production`")
    line = cli.error("delete", "model@production", "--version", "0", "-y")
    assert "names one version through its alias" in line
    assert "NAME@ALIAS alone" in line and "pass no version" not in line
    assert PYTHON_CALL.search(line) is None
    assert [a.version for a in cli.store.versions("model")] == [0, 1]
    with pytest.raises(ll.InvalidArgumentError, match="pass no version or key"):
        cli.store.get("model@production", 0)


@pytest.mark.parametrize(
    ("line", "key"),
    [("checksum = md5", "checksum"), ("serializer = json", "serializer")],
)
def test_bad_settings_point_at_luigi_cfg(
    luigi_cfg: Callable[[str], Path], sqlite_url: str, storage_dir: Path, line: str, key: str
) -> None:
    luigi_cfg(
        f"[artifact_store]\ndb_connection = {sqlite_url}\n"
        f"artifact_storage_dir = {storage_dir}\n{line}\n"
    )
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 1, result.output
    [message] = result.stderr.strip().splitlines()
    assert f"([artifact_store] {key} in luigi.cfg)" in message
    assert "options.set" not in message and PYTHON_CALL.search(message) is None
    doctor = CliRunner().invoke(main, ["doctor"])
    assert doctor.exit_code == 1 and "options.set" not in doctor.output
    with pytest.raises(ll.ConfigError, match=rf"options\.set\('{key}', \.\.\.\)"):
        ll.artifact_store()


def test_value_without_a_plain_pickle_points_at_get_without_o(cli: Cli, tmp_path: Path) -> None:
    cli.store.save(lambda x: x + 1, "my fn")  # cloudpickle stores it; plain pickle cannot
    line = cli.error("get", "my fn", "-o", str(tmp_path / "fn.pkl"))
    in_cli_terms(line, "linea-luigi get 'my fn:0'` without -o")
    [printed] = cli.follow(line)
    assert printed.exit_code == 0 and "lambda" in printed.stdout
    assert not (tmp_path / "fn.pkl").exists()


def test_advice_survives_pickling(cli: Cli) -> None:
    """A worker's error sent to another process still knows both forms."""
    with pytest.raises(ll.ArtifactNotFoundError) as caught:
        cli.store.get("nonexistent")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert str(copy) == str(caught.value)
    assert copy.for_cli() == caught.value.for_cli() != str(copy)


# -- declining a confirmation ------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0", "latest", "all"])
def test_declining_deletes_nothing_and_exits_0(cli: Cli, version: str) -> None:
    for answer in ("n\n", "\n", "no\n"):
        result = cli.run("delete", "model", "--version", version, input=answer)
        assert result.exit_code == 0, result.output
        assert result.stdout == "Nothing deleted.\n"
        assert "Error" not in result.stderr and "Delete " in result.stderr
    assert [a.version for a in cli.store.versions("model")] == [0, 1]


# -- aliases in versions and show --------------------------------------------------------------


def test_versions_and_show_show_aliases(cli: Cli) -> None:
    cli.store.set_alias("model", 0, "production")
    cli.store.set_alias("model", 0, "canary")
    cli.store.set_alias("model", 1, "staging")
    table = cli.run("versions", "model").stdout.splitlines()
    assert table[0].split() == ["NAME", "VERSION", "CREATED", "SIZE", "TASK", "ALIASES"]
    assert [(row.split()[1], row.split()[-1]) for row in table[1:]] == [
        ("0", "canary,production"),
        ("1", "staging"),
    ]
    other = cli.run("versions", "other").stdout.splitlines()[1]
    assert other.split()[-1] == "-"
    docs = json.loads(cli.run("versions", "model", "--json").stdout)
    assert isinstance(docs, list)
    assert [(d["version"], d["aliases"]) for d in docs] == [
        (0, ["canary", "production"]),
        (1, ["staging"]),
    ]
    assert "aliases:      canary, production\n" in cli.run("show", "model:0").stdout
    assert "aliases:      staging\n" in cli.run("show", "model@staging").stdout
    assert "aliases:      -\n" in cli.run("show", "other").stdout
    assert "staging" in cli.run("versions", "model@staging").stdout


# -- show --json is the web's document ---------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, cli: Cli, sqlite_url: str, storage_dir: Path) -> Iterator[int]:
    cfg = tmp_path / "luigi.cfg"
    cfg.write_text(
        f"[artifact_store]\ndb_connection = {sqlite_url}\nartifact_storage_dir = {storage_dir}\n"
    )
    with scheduler_process(LINEA_LUIGID, tmp_path, scheduler_env(tmp_path, cfg)) as port:
        yield port


def web_json(port: int, path: str) -> object:
    status, body = get(port, path)
    assert status == 200, body
    return json.loads(body)


def test_show_json_is_the_web_detail_document(cli: Cli, served: int) -> None:
    base = cli.store.save([1, 2], "model", upstream=[cli.store.get("other")])
    cli.store.set_alias("model", base.version, "production")
    for spec, path in (
        ("model", "model/latest"),
        ("model:0", "model/0"),
        ("model@production", "model/production"),
        ("my model", f"{urllib.parse.quote('my model', safe='')}/latest"),
    ):
        shown = json.loads(cli.run("show", spec, "--json").stdout)
        assert isinstance(shown, dict)
        assert shown == web_json(served, f"/api/artifacts/{path}"), spec
    assert shown["aliases"] == [] and shown["name"] == "my model"
    doc = json.loads(cli.run("show", "model", "--json").stdout)
    assert doc["aliases"] == ["production"] and doc["upstream"] == [{"name": "other", "version": 0}]


def test_versions_json_is_the_web_listing_with_aliases(cli: Cli, served: int) -> None:
    cli.store.set_alias("model", 1, "production")
    page = web_json(served, "/api/artifacts/model")
    assert isinstance(page, dict)
    docs = json.loads(cli.run("versions", "model", "--json").stdout)
    assert [{k: v for k, v in d.items() if k != "aliases"} for d in docs] == page["versions"][::-1]
    assert {a: d["version"] for d in docs for a in d["aliases"]} == page["aliases"]


# -- the README's command block, run as written ------------------------------------------------


def readme_commands() -> list[list[str]]:
    """The ``linea-luigi`` lines of the README's "Command line" block, comments stripped."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def test_readme_commands_run_on_the_example_store(tmp_path: Path) -> None:
    """After `python examples/pipeline.py`, every README command works as the README says."""
    box = Sandbox(tmp_path)
    box.pipeline()
    commands = readme_commands()
    assert all(words[0] == "linea-luigi" for words in commands)
    placeholder = [w for w in commands if "postgresql://host/db" in w]
    assert len(placeholder) == 1  # the one line that names a server of the reader's own
    outputs = {}
    for words in commands:
        if words in placeholder:
            continue
        done = subprocess.run(
            [str(SCRIPT), *words[1:]],
            cwd=tmp_path,
            env=box.env(),
            input="n\n",
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (words, done.stdout, done.stderr)
        outputs[shlex.join(words[1:])] = done.stdout
    features = pickle.loads((tmp_path / "features.pkl").read_bytes())
    assert isinstance(features, dict) and "x_train" in features
    assert outputs["tag demand.model:0 production"].strip() == (
        "demand.model@production -> version 0"
    )
    assert outputs["delete demand.report --version 0"] == "Nothing deleted.\n"
    assert box.store().exists("demand.report", 0)
    shown = json.loads(outputs["show demand.model --json"])
    assert shown["name"] == "demand.model" and shown["upstream"][0]["name"] == "demand.features"
    assert isinstance(json.loads(outputs["versions demand.model --json"]), list)
