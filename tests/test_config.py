"""Configuration: lookup order, luigi.cfg through Luigi's own machinery, defaults, mismatch.

Order, first hit wins: ``ll.options`` > environment > luigi.cfg ``[artifact_store]``
> luigi.cfg ``[task_history] db_connection`` (database only) > ``~/.linea_luigi``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import linea_luigi as ll

REPO = Path(__file__).resolve().parents[1]
WriteCfg = Callable[[str], Path]


def _settings_db() -> str:
    return ll.resolve_settings().database_url.render_as_string(hide_password=False)


def _child_env(**extra: str) -> dict[str, str]:
    """The test's (isolated) environment, with the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def _empty_cwd(tmp_path: Path) -> Path:
    """A working folder without a ./luigi.cfg, so a child reads only what the test gives it."""
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    return cwd


# -- defaults ------------------------------------------------------------------------


def test_defaults_live_under_home_and_are_created_on_first_use() -> None:
    """With nothing configured, the embedded store goes to ~/.linea_luigi, made on demand."""
    home = Path.home() / ".linea_luigi"
    assert not home.exists()
    settings = ll.resolve_settings()
    assert settings.database_url.drivername == "sqlite"
    assert Path(str(settings.database_url.database)) == home / "db.sqlite"
    assert Path(settings.storage_dir) == home / "artifacts"
    assert settings.storage_options == {}

    artifact = ll.ArtifactStore.from_config().save([1, 2, 3], "first")
    assert (home / "db.sqlite").is_file()
    stored = [p for p in (home / "artifacts").rglob("*") if p.is_file()]
    assert len(stored) == 1
    assert artifact.uri.endswith(stored[0].relative_to(home / "artifacts").as_posix())
    assert ll.load("first") == [1, 2, 3]


# -- luigi.cfg -----------------------------------------------------------------------


def test_luigi_cfg_artifact_store_section(luigi_cfg: WriteCfg, tmp_path: Path) -> None:
    """The three [artifact_store] keys are read, and the store built from them uses them."""
    db = f"sqlite:///{tmp_path / 'cfg.sqlite'}"
    luigi_cfg(
        f"""
[artifact_store]
db_connection = {db}
artifact_storage_dir = {tmp_path / "cfg-artifacts"}
storage_options = {{"auto_mkdir": true, "nested": {{"region": "eu-west-1"}}}}
"""
    )
    settings = ll.resolve_settings()
    assert _settings_db() == db
    assert settings.storage_dir == str(tmp_path / "cfg-artifacts")
    assert settings.storage_options == {"auto_mkdir": True, "nested": {"region": "eu-west-1"}}

    store = ll.ArtifactStore.from_config()
    store.save("v", "x")
    assert (tmp_path / "cfg.sqlite").is_file()
    assert [p for p in (tmp_path / "cfg-artifacts").rglob("*.pkl")]


def test_task_history_database_is_shared(luigi_cfg: WriteCfg, tmp_path: Path) -> None:
    """Without [artifact_store] db_connection, artifacts go to Luigi's task-history database."""
    history = f"sqlite:///{tmp_path / 'history.sqlite'}"
    luigi_cfg(f"[task_history]\ndb_connection = {history}\n")
    settings = ll.resolve_settings()
    assert _settings_db() == history
    # [task_history] names a database only: the value storage stays at its default
    assert Path(settings.storage_dir) == Path.home() / ".linea_luigi" / "artifacts"


def test_artifact_store_section_beats_task_history(luigi_cfg: WriteCfg, tmp_path: Path) -> None:
    """A dedicated artifact database wins over the shared task-history one."""
    own = f"sqlite:///{tmp_path / 'own.sqlite'}"
    luigi_cfg(
        f"[task_history]\ndb_connection = sqlite:///{tmp_path / 'history.sqlite'}\n"
        f"[artifact_store]\ndb_connection = {own}\n"
    )
    assert _settings_db() == own


def test_env_interpolation_in_luigi_cfg(
    luigi_cfg: WriteCfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``${VAR}`` lets secrets and per-machine paths stay out of luigi.cfg."""
    monkeypatch.setenv("LL_TEST_DBDIR", str(tmp_path / "interp"))
    monkeypatch.setenv("LL_TEST_PROFILE", "pipelines")
    luigi_cfg(
        "[artifact_store]\n"
        "db_connection = sqlite:///${LL_TEST_DBDIR}/db.sqlite\n"
        "artifact_storage_dir = ${LL_TEST_DBDIR}/values\n"
        'storage_options = {"profile": "${LL_TEST_PROFILE}"}\n'
    )
    settings = ll.resolve_settings()
    assert _settings_db() == f"sqlite:///{tmp_path / 'interp' / 'db.sqlite'}"
    assert settings.storage_dir == f"{tmp_path / 'interp'}/values"
    assert settings.storage_options == {"profile": "pipelines"}


def test_missing_env_var_in_luigi_cfg_is_a_config_error(luigi_cfg: WriteCfg) -> None:
    """A ${VAR} that is not set is our ConfigError naming the section, not a raw Luigi error."""
    luigi_cfg("[artifact_store]\ndb_connection = sqlite:///${LL_TEST_SURELY_UNSET}/db.sqlite\n")
    with pytest.raises(ll.ConfigError) as info:
        ll.resolve_settings()
    assert "artifact_store" in str(info.value)


@pytest.mark.parametrize(
    "raw",
    ["{not json", "[1, 2]", '"a string"', "3", "true", "null", '{"a": 1'],
)
def test_bad_storage_options_json(luigi_cfg: WriteCfg, raw: str) -> None:
    """storage_options must be a JSON object; anything else is refused with a hint."""
    luigi_cfg(f"[artifact_store]\nstorage_options = {raw}\n")
    with pytest.raises(ll.ConfigError) as info:
        ll.ArtifactStore.from_config()
    assert "storage_options" in str(info.value)
    with pytest.raises(ll.ConfigError):
        ll.artifact_store()


def test_luigi_config_path_is_honoured(tmp_path: Path) -> None:
    """A fresh process finds luigi.cfg through LUIGI_CONFIG_PATH, as Luigi users expect."""
    cfg = tmp_path / "elsewhere" / "pipeline.cfg"
    cfg.parent.mkdir()
    db = f"sqlite:///{tmp_path / 'via-path.sqlite'}"
    cfg.write_text(
        f"[artifact_store]\ndb_connection = {db}\n"
        f"artifact_storage_dir = {tmp_path / 'via-path'}\n"
        'storage_options = {"auto_mkdir": true}\n'
    )
    script = (
        "import json, linea_luigi as ll; s = ll.resolve_settings(); "
        "print(json.dumps([s.database_url.render_as_string(hide_password=False), "
        "s.storage_dir, s.storage_options]))"
    )

    def run(env: dict[str, str]) -> list[object]:
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=_empty_cwd(tmp_path),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        result: list[object] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    assert run(_child_env(LUIGI_CONFIG_PATH=str(cfg))) == [
        db,
        str(tmp_path / "via-path"),
        {"auto_mkdir": True},
    ]
    # control: the same child without the variable sees only the defaults
    without = run(_child_env())
    assert without[0] == f"sqlite:///{Path.home() / '.linea_luigi' / 'db.sqlite'}"


RECORDER = '''
"""A Luigi task that records the linea_luigi settings in effect while it runs."""
import json

import luigi

import linea_luigi as ll


class RecordSettings(luigi.Task):
    out = luigi.Parameter()

    def output(self):
        return luigi.LocalTarget(self.out)

    def run(self):
        s = ll.resolve_settings()
        with self.output().open("w") as f:
            json.dump(
                {
                    "db": s.database_url.render_as_string(hide_password=False),
                    "dir": s.storage_dir,
                    "options": s.storage_options,
                },
                f,
            )
'''


def test_luigi_command_line_overrides_luigi_cfg(tmp_path: Path) -> None:
    """``--artifact-store-*`` flags work like any Luigi Config override, over luigi.cfg."""
    module_dir = tmp_path / "mod"
    module_dir.mkdir()
    (module_dir / "ll_recorder.py").write_text(textwrap.dedent(RECORDER))
    cfg = tmp_path / "pipeline.cfg"
    cfg.write_text(
        f"[artifact_store]\ndb_connection = sqlite:///{tmp_path / 'from-cfg.sqlite'}\n"
        f"artifact_storage_dir = {tmp_path / 'from-cfg'}\n"
    )
    cli_db = f"sqlite:///{tmp_path / 'from-cli.sqlite'}"
    out = tmp_path / "settings.json"
    env = _child_env(LUIGI_CONFIG_PATH=str(cfg))
    env["PYTHONPATH"] = os.pathsep.join([str(module_dir), env["PYTHONPATH"]])
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "luigi",
            "--module",
            "ll_recorder",
            "RecordSettings",
            "--out",
            str(out),
            "--local-scheduler",
            "--no-lock",
            "--artifact-store-db-connection",
            cli_db,
            "--artifact-store-storage-options",
            '{"auto_mkdir": true}',
        ],
        cwd=_empty_cwd(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    recorded = json.loads(out.read_text())
    assert recorded == {
        "db": cli_db,  # from the command line
        "dir": str(tmp_path / "from-cfg"),  # not overridden: still luigi.cfg
        "options": {"auto_mkdir": True},
    }


# -- environment and options -----------------------------------------------------------


def test_environment_beats_luigi_cfg(
    luigi_cfg: WriteCfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deployment environments override the checked-in luigi.cfg."""
    luigi_cfg(
        f"[artifact_store]\ndb_connection = sqlite:///{tmp_path / 'cfg.sqlite'}\n"
        f"artifact_storage_dir = {tmp_path / 'cfg-dir'}\n"
    )
    env_db = f"sqlite:///{tmp_path / 'env.sqlite'}"
    monkeypatch.setenv("LINEA_LUIGI_DATABASE_URL", env_db)
    monkeypatch.setenv("LINEA_LUIGI_ARTIFACT_STORAGE_DIR", str(tmp_path / "env-dir"))
    settings = ll.resolve_settings()
    assert _settings_db() == env_db
    assert settings.storage_dir == str(tmp_path / "env-dir")


def test_blank_environment_variables_are_ignored(
    luigi_cfg: WriteCfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exported-but-empty variable must not override luigi.cfg with nothing."""
    cfg_db = f"sqlite:///{tmp_path / 'cfg.sqlite'}"
    luigi_cfg(f"[artifact_store]\ndb_connection = {cfg_db}\n")
    monkeypatch.setenv("LINEA_LUIGI_DATABASE_URL", "  ")
    monkeypatch.setenv("LINEA_LUIGI_ARTIFACT_STORAGE_DIR", "")
    assert _settings_db() == cfg_db
    assert Path(ll.resolve_settings().storage_dir) == Path.home() / ".linea_luigi" / "artifacts"


def test_storage_options_are_not_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Credentials come through the provider's own mechanism, never a linea_luigi variable."""
    monkeypatch.setenv("LINEA_LUIGI_STORAGE_OPTIONS", '{"key": "AKIA", "secret": "x"}')
    assert ll.resolve_settings().storage_options == {}


def test_options_beat_environment_and_luigi_cfg(
    luigi_cfg: WriteCfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runtime options win over everything, and dropping one uncovers the next source."""
    luigi_cfg(
        f"[artifact_store]\ndb_connection = sqlite:///{tmp_path / 'cfg.sqlite'}\n"
        f"artifact_storage_dir = {tmp_path / 'cfg-dir'}\n"
        'storage_options = {"from": "cfg"}\n'
    )
    monkeypatch.setenv("LINEA_LUIGI_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite'}")
    monkeypatch.setenv("LINEA_LUIGI_ARTIFACT_STORAGE_DIR", str(tmp_path / "env-dir"))
    opt_db = f"sqlite:///{tmp_path / 'opt.sqlite'}"
    ll.options.set("database_url", opt_db)
    ll.options.set("artifact_storage_dir", tmp_path / "opt-dir")  # a Path is fine
    ll.options.set("storage_options", {"from": "options"})
    settings = ll.resolve_settings()
    assert _settings_db() == opt_db
    assert settings.storage_dir == str(tmp_path / "opt-dir")
    assert settings.storage_options == {"from": "options"}

    # removing an override falls back to the next source, key by key
    ll.options.set("database_url", None)
    ll.options.set("storage_options", None)
    settings = ll.resolve_settings()
    assert _settings_db() == f"sqlite:///{tmp_path / 'env.sqlite'}"
    assert settings.storage_dir == str(tmp_path / "opt-dir")
    assert settings.storage_options == {"from": "cfg"}


def test_db_connection_is_an_alias_of_database_url(tmp_path: Path) -> None:
    """``db_connection`` mirrors the luigi.cfg key name, so it works as an option key too."""
    url = f"sqlite:///{tmp_path / 'alias.sqlite'}"
    ll.options.set("db_connection", url)
    assert ll.options.get("database_url") == url
    assert _settings_db() == url


def test_options_hold_a_copy_of_storage_options() -> None:
    """Mutating the dict after ``set`` must not change the configuration behind our back."""
    opts: dict[str, object] = {"a": 1}
    ll.options.set("storage_options", opts)
    opts["a"] = 2
    assert ll.resolve_settings().storage_options == {"a": 1}


@pytest.mark.parametrize("key", ["database", "storage_dir", "DATABASE_URL", "", 3])
def test_unknown_option_key(key: object) -> None:
    """A typo in an option key fails loudly and lists the accepted keys."""
    with pytest.raises(ll.ConfigError) as info:
        ll.options.set(key, "x")  # type: ignore[arg-type]
    for accepted in ("database_url", "db_connection", "artifact_storage_dir", "storage_options"):
        assert accepted in str(info.value)
    with pytest.raises(ll.ConfigError):
        ll.options.get(key)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ['{"a": 1}', ["a"], 3])
def test_storage_options_option_must_be_a_dict(value: object) -> None:
    """storage_options are a dict at runtime (JSON text only belongs in luigi.cfg)."""
    with pytest.raises(ll.ConfigError):
        ll.options.set("storage_options", value)


@pytest.mark.parametrize("value", ["not a dict", ["a", "b"], 3])
def test_store_storage_options_must_be_a_dict(value: object, tmp_path: Path) -> None:
    """Bad storage_options are rejected when the store is built, not at first use."""
    with pytest.raises(ll.ConfigError):
        ll.ArtifactStore(
            db_url=f"sqlite:///{tmp_path / 'x.sqlite'}",
            storage_dir=str(tmp_path / "a"),
            storage_options=value,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("value", ["", "   ", None, 3])
def test_store_storage_dir_must_be_a_path(value: object, tmp_path: Path) -> None:
    """An empty or non-path storage dir is rejected when the store is built."""
    with pytest.raises(ll.ConfigError):
        ll.ArtifactStore(db_url=f"sqlite:///{tmp_path / 'x.sqlite'}", storage_dir=value)


def test_default_store_follows_the_configuration(tmp_path: Path) -> None:
    """``ll.artifact_store()`` re-resolves: a changed option gives the other store."""
    ll.options.set("database_url", f"sqlite:///{tmp_path / 'one.sqlite'}")
    ll.options.set("artifact_storage_dir", str(tmp_path / "one"))
    first = ll.artifact_store()
    assert ll.artifact_store() is first  # same configuration, same store
    ll.save("in one", "thing")
    ll.options.set("database_url", f"sqlite:///{tmp_path / 'two.sqlite'}")
    ll.options.set("artifact_storage_dir", str(tmp_path / "two"))
    second = ll.artifact_store()
    assert second is not first
    assert second.latest_version("thing") == -1
    assert first.load("thing") == "in one"


# -- the database belongs to one storage root ------------------------------------------------


def test_store_mismatch_names_both_locations(sqlite_url: str, tmp_path: Path) -> None:
    """Opening a database with another storage dir must fail loudly, not orphan every value."""
    first, second = tmp_path / "storage-a", tmp_path / "storage-b"
    original = ll.ArtifactStore(db_url=sqlite_url, storage_dir=str(first))
    original.save("kept", "thing")

    moved = ll.ArtifactStore(db_url=sqlite_url, storage_dir=str(second))
    for call in (moved.list, lambda: moved.get("thing"), lambda: moved.save("new", "thing")):
        with pytest.raises(ll.StoreMismatchError) as info:
            call()
        message = str(info.value)
        assert str(first) in message
        assert str(second) in message
        assert "artifact_storage_dir" in message  # says what to change
    # nothing was written to the wrong place, and the right pairing still works
    assert not second.exists() or [p for p in second.rglob("*") if p.is_file()] == []
    assert original.load("thing") == "kept"
    assert original.latest_version("thing") == 0


def test_store_mismatch_through_configuration(sqlite_url: str, tmp_path: Path) -> None:
    """The mismatch check also guards the configured default store."""
    ll.ArtifactStore(db_url=sqlite_url, storage_dir=str(tmp_path / "a")).save(1, "x")
    ll.options.set("database_url", sqlite_url)
    ll.options.set("artifact_storage_dir", str(tmp_path / "b"))
    with pytest.raises(ll.StoreMismatchError):
        ll.get("x")


@pytest.mark.parametrize(
    "spelling",
    ["{root}/", "file://{root}", "file://{root}/", "{root}/../storage", "local://{root}"],
)
def test_same_root_spelled_differently_is_not_a_mismatch(
    sqlite_url: str, tmp_path: Path, spelling: str
) -> None:
    """A trailing slash or an explicit file:// must not look like another storage."""
    root = tmp_path / "storage"
    ll.ArtifactStore(db_url=sqlite_url, storage_dir=str(root)).save("v", "x")
    again = ll.ArtifactStore(db_url=sqlite_url, storage_dir=spelling.format(root=root))
    assert again.load("x") == "v"


def test_relative_storage_dir_is_made_absolute(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative folder is pinned at construction, so a later chdir changes nothing."""
    monkeypatch.chdir(tmp_path)
    store = ll.ArtifactStore(db_url=sqlite_url, storage_dir="rel/values")
    monkeypatch.chdir(tmp_path / "home")
    artifact = store.save("v", "x")
    assert (tmp_path / "rel" / "values").is_dir()
    assert artifact.uri.startswith(f"file://{tmp_path / 'rel' / 'values'}/")
    absolute = ll.ArtifactStore(db_url=sqlite_url, storage_dir=str(tmp_path / "rel" / "values"))
    assert absolute.load("x") == "v"
