"""``ArtifactStore.latest_by_keys``: what ``get(name, key=k)`` gives, for many keys at once."""

from __future__ import annotations

from pathlib import Path

import pytest

import linea_luigi as ll
import linea_luigi.db.queries.chunks as chunks_module


def _info(key: str) -> ll.TaskInfo:
    return ll.TaskInfo(family="Part", task_id=f"Part_{key}", identity_key=key, params={"k": key})


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_latest_by_keys_matches_get_per_key(
    database: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = (
        request.getfixturevalue("sqlite_url")
        if database == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    store = ll.ArtifactStore(url, str(tmp_path / "values"))
    keys = [f"{i:064x}" for i in range(5)]
    # keys 0-2 get two versions, key 3 one (in the second round), key 4 none
    for round_ in range(2):
        for key in keys[: 3 + round_]:
            store.save((key, round_), "part", task=_info(key))
    store.save("other name, same key", "other", task=_info(keys[0]))
    monkeypatch.setattr(chunks_module, "PER_QUERY", 2)  # several queries

    found = store.latest_by_keys("part", [*keys, keys[1]])

    assert sorted(found) == keys[:4]
    for key, artifact in found.items():
        assert artifact == store.get("part", key=key)
        assert store.load_artifact(artifact) == (key, 1)
