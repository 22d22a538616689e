"""The example pipeline, run for real: as a script, through Luigi's command line, and retrieved.

Every run is a separate Python process on its own SQLite file and artifact
folder, configured only through the environment, exactly as a user would run
it. The expected scores are derived from the generator's ground truth (stored
in the raw artifact), never from an earlier run.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import linea_luigi as ll

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
STAGES = {  # artifact name -> the task that makes it
    "demand.raw": "GenerateReadings",
    "demand.clean": "CleanReadings",
    "demand.features": "BuildFeatures",
    "demand.model": "TrainModel",
    "demand.report": "Report",
}
#: the CLI exits 0 on a failed task unless told otherwise
STRICT_RETCODES = [
    f"--retcode-{kind}=3"
    for kind in ("task-failed", "scheduling-error", "missing-data", "unhandled-exception")
]


@dataclass(frozen=True)
class Sandbox:
    """One isolated place to run the example: its environment and its store."""

    dir: Path

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.dir / 'db.sqlite'}"

    @property
    def storage_dir(self) -> Path:
        return self.dir / "art"

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LINEA_LUIGI_", "LUIGI_CONFIG_PATH", "PYTHONPATH"))
        }
        empty_cfg = self.dir / "luigi.cfg"
        empty_cfg.touch()
        env.update(
            HOME=str(self.dir / "home"),
            LUIGI_CONFIG_PATH=str(empty_cfg),
            LINEA_LUIGI_DATABASE_URL=self.db_url,
            LINEA_LUIGI_ARTIFACT_STORAGE_DIR=str(self.storage_dir),
            PYTHONPATH=os.pathsep.join([str(ROOT), str(EXAMPLES)]),
        )
        return env

    def run(self, *args: str | Path) -> str:
        """Run a Python command in the sandbox; fail the test with its output if it fails."""
        (self.dir / "home").mkdir(exist_ok=True)
        proc = subprocess.run(
            [sys.executable, *map(str, args)],
            cwd=self.dir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, (
            f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
        return proc.stdout

    def pipeline(self, *args: str) -> str:
        return self.run(EXAMPLES / "pipeline.py", *args)

    def luigi_cli(self, *args: str) -> str:
        return self.run(
            "-m",
            "luigi",
            "--module",
            "pipeline",
            "Report",
            "--local-scheduler",
            *STRICT_RETCODES,
            *args,
        )

    def store(self) -> ll.ArtifactStore:
        return ll.ArtifactStore(db_url=self.db_url, storage_dir=str(self.storage_dir))

    def versions(self) -> dict[str, list[int]]:
        """Every version of every stage's artifact."""
        store = self.store()
        return {name: [a.version for a in store.versions(name)] for name in STAGES}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Sandbox, str]:
    """The example run once with its defaults, as `python examples/pipeline.py`."""
    box = Sandbox(tmp_path_factory.mktemp("example"))
    return box, box.pipeline()


@pytest.fixture
def fresh(tmp_path: Path) -> Sandbox:
    """A sandbox where the example has run once (for tests that run it again)."""
    box = Sandbox(tmp_path / "sandbox")
    box.dir.mkdir()
    box.pipeline()
    return box


def _expected_r2(truth: dict[str, object]) -> float:
    """R² of the true relation on endless data: variance of the signal over that of demand."""
    coefs, variances = truth["coefs"], truth["term_variance"]
    assert isinstance(coefs, dict) and isinstance(variances, dict)
    signal = sum(c**2 * variances[term] for term, c in coefs.items())
    noise_sd = truth["noise_sd"]
    assert isinstance(noise_sd, float)
    return float(signal / (signal + noise_sd**2))


def _check_r2(m: dict[str, float]) -> None:
    """The ceiling bounds the model and the true relation, and the model comes close to it."""
    assert m["r2"] <= m["r2_ceiling"] + 1e-12
    assert m["r2_true_relation"] <= m["r2_ceiling"] + 1e-12
    # The model space contains the true relation: the model falls short of the ceiling only
    # by its estimation error (~7 coefficients from ~1400 rows), and the true relation by
    # the ceiling's fit to the noise of the test rows (~7 of ~470 rows' worth).
    assert m["r2_ceiling"] - m["r2"] < 0.01
    assert m["r2_ceiling"] - m["r2_true_relation"] < 0.01


def test_ceiling_is_the_best_linear_fit_of_the_test_rows(first_run: tuple[Sandbox, str]) -> None:
    box, stdout = first_run
    store = box.store()
    f, m = store.load("demand.features", 0), store.load("demand.report", 0)["metrics"]
    x, y = f["x_test"], f["y_test"]
    design = np.column_stack([np.ones(len(y)), x])
    best = np.linalg.lstsq(design, y, rcond=None)[0]

    def r2(pred: np.ndarray) -> float:
        return float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))

    assert m["r2_ceiling"] == pytest.approx(r2(design @ best), abs=1e-12)
    rng = np.random.default_rng(0)  # no other linear model of these features does better
    for _ in range(200):
        assert r2(design @ (best + rng.normal(0, 0.05, best.shape))) < m["r2_ceiling"]
    printed = f"R² {m['r2']:.3f} (true relation {m['r2_true_relation']:.3f}, "
    assert printed + f"ceiling {m['r2_ceiling']:.3f}) on {len(y)} held-out rows" in stdout


SCHEDULER_CHOICE = """
import json, sys
import pipeline

def choose(argv):
    try:
        return pipeline.scheduler_options(pipeline.parse_args(argv))
    except SystemExit as exc:
        return f"exit {exc.code}"

print(json.dumps([choose(argv) for argv in json.loads(sys.argv[1])]))
"""


def test_scheduler_options_are_luigis(tmp_path: Path) -> None:
    """Luigi's options choose the scheduler; with none, luigi.cfg [core], else in-process."""
    box = Sandbox(tmp_path)
    cases = [
        [],
        ["--local-scheduler", "--workers", "3"],
        ["--scheduler-host", "sched.example", "--scheduler-port", "9999"],
        ["--scheduler-port", "8083"],
        ["--scheduler-url", "http://sched.example:8082/"],
        ["--local-scheduler", "--scheduler-host", "sched.example"],
    ]
    assert json.loads(box.run("-c", SCHEDULER_CHOICE, json.dumps(cases))) == [
        {"local_scheduler": True},
        {"local_scheduler": True},
        {"local_scheduler": False, "scheduler_host": "sched.example", "scheduler_port": 9999},
        {"local_scheduler": False, "scheduler_port": 8083},
        {"local_scheduler": False, "scheduler_url": "http://sched.example:8082/"},
        "exit 2",
    ]
    for key in ("scheduler_host", "default_scheduler_host"):  # the latter deprecated by Luigi
        (box.dir / "luigi.cfg").write_text(f"[core]\n{key} = sched.example\n")
        choices = box.run("-c", SCHEDULER_CHOICE, json.dumps([[], ["--local-scheduler"]]))
        assert json.loads(choices) == [
            {"local_scheduler": False},  # Luigi then reads the host from [core] itself
            {"local_scheduler": True},
        ]


def test_first_run_makes_version_0_of_every_stage(first_run: tuple[Sandbox, str]) -> None:
    box, stdout = first_run
    assert box.versions() == {name: [0] for name in STAGES}
    store = box.store()
    for name, family in STAGES.items():
        artifact = store.get(name, 0)
        assert artifact.task_family == family
        assert artifact.identity_key
        assert artifact.params is not None and str(artifact.params["seed"]) == "42"
        assert f"{name:<16} v0   ran" in stdout
    assert (box.storage_dir).is_dir()
    assert not (box.dir / "home" / ".linea_luigi").exists(), "the environment was ignored"


def test_cleaning_drops_exactly_the_corrupted_rows(first_run: tuple[Sandbox, str]) -> None:
    store = first_run[0].store()
    raw, clean = store.load("demand.raw", 0), store.load("demand.clean", 0)
    corrupted = raw["truth"]["corrupted"]
    kept = np.zeros(len(raw["demand"]), dtype=bool)
    kept[clean["kept_rows"]] = True
    assert corrupted.sum() > 0.03 * len(kept)  # the generator really injected dirt
    assert not (kept & corrupted).any(), "a corrupted row survived cleaning"
    # a robust z-score of 6 drops almost no genuine row; allow 0.5 % of them
    assert (~kept & ~corrupted).sum() <= 0.005 * len(kept)
    assert not np.isnan(clean["x"]).any() and not np.isnan(clean["demand"]).any()


def test_report_scores_match_the_generator(first_run: tuple[Sandbox, str]) -> None:
    store = first_run[0].store()
    truth = store.load("demand.raw", 0)["truth"]
    report = store.load("demand.report", 0)
    m, rows = report["metrics"], report["rows"]
    _check_r2(m)
    # The true relation's R² on ~470 test rows varies around its expectation with a standard
    # deviation of about 0.01; allow 5 of them.
    expected = _expected_r2(truth)
    assert expected - 0.05 < m["r2_true_relation"] < expected + 0.05
    # it really is the true relation: what it leaves is the generator's noise
    y = store.load("demand.features", 0)["y_test"]
    noise = np.sqrt((1 - m["r2_true_relation"]) * np.mean((y - y.mean()) ** 2))
    assert noise == pytest.approx(truth["noise_sd"], rel=0.1)
    # likewise the test RMSE estimates the noise: ~3 % standard error on ~470 rows
    assert m["rmse"] == pytest.approx(truth["noise_sd"], rel=0.15)
    assert m["mae"] < m["rmse"] < m["baseline_rmse"]
    assert (
        rows["train"] + rows["test"]
        == rows["raw"] - rows["dropped_missing"] - rows["dropped_outliers"]
    )
    assert rows["test"] == round((rows["train"] + rows["test"]) * 0.25)
    assert report["seed"] == 42 and report["alpha"] == 1.0
    assert report["artifacts"] == {name: 0 for name in STAGES if name != "demand.report"}


def test_report_lineage_points_at_the_model_it_scored(first_run: tuple[Sandbox, str]) -> None:
    store = first_run[0].store()
    report = store.load("demand.report", 0)
    parents = {(a.name, a.version) for a in store.upstream("demand.report", 0)}
    assert parents == {
        ("demand.model", report["artifacts"]["demand.model"]),
        ("demand.features", 0),
    }
    chain = [("demand.model", "demand.features"), ("demand.features", "demand.clean")]
    chain.append(("demand.clean", "demand.raw"))
    for child, parent in chain:
        assert [(a.name, a.version) for a in store.upstream(child, 0)] == [(parent, 0)]
    assert store.upstream("demand.raw", 0) == []
    assert [(a.name, a.version) for a in store.downstream("demand.model", 0)] == [
        ("demand.report", 0)
    ]


def test_retrieve_prints_the_report_and_its_lineage(first_run: tuple[Sandbox, str]) -> None:
    box = first_run[0]
    report = box.store().load("demand.report", 0)
    out = box.run(EXAMPLES / "retrieve.py")
    assert "demand.report v0" in out
    m = report["metrics"]
    assert f"test R²    {m['r2']:.3f}      (the true relation: {m['r2_true_relation']:.3f}" in out
    assert "demand.model v0: ridge, alpha=1.0" in out
    assert "└─ demand.model v0   (TrainModel(" in out
    assert "└─ demand.raw v0   (GenerateReadings(" in out
    for name in STAGES:
        assert f"  {name:<16} v0   1 version(s)" in out
    assert box.run(EXAMPLES / "retrieve.py", "--version", "0") == out


def test_second_run_through_the_luigi_cli_makes_nothing(first_run: tuple[Sandbox, str]) -> None:
    """Another process, another entry point (module `pipeline`, not `__main__`): same identities."""
    box = first_run[0]
    before = box.versions()
    box.luigi_cli()
    assert box.versions() == before
    again = box.pipeline()
    assert again.count("up to date, skipped") == len(STAGES)
    assert box.versions() == before


def test_changing_alpha_reruns_only_the_model_and_the_report(fresh: Sandbox) -> None:
    fresh.luigi_cli("--alpha", "10")
    assert fresh.versions() == {
        "demand.raw": [0],
        "demand.clean": [0],
        "demand.features": [0],
        "demand.model": [0, 1],
        "demand.report": [0, 1],
    }
    store = fresh.store()
    assert [(a.name, a.version) for a in store.upstream("demand.model", 1)] == [
        ("demand.features", 0)
    ]
    assert store.load("demand.model", 1)["alpha"] == 10.0
    assert store.load("demand.report", 1)["artifacts"]["demand.model"] == 1


def test_changing_the_seed_reruns_every_stage(fresh: Sandbox) -> None:
    fresh.pipeline("--seed", "7", "--workers", "2")
    assert fresh.versions() == {name: [0, 1] for name in STAGES}
    store = fresh.store()
    report = store.load("demand.report", 1)
    assert report["seed"] == 7
    assert report["artifacts"] == {name: 1 for name in STAGES if name != "demand.report"}
    _check_r2(report["metrics"])
    expected = _expected_r2(store.load("demand.raw", 1)["truth"])
    assert expected - 0.05 < report["metrics"]["r2"] < expected + 0.05
    assert not math.isclose(
        report["metrics"]["r2"], store.load("demand.report", 0)["metrics"]["r2"]
    )
    # the first seed's outputs are still there, and still complete for their parameters
    fresh.pipeline()
    assert fresh.versions() == {name: [0, 1] for name in STAGES}


def test_bumping_a_code_version_reruns_that_stage_and_what_follows(fresh: Sandbox) -> None:
    """Simulates editing BuildFeatures: a copy of the example with its code version bumped."""
    source = (EXAMPLES / "pipeline.py").read_text()
    marker = 'artifact_code_version = "1"  # bump when the feature logic changes'
    assert source.count(marker) == 1
    edited = fresh.dir / "edited"
    edited.mkdir()
    (edited / "pipeline.py").write_text(source.replace(marker, marker.replace('"1"', '"2"')))

    fresh.run(edited / "pipeline.py")
    assert fresh.versions() == {
        "demand.raw": [0],
        "demand.clean": [0],
        "demand.features": [0, 1],
        "demand.model": [0, 1],
        "demand.report": [0, 1],
    }
    store = fresh.store()
    assert [(a.name, a.version) for a in store.upstream("demand.features", 1)] == [
        ("demand.clean", 0)
    ]
    assert (
        store.get("demand.features", 1).identity_key != store.get("demand.features", 0).identity_key
    )
