"""Misconfiguration: no configured value in any output, unknown keys named, look-alike
sections warned about, and a first run that failed does not pin a wrong storage root."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import luigi
import pytest
import sqlalchemy as sa

import linea_luigi as ll
from linea_luigi.settings import luigi_cfg as cfg_reading

SECRET = "hunter2-s3cret-pw"
WriteCfg = Callable[[str], Path]


class Probe(ll.ArtifactTaskMixin, luigi.Task):
    """A task whose completeness check resolves the configuration."""

    def run(self) -> None:
        self.save("done")


def _everything_printed(
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    caught: list[warnings.WarningMessage],
) -> str:
    out, err = capfd.readouterr()
    return "\n".join([out, err, caplog.text, *(str(w.message) for w in caught)])


def test_a_misspelt_key_is_named_and_its_value_never_shown(
    luigi_cfg: WriteCfg,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    luigi_cfg(
        "[artifact_store]\n"
        f"db_conection = postgresql://user:{SECRET}@db.example/prod\n"
        f"artifact_storage_dir = {tmp_path / 'a'}\n"
    )
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ll.ConfigError) as err:
            ll.resolve_settings()
        assert "'db_conection'" in str(err.value)
        assert "Did you mean 'db_connection'?" in str(err.value)
        cfg_reading.config_class()()  # Luigi's unconsumed-key warning would print the value
        ok = luigi.build([Probe()], local_scheduler=True)  # a whole run fails, quietly
    assert not ok
    printed = _everything_printed(capfd, caplog, caught)
    assert SECRET not in printed and SECRET not in str(err.value)
    assert "db_conection" in printed  # the run reported the problem


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_hyphenated_keys_are_accepted(luigi_cfg: WriteCfg, tmp_path: Path) -> None:
    luigi_cfg(f"[artifact_store]\nartifact-storage-dir = {tmp_path / 'h'}\n")
    assert ll.resolve_settings().storage_dir == str(tmp_path / "h")


@pytest.mark.parametrize(
    "section",
    ["artifact-store", "Artifact_Store", "artifactstore", "linea_luigi", "artifact_stores"],
)
def test_a_look_alike_section_is_warned_about(
    section: str, luigi_cfg: WriteCfg, tmp_path: Path
) -> None:
    luigi_cfg(
        f"[{section}]\ndb_connection = postgresql://u:{SECRET}@h/db\n"
        f"artifact_storage_dir = {tmp_path / 'meant'}\n"
    )
    with pytest.warns(cfg_reading.ConfigWarning, match=rf"\[{section}\]") as caught:
        settings = ll.resolve_settings()
    assert settings.storage_dir.endswith(".linea_luigi/artifacts")  # ignored, as warned
    assert all(SECRET not in str(w.message) for w in caught)
    assert all(str(tmp_path) not in str(w.message) for w in caught)


def test_a_correct_configuration_warns_nothing(luigi_cfg: WriteCfg, tmp_path: Path) -> None:
    luigi_cfg(
        f"[artifact_store]\nartifact_storage_dir = {tmp_path / 'a'}\n"
        "[task_history]\ndb_connection = sqlite:////tmp/x.sqlite\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ll.resolve_settings().storage_dir == str(tmp_path / "a")


def test_a_failed_first_run_does_not_pin_the_storage_root(sqlite_url: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    broken = ll.ArtifactStore(sqlite_url, str(blocker / "artifacts"))
    with pytest.raises(ll.StorageError):
        broken.save(1, "x")  # the root was recorded, nothing was saved
    fixed = ll.ArtifactStore(sqlite_url, str(tmp_path / "artifacts"))
    assert fixed.save(1, "x").version == 0  # re-bound: the database held no artifact
    assert fixed.load("x") == 1
    with pytest.raises(ll.StoreMismatchError):  # from now on the binding holds
        ll.ArtifactStore(sqlite_url, str(tmp_path / "elsewhere")).load("x")


def test_doctor(pg_url: str, tmp_path: Path, luigi_cfg: WriteCfg) -> None:
    """Every value with its origin, the password masked; a mismatched root fails."""
    from click.testing import CliRunner

    from linea_luigi.cli import main

    url = sa.make_url(pg_url).set(password=SECRET).render_as_string(hide_password=False)
    cfg = luigi_cfg(f"[artifact_store]\ndb_connection = {url}\n")
    good = tmp_path / "good"
    runner = CliRunner()
    healthy = runner.invoke(main, ["doctor"], env={"LINEA_LUIGI_ARTIFACT_STORAGE_DIR": str(good)})
    assert healthy.exit_code == 1, healthy.output  # no schema yet
    ll.ArtifactStore(url, str(good)).save(1, "x")
    healthy = runner.invoke(main, ["doctor"], env={"LINEA_LUIGI_ARTIFACT_STORAGE_DIR": str(good)})
    out = healthy.stdout
    assert healthy.exit_code == 0, out
    assert SECRET not in healthy.output and ":***@" in out
    assert f"luigi.cfg [artifact_store] db_connection ({cfg})" in out
    assert "(environment LINEA_LUIGI_ARTIFACT_STORAGE_DIR)" in out
    assert "checksum              blake3  (default)" in out
    assert "lock_timeout          60 s  (default)" in out
    assert [line[0] for line in out.splitlines() if line[:1] in "✓✗"] == ["✓", "✓", "✓"]
    assert list(good.rglob("*.probe")) == []

    moved = runner.invoke(main, ["--storage-dir", str(tmp_path / "other"), "doctor"])
    assert moved.exit_code == 1
    assert "✗ storage root mismatch" in moved.stdout
    assert "(command line --storage-dir)" in moved.stdout
    assert SECRET not in moved.output


def test_doctor_unreachable_database(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from linea_luigi.cli import main

    url = f"postgresql://u:{SECRET}@127.0.0.1:1/db"
    result = CliRunner().invoke(
        main, ["--db-url", url, "--storage-dir", str(tmp_path / "s"), "doctor"]
    )
    assert result.exit_code == 1
    assert "✗ database unreachable" in result.stdout
    assert SECRET not in result.output


def test_an_sqlite_path_under_a_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from linea_luigi.cli import main

    (tmp_path / "afile").write_text("not a folder")
    db = tmp_path / "afile" / "x.sqlite"
    with pytest.raises(ll.ConfigError) as err:
        ll.ArtifactStore(f"sqlite:///{db}", str(tmp_path / "s")).save(1, "x")
    assert str(db) in str(err.value) and "is a file, not a folder" in str(err.value)
    result = CliRunner().invoke(
        main, ["--db-url", f"sqlite:///{db}", "--storage-dir", str(tmp_path / "s"), "list"]
    )
    assert result.exit_code == 1
    assert "unexpected" not in result.output and "FileExistsError" not in result.output
    assert str(db) in result.output


@pytest.mark.parametrize("section", ["artifact_store", "task_history"])
def test_an_unset_variable_is_named(
    section: str, luigi_cfg: WriteCfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LL_TEST_UNSET_PASSWORD", raising=False)
    luigi_cfg(
        f"[{section}]\n"
        "db_connection = postgresql://u:${LL_TEST_UNSET_PASSWORD}@127.0.0.1/db\n"
        f"[task_history_other]\nx = ${{ALSO_UNSET_BUT_NOT_READ}}\n"
    )
    with pytest.raises(ll.ConfigError) as err:
        ll.resolve_settings()
    message = str(err.value)
    assert f"[{section}] db_connection" in message
    assert "LL_TEST_UNSET_PASSWORD" in message and "not set" in message
    monkeypatch.setenv("LL_TEST_UNSET_PASSWORD", SECRET)
    assert ll.resolve_settings().database_url.password == SECRET
