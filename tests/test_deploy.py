"""The deployment: docker-compose.yml, deploy/ and luigi.cfg.example, against each other.

Compose is parsed and checked for what ``docker compose up`` relies on (services,
pinned images, health checks, start order, loopback ports, the mounted
configuration and the credentials it expects), and the configuration against the
compose file and against luigi.cfg.example, which must be the same settings seen
from the host. Where a Compose CLI exists, ``docker compose config`` must accept
the file too. Last, the README's "without Docker" variant runs for real:
PostgreSQL, moto's S3 server, ``linea-luigid`` and the example as its worker.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import luigi.interface
import luigi.scheduler
import pytest
import sqlalchemy as sa
import yaml
from fault_support import moto_s3
from luigi_support import stop_process

import linea_luigi as ll
from linea_luigi.integration.history import history_url
from linea_luigi.settings.luigi_cfg import config_class

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY_CFG = ROOT / "deploy" / "luigi.cfg"
EXAMPLE_CFG = ROOT / "luigi.cfg.example"
SERVICES = {"postgres", "minio", "bucket", "linea-luigid", "worker"}
OURS = ("bucket", "linea-luigid", "worker")  # the image built from deploy/Dockerfile
LONG_RUNNING = ("postgres", "minio", "linea-luigid")
ONE_SHOT = ("bucket", "worker")
LOOPBACK = "127.0.0.1"


# -- reading the files ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(COMPOSE.read_text())  # resolves the x-linea anchor and merges
    return dict(compose["services"])


def read_cfg(path: Path) -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    assert cfg.read(path) == [str(path)]
    return cfg


def cfg_items(cfg: configparser.ConfigParser) -> dict[tuple[str, str], str]:
    return {(s, k): v for s in cfg.sections() for k, v in cfg.items(s)}


def ports(service: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """Container port -> (host address, host port) of a service's published ports."""
    found = {}
    for spec in service.get("ports", []):
        host, host_port, container_port = str(spec).split(":")
        found[int(container_port)] = (host, int(host_port))
    return found


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def compose_cli() -> list[str] | None:
    """``docker compose`` (or ``docker-compose``) when it really runs here."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


# -- the compose file ----------------------------------------------------------------------


def test_the_stack_has_its_services_on_pinned_images(services: dict[str, Any]) -> None:
    assert set(services) == SERVICES
    for name, svc in services.items():
        image = svc["image"]
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest", f"{name}: image {image!r} is not pinned to a tag"
        if name in OURS:
            assert svc["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
        else:
            assert "build" not in svc
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert base is not None
    assert re.fullmatch(r"python:3\.\d+-slim-\w+", base.group(1)), base.group(1)
    # the image installs the package at build time: nothing is installed at start
    assert re.search(r"^RUN pip install ", dockerfile, re.M)
    for svc in services.values():
        assert "pip install" not in json.dumps(svc.get("command", ""))
    # what the image copies is in the repository and let through the build's ignore file
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().split()
    for source in re.findall(r"^COPY\s+(.+?)\s+\S+$", dockerfile, re.M):
        for path in source.split():
            assert (ROOT / path).exists(), path
            assert f"!{path.rstrip('/')}" in ignore or f"!{path.rstrip('/')}/" in ignore, path
    cli = compose_cli()
    if cli is not None:  # an extra check where Compose exists; the checks above always run
        done = subprocess.run(
            [*cli, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr


def test_services_start_in_order_of_health(services: dict[str, Any]) -> None:
    for name in LONG_RUNNING:
        check = services[name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check["retries"] >= 3
        assert services[name]["restart"] == "unless-stopped"
    for name in ONE_SHOT:
        assert "healthcheck" not in services[name]
        assert services[name]["restart"] == "no"
    order = {
        name: {dep: cond["condition"] for dep, cond in svc.get("depends_on", {}).items()}
        for name, svc in services.items()
    }
    assert order == {
        "postgres": {},
        "minio": {},
        "bucket": {"minio": "service_healthy"},
        "linea-luigid": {"postgres": "service_healthy"},
        "worker": {
            "postgres": "service_healthy",
            "linea-luigid": "service_healthy",
            "bucket": "service_completed_successfully",
        },
    }
    # the health checks ask the right thing of the right process
    pg_env = services["postgres"]["environment"]
    assert services["postgres"]["healthcheck"]["test"] == [
        "CMD-SHELL",
        f"pg_isready -U {pg_env['POSTGRES_USER']} -d {pg_env['POSTGRES_DB']}",
    ]
    assert services["minio"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]
    luigid = services["linea-luigid"]
    port = option(luigid["command"], "--port")
    assert luigid["command"][0] == "linea-luigid"
    assert option(luigid["command"], "--address") == "0.0.0.0"  # reachable by the worker
    probe = luigid["healthcheck"]["test"]
    assert probe[:3] == ["CMD", "python", "-c"]
    assert f"http://127.0.0.1:{port}/static/visualiser/index.html" in probe[3]


def test_ports_are_published_on_loopback_only(services: dict[str, Any]) -> None:
    published = {name: ports(svc) for name, svc in services.items()}
    assert published == {
        "postgres": {5432: (LOOPBACK, 5432)},
        "minio": {9000: (LOOPBACK, 9000), 9001: (LOOPBACK, 9001)},
        "bucket": {},
        "linea-luigid": {8082: (LOOPBACK, 8082)},
        "worker": {},
    }


def test_our_containers_read_the_mounted_config(services: dict[str, Any]) -> None:
    for name in OURS:
        svc = services[name]
        mounts = [str(v).split(":") for v in svc["volumes"]]
        config = [m for m in mounts if m[0] == "./deploy/luigi.cfg"]
        assert len(config) == 1, f"{name} does not mount deploy/luigi.cfg"
        source, target, mode = config[0]
        assert mode == "ro" and (ROOT / source).is_file()
        assert svc["environment"]["LUIGI_CONFIG_PATH"] == target


def test_mounted_config_names_the_compose_services(services: dict[str, Any]) -> None:
    cfg = read_cfg(DEPLOY_CFG)
    pg, minio, luigid = services["postgres"], services["minio"], services["linea-luigid"]

    db = sa.make_url(cfg["task_history"]["db_connection"])
    assert db.host == "postgres" and db.port in ports(pg)
    assert db.database == pg["environment"]["POSTGRES_DB"]
    assert db.username == pg["environment"]["POSTGRES_USER"]
    assert db.password is None, "the password belongs in PGPASSWORD, not in the file"
    assert "db_connection" not in cfg["artifact_store"]  # artifacts share that database

    store = cfg["artifact_store"]
    assert store["artifact_storage_dir"] == "s3://artifacts/pipelines"
    endpoint = json.loads(store["storage_options"])["client_kwargs"]["endpoint_url"]
    assert endpoint == f"http://minio:{min(ports(minio))}"
    assert store["checksum"] in ("blake3", "sha256")

    for name in OURS:  # the credentials our containers get are the servers' own
        env = services[name]["environment"]
        assert env["PGPASSWORD"] == pg["environment"]["POSTGRES_PASSWORD"]
        assert env["AWS_ACCESS_KEY_ID"] == minio["environment"]["MINIO_ROOT_USER"]
        assert env["AWS_SECRET_ACCESS_KEY"] == minio["environment"]["MINIO_ROOT_PASSWORD"]

    core, scheduler = cfg["core"], cfg["scheduler"]
    port = option(luigid["command"], "--port")
    assert (core["scheduler_host"], core["scheduler_port"]) == (
        "linea-luigid",
        port,
    )
    worker = services["worker"]["command"]
    assert worker[:2] == ["python", "examples/pipeline.py"]
    assert option(worker, "--scheduler-host") == "linea-luigid"
    assert option(worker, "--scheduler-port") == port
    assert scheduler.getboolean("record_task_history")
    state_dir = str(Path(scheduler["state_path"]).parent)
    assert any(str(v).split(":")[1] == state_dir for v in luigid["volumes"]), (
        "the scheduler's state is not on a volume"
    )


def _seen_from_host(services: dict[str, Any]) -> Callable[[str], str]:
    """Rewrite ``service:port`` inside the stack as the host reaches it."""
    routes = {
        f"{name}:{container}": f"{host}:{host_port}"
        for name, svc in services.items()
        for container, (host, host_port) in ports(svc).items()
    }
    pattern = re.compile("|".join(re.escape(k) + r"\b" for k in sorted(routes, key=len)[::-1]))
    return lambda value: pattern.sub(lambda m: routes[m.group(0)], value)


def test_example_is_the_deploy_config_seen_from_the_host(services: dict[str, Any]) -> None:
    inside, outside = cfg_items(read_cfg(DEPLOY_CFG)), cfg_items(read_cfg(EXAMPLE_CFG))
    assert set(inside) == set(outside)
    host = _seen_from_host(services)
    core = ("core", "scheduler_host"), ("core", "scheduler_port")
    scheduler = host(f"{inside[core[0]]}:{inside[core[1]]}")
    assert scheduler == f"{outside[core[0]]}:{outside[core[1]]}" == "127.0.0.1:8082"
    state = ("scheduler", "state_path")  # a server's folder inside; one any machine has outside
    assert Path(inside[state]).parent == Path("/var/lib/luigi")
    assert Path(outside[state]).parent.is_dir(), outside[state]
    for key in set(inside) - set(core) - {state}:
        assert host(inside[key]) == outside[key], key


def test_example_documents_every_key() -> None:
    """Every ``[artifact_store]`` key linea_luigi reads, and every key set, under a comment."""
    section, documented, state = "", set(), ""
    for raw in EXAMPLE_CFG.read_text().splitlines():
        line = raw.strip()
        if header := re.fullmatch(r"\[(\w+)\]", line):
            section, state = header.group(1), ""
        elif key := re.fullmatch(r"#?\s*(\w+)\s*=.*", line):  # a key, set or commented out
            # documented: a comment right above it, or above the keys right above it
            assert state in ("comment", "key"), f"[{section}] {key.group(1)} is not explained"
            documented.add((section, key.group(1)))
            state = "key"
        else:
            state = "comment" if line.startswith("#") else ""
    read_by_linea_luigi = {("artifact_store", name) for name, _ in config_class().get_params()}
    assert read_by_linea_luigi == {
        ("artifact_store", k)
        for k in (
            "db_connection",
            "artifact_storage_dir",
            "storage_options",
            "checksum",
            "lock_timeout",
            "serializer",
            "cache_dir",
            "cache_max_bytes",
            "dedup",
            "task_lock",
            "task_lock_timeout",
        )
    }
    assert read_by_linea_luigi <= documented
    assert set(cfg_items(read_cfg(EXAMPLE_CFG))) <= documented


@pytest.mark.parametrize(
    ("path", "db_host", "endpoint", "scheduler_host", "state_path"),
    [
        (
            DEPLOY_CFG,
            "postgres",
            "http://minio:9000",
            "linea-luigid",
            "/var/lib/luigi/state.pickle",
        ),
        (
            EXAMPLE_CFG,
            "127.0.0.1",
            "http://127.0.0.1:9000",
            "127.0.0.1",
            "/tmp/linea-luigid-state.pickle",
        ),
    ],
)
def test_config_parses_with_luigi_into_the_stack_settings(
    luigi_cfg: Callable[[str], Path],
    path: Path,
    db_host: str,
    endpoint: str,
    scheduler_host: str,
    state_path: str,
) -> None:
    luigi_cfg(path.read_text())
    settings = ll.resolve_settings()
    url = settings.database_url
    assert (url.drivername, url.host, url.port, url.database, url.username, url.password) == (
        "postgresql+psycopg2",
        db_host,
        5432,
        "luigi",
        "luigi",
        None,
    )
    assert history_url() == url  # Luigi's task history and the artifacts: one database
    assert settings.storage_dir == "s3://artifacts/pipelines"
    assert settings.storage_options == {"client_kwargs": {"endpoint_url": endpoint}}
    assert settings.checksum == "blake3"
    sched = luigi.scheduler.scheduler()
    assert sched.record_task_history is True
    assert sched.state_path == state_path
    core = luigi.interface.core()
    assert (core.scheduler_host, core.scheduler_port) == (scheduler_host, 8082)


# -- the README's "without Docker" variant, as written ---------------------------------------

README = ROOT / "README.md"
#: programs the block may call by bare name: the system's, not the virtualenv's
SYSTEM_PROGRAMS = {"python3", "psql", "curl", "export", "linea_ready", "kill"}
#: the words of the shell function ``linea_ready() { until curl ...; do sleep 1; done; }``
SHELL_WORDS = {"linea_ready()", "do", "done", "}"}


def readme_without_docker() -> tuple[list[str], list[tuple[str, str, str]]]:
    """The commands of the README's "Without Docker" block, and its table's config lines.

    Commands are joined across ``\\`` continuations, comments dropped; each table
    line is (section, key, value) as the table writes it.
    """
    text = README.read_text()
    start = text.index("**Without Docker**")
    section = text[start : text.index("\n### ", start)]
    block = section[section.index("```bash\n") + 8 :]
    block = block[: block.index("```")].replace("\\\n", " ")
    commands = [re.sub(r"\s+#\s.*$", "", line).strip() for line in block.splitlines()]
    table = re.findall(r"^\| [^|]+\| `\[(\w+)\] (\w+) = ([^`]+)`", section, re.M)
    return [c for c in commands if c], table


def test_the_guide_names_programs_and_files_that_exist() -> None:
    """Every program is the virtualenv's (or a system tool), every file is in the repository."""
    commands, _ = readme_without_docker()
    venv_bin = Path(sys.executable).parent
    named = set()
    for command in commands:
        for part in re.split(r"&&|;|&(?!&)", command):
            words = part.split()
            while words and "=" in words[0] and not words[0].startswith("-"):
                words = words[1:]  # VAR=value before a command
            if not words:
                continue
            program = words[0]
            if program.startswith(".venv/bin/"):
                named.add(program.removeprefix(".venv/bin/"))
            else:
                assert program in SYSTEM_PROGRAMS | SHELL_WORDS, f"{program!r}: use .venv/bin/"
            for word in words[1:]:
                if re.fullmatch(r"(deploy|examples)/[\w./-]+|luigi\.cfg\.example", word):
                    assert (ROOT / word).is_file(), word
    assert named == {"pip", "moto_server", "python", "linea-luigid"}
    for program in named:  # pip installed them here as the block's first line does there
        assert (venv_bin / program).is_file(), program
    assert any(c.startswith("python3 -m venv .venv &&") for c in commands)
    assert "moto[server]" in commands[0]
    assert any("LUIGI_CONFIG_PATH=$PWD/luigi.cfg.example" in c for c in commands)


def test_the_guide_table_names_the_lines_of_the_example() -> None:
    """The table's lines are the example's own; its commands use the same ports."""
    commands, table = readme_without_docker()
    example = cfg_items(read_cfg(EXAMPLE_CFG))
    rows = {(sec, key): value.strip() for sec, key, value in table}
    assert set(rows) == set(CHANGED_FOR_A_RUN) | {("artifact_store", "artifact_storage_dir")}
    for key, value in rows.items():
        assert example[key] == value, key
    joined = "\n".join(commands)
    endpoint = json.loads(example["artifact_store", "storage_options"])
    s3_port = urllib.parse.urlsplit(endpoint["client_kwargs"]["endpoint_url"]).port
    assert f"moto_server -H 127.0.0.1 -p {s3_port}" in joined
    db = sa.make_url(example["task_history", "db_connection"])
    assert f"CREATE ROLE {db.username} LOGIN" in joined
    assert f"CREATE DATABASE {db.database} OWNER {db.username}" in joined
    assert f"PGPASSWORD={db.username}" in joined
    assert f"linea-luigid --address 127.0.0.1 --port {example['core', 'scheduler_port']}" in joined


#: what a run on shared machines changes in luigi.cfg.example: the README's table, less the bucket
CHANGED_FOR_A_RUN = (
    ("task_history", "db_connection"),
    ("artifact_store", "storage_options"),
    ("core", "scheduler_port"),
    ("scheduler", "state_path"),
)


# -- the README's "without Docker" variant, for real --------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


@contextmanager
def linea_luigid(port: int, tmp_path: Path, env: dict[str, str]) -> Iterator[str]:
    """``linea-luigid`` on ``port`` until its visualiser answers; yields its base URL."""
    exe = Path(sys.executable).with_name("linea-luigid")
    log = tmp_path / "linea-luigid.log"
    state = tmp_path / "state.pickle"
    cmd = [str(exe), "--address", LOOPBACK, "--port", str(port), "--state-path", str(state)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    base = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:  # the compose health check's probe
            if proc.poll() is not None:
                pytest.fail(f"linea-luigid exited {proc.returncode}: {log.read_text()[-3000:]}")
            try:
                http_get(f"{base}/static/visualiser/index.html")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"linea-luigid did not answer in 30 s: {log.read_text()[-3000:]}")
                time.sleep(0.2)
        yield base
    finally:
        stop_process(proc)


@pytest.fixture
def s3_server() -> Iterator[str]:
    with moto_s3() as url:
        yield url


def test_the_stack_without_docker_runs_the_example(
    pg_url: str, s3_server: str, tmp_path: Path
) -> None:
    """luigi.cfg.example with the servers' real addresses, then the README's commands."""
    cfg = read_cfg(EXAMPLE_CFG)
    port = free_port()
    cfg["task_history"]["db_connection"] = pg_url
    cfg["artifact_store"]["storage_options"] = json.dumps(
        {"client_kwargs": {"endpoint_url": s3_server}}
    )
    cfg["core"]["scheduler_port"] = str(port)
    cfg["scheduler"]["state_path"] = str(tmp_path / "unused-state.pickle")
    changed = {k for k, v in cfg_items(cfg).items() if cfg_items(read_cfg(EXAMPLE_CFG))[k] != v}
    assert changed == set(CHANGED_FOR_A_RUN)  # the README's table names every line to change
    cfg_path = tmp_path / "luigi.cfg"
    with open(cfg_path, "w") as fh:
        cfg.write(fh)
    commands, _ = readme_without_docker()
    scripts = [c.split()[1] for c in commands if c.startswith(".venv/bin/python ")]
    assert scripts == ["deploy/create_bucket.py", "examples/pipeline.py", "examples/retrieve.py"]
    (tmp_path / "home").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINEA_LUIGI_", "AWS_"))}
    env.update(
        HOME=str(tmp_path / "home"),
        LUIGI_CONFIG_PATH=str(cfg_path),
        PGPASSWORD="luigi",
        AWS_ACCESS_KEY_ID="linea",
        AWS_SECRET_ACCESS_KEY="linea-secret",
        AWS_DEFAULT_REGION="us-east-1",
    )
    env.pop("PYTHONPATH", None)

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def ran(stdout: str) -> int:
        return sum(line.endswith(" ran") for line in stdout.splitlines())

    bucket_job = str(ROOT / "deploy" / "create_bucket.py")
    assert run(bucket_job).strip() == "bucket artifacts of s3://artifacts/pipelines: created"
    assert "already there" in run(bucket_job)

    pipeline, retrieve = (
        str(ROOT / "examples" / "pipeline.py"),
        str(ROOT / "examples" / "retrieve.py"),
    )
    with linea_luigid(port, tmp_path, env) as base:
        first = run(pipeline)  # the scheduler named by luigi.cfg [core]
        assert f"scheduler: {base}" in first and ran(first) == 5
        again = run(pipeline, "--scheduler-host", LOOPBACK, "--scheduler-port", str(port))
        assert again.count("up to date, skipped") == 5
        changed = run(pipeline, "--scheduler-url", f"{base}/", "--alpha", "10")
        assert ran(changed) == 2

        history = http_get(f"{base}/history")
        for family in ("GenerateReadings", "CleanReadings", "BuildFeatures", "TrainModel"):
            assert family in history
        report_runs = http_get(f"{base}/history/by_name/Report")
        assert report_runs.count("DONE") >= 2  # one run per alpha

        # the artifact browser on the same port reads the same database
        listed = json.loads(http_get(f"{base}/api/artifacts"))["artifacts"]
        assert [(a["name"], a["version"]) for a in listed] == [
            ("demand.clean", 0),
            ("demand.features", 0),
            ("demand.model", 1),
            ("demand.raw", 0),
            ("demand.report", 1),
        ]
        report = json.loads(http_get(f"{base}/api/artifacts/demand.report/1"))
        assert report["uri"].startswith("s3://artifacts/pipelines/demand.report/")
        assert report["upstream"] == [
            {"name": "demand.features", "version": 0},
            {"name": "demand.model", "version": 1},
        ]
        assert [r["status"] for r in report["runs"]] == ["DONE"]
        page = http_get(f"{base}/artifacts/demand.report/1?depth=4")
        for name in ("demand.raw", "demand.clean", "demand.features", "demand.model"):
            assert f'class="ll-node" data-name="{name}"' in page
        assert 'class="ll-node ll-focus" data-name="demand.report" data-version="1"' in page

    out = run(retrieve)
    assert "demand.report v1" in out and "alpha=10.0" in out
    assert "  demand.model     v1   2 version(s)" in out
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="artifacts")["Contents"]]
    assert len(keys) == 7 and all(k.startswith("pipelines/") for k in keys)
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            root = conn.execute(
                sa.text("SELECT value FROM ll_store_info WHERE key = 'storage_root'")
            ).scalar_one()
            families = set(conn.execute(sa.text("SELECT DISTINCT name FROM tasks")).scalars())
    finally:
        engine.dispose()
    assert root == "s3://artifacts/pipelines"
    assert families == {
        "GenerateReadings",
        "CleanReadings",
        "BuildFeatures",
        "TrainModel",
        "Report",
    }
