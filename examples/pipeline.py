"""Example pipeline: forecast a day's electricity demand from weather readings.

Five Luigi tasks, each saving one versioned artifact in the linea_luigi store::

    GenerateReadings -> CleanReadings -> BuildFeatures -> TrainModel -> Report
      demand.raw        demand.clean    demand.features   demand.model   demand.report
                                              |                            ^
                                              +----------------------------+

Everything is synthetic and seeded (numpy only, no downloads), and the true
relation is known, so the report can say how close the model gets to the best
possible score. Run it with::

    python examples/pipeline.py                     # or, with examples/ on PYTHONPATH:
    python -m luigi --module pipeline Report --local-scheduler

It takes Luigi's scheduler options: ``--scheduler-host``/``--scheduler-port``
(or ``--scheduler-url``) run it through a central scheduler such as
``linea-luigid``, as does a ``[core] scheduler_host`` in luigi.cfg;
without either it uses an in-process scheduler (``--local-scheduler``).

A second run skips every task (each output is found by its identity key);
changing ``--alpha`` reruns only TrainModel and Report, changing ``--seed``,
``--date`` or ``--n-rows`` reruns everything, and bumping a task's
``artifact_code_version`` reruns that task and the ones after it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from typing import Any

import luigi
import luigi.configuration
import luigi.interface
import numpy as np
from luigi.execution_summary import LuigiStatusCode
from luigi.task import flatten

import linea_luigi as ll

#: the names under which the outputs can be loaded later, from any process
RAW, CLEAN, FEATURES, MODEL, REPORT = (
    "demand.raw",
    "demand.clean",
    "demand.features",
    "demand.model",
    "demand.report",
)

# -- the generator's ground truth ----------------------------------------------------------
#: raw columns: (name, mean, standard deviation) of each weather reading
COLUMNS: tuple[tuple[str, float, float], ...] = (
    ("temperature", 15.0, 8.0),  # °C
    ("humidity", 60.0, 15.0),  # %
    ("wind_speed", 5.0, 2.0),  # m/s
    ("pressure", 1013.0, 9.0),  # hPa; has no effect on demand: a distractor
)
BASE_DEMAND = 100.0  # MW
#: demand = BASE_DEMAND + sum(coef * term) + noise, each term a function of the columns'
#: standard scores z; every term has mean 0 and the variance given in TERM_VARIANCE
TRUE_COEFS: dict[str, float] = {
    "z_temperature": 6.0,
    "z_humidity": -3.0,
    "z_temperature*z_humidity": 2.0,
    "z_wind_speed**2-1": 1.5,
}
TERM_VARIANCE: dict[str, float] = {  # z ~ N(0, 1) independent: Var(z1*z2) = 1, Var(z**2) = 2
    "z_temperature": 1.0,
    "z_humidity": 1.0,
    "z_temperature*z_humidity": 1.0,
    "z_wind_speed**2-1": 2.0,
}
NOISE_SD = 2.5  # MW of demand that no reading explains
MISSING_RATE = 0.01  # share of readings lost (NaN)
SENSOR_ERROR = -999.0  # what a failed sensor writes
SENSOR_ERROR_RATE = 0.005  # share of readings replaced by SENSOR_ERROR
SPIKE_RATE = 0.01  # share of demand values multiplied by SPIKE_FACTOR (a meter double-counting)
SPIKE_FACTOR = 10.0

OUTLIER_Z = 6.0  # robust z-score beyond which CleanReadings drops a row
TEST_FRACTION = 0.25

DEFAULT_DATE = dt.date(2024, 1, 15)


def _terms(z: np.ndarray) -> dict[str, np.ndarray]:
    """The true relation's terms (keys of TRUE_COEFS) from the readings' standard scores."""
    zt, zh, zw = z[:, 0], z[:, 1], z[:, 2]
    return {
        "z_temperature": zt,
        "z_humidity": zh,
        "z_temperature*z_humidity": zt * zh,
        "z_wind_speed**2-1": zw**2 - 1,
    }


def true_demand(readings: np.ndarray) -> np.ndarray:
    """Demand the generator's true relation gives for raw readings (one row each), noise-free."""
    mean = np.array([m for _, m, _ in COLUMNS])
    sd = np.array([s for _, _, s in COLUMNS])
    terms = _terms((readings - mean) / sd)
    return np.asarray(BASE_DEMAND + sum(c * terms[t] for t, c in TRUE_COEFS.items()))


def _rng(seed: int, date: dt.date, stream: str) -> np.random.Generator:
    """Independent, reproducible random streams per (seed, date, purpose)."""
    return np.random.default_rng([seed, date.toordinal(), sum(map(ord, stream))])


# -- tasks ----------------------------------------------------------------------------------


class DemandTask(ll.ArtifactTaskMixin, luigi.Task):
    """Parameters every stage shares: they all feed into the data, so into every identity."""

    date = luigi.DateParameter(default=DEFAULT_DATE, description="day the readings are for")
    seed = luigi.IntParameter(default=42, description="seed of the synthetic data and the split")
    n_rows = luigi.IntParameter(default=2000, description="readings generated for the day")


class GenerateReadings(DemandTask):
    """Stands in for an extract step: one day of weather readings and metered demand.

    It injects the dirt a real feed has (missing values, sensor error codes,
    demand spikes), and keeps the ground truth (true coefficients, noise, which
    rows it corrupted) beside the data so tests can judge cleaning and model.
    """

    artifact_name = RAW

    def run(self) -> None:
        rng = _rng(self.seed, self.date, "readings")
        n = self.n_rows
        z = rng.standard_normal((n, len(COLUMNS)))
        x = np.array([mean for _, mean, _ in COLUMNS]) + z * np.array([sd for _, _, sd in COLUMNS])
        terms = _terms(z)
        demand = BASE_DEMAND + sum(c * terms[t] for t, c in TRUE_COEFS.items())
        demand = demand + rng.normal(0.0, NOISE_SD, n)

        missing = rng.random(x.shape) < MISSING_RATE
        errors = ~missing & (rng.random(x.shape) < SENSOR_ERROR_RATE)
        spikes = rng.random(n) < SPIKE_RATE
        x[missing] = np.nan
        x[errors] = SENSOR_ERROR
        demand[spikes] *= SPIKE_FACTOR
        self.save(
            {
                "date": self.date.isoformat(),
                "columns": [name for name, _, _ in COLUMNS],
                "x": x,
                "demand": demand,
                # the ground truth, kept so a test can judge the cleaning and the model
                "truth": {
                    "coefs": TRUE_COEFS,
                    "term_variance": TERM_VARIANCE,
                    "noise_sd": NOISE_SD,
                    "corrupted": missing.any(axis=1) | errors.any(axis=1) | spikes,
                },
            }
        )


class CleanReadings(DemandTask):
    """Drops rows with a missing value, a sensor error code or an outlier.

    Outliers are judged by a robust z-score (median and MAD), because a mean and
    standard deviation computed with the spikes inside would hide them.
    """

    artifact_name = CLEAN
    artifact_code_version = "1"

    def requires(self) -> GenerateReadings:
        return self.clone(GenerateReadings)

    def run(self) -> None:
        raw = self.load_input()
        table = np.column_stack([raw["x"], raw["demand"]])
        table[table == SENSOR_ERROR] = np.nan
        missing = np.isnan(table).any(axis=1)
        median = np.median(table[~missing], axis=0)
        mad = np.median(np.abs(table[~missing] - median), axis=0) * 1.4826  # = sd for normal data
        outlier = ~missing & (np.abs(np.nan_to_num(table) - median) / mad > OUTLIER_Z).any(axis=1)
        keep = ~missing & ~outlier
        self.save(
            {
                "date": raw["date"],
                "columns": raw["columns"],
                "x": table[keep, :-1],
                "demand": table[keep, -1],
                "kept_rows": np.flatnonzero(keep),
                "n_raw": len(table),
                "dropped_missing": int(missing.sum()),
                "dropped_outliers": int(outlier.sum()),
            }
        )


class BuildFeatures(DemandTask):
    """Splits train/test, adds derived columns and standardises with train statistics only.

    Statistics from the training rows alone keep the test rows unseen. The
    derived columns (temperature x humidity, wind speed squared) let a linear
    model express the non-linear demand.
    """

    artifact_name = FEATURES
    artifact_code_version = "1"  # bump when the feature logic changes

    def requires(self) -> CleanReadings:
        return self.clone(CleanReadings)

    def run(self) -> None:
        clean = self.load_input()
        x, y = clean["x"], clean["demand"]
        col = {name: x[:, i] for i, name in enumerate(clean["columns"])}
        derived = {
            "temperature*humidity": col["temperature"] * col["humidity"],
            "wind_speed**2": col["wind_speed"] ** 2,
        }
        names = [*clean["columns"], *derived]
        full = np.column_stack([x, *derived.values()])

        order = _rng(self.seed, self.date, "split").permutation(len(y))
        n_test = round(len(y) * TEST_FRACTION)
        test, train = order[:n_test], order[n_test:]
        mean, std = full[train].mean(axis=0), full[train].std(axis=0)
        self.save(
            {
                "feature_names": names,
                "mean": mean,
                "std": std,
                "x_train": (full[train] - mean) / std,
                "y_train": y[train],
                "x_test": (full[test] - mean) / std,
                "y_test": y[test],
            }
        )


class TrainModel(DemandTask):
    """Ridge regression in closed form on the training rows; the intercept is not penalised."""

    artifact_name = MODEL
    artifact_code_version = "1"
    alpha = luigi.FloatParameter(default=1.0, description="ridge penalty")

    def requires(self) -> BuildFeatures:
        return self.clone(BuildFeatures)

    def run(self) -> None:
        f = self.load_input()
        x, y = f["x_train"], f["y_train"]
        intercept = float(y.mean())  # features are centred on the training rows
        coef = np.linalg.solve(x.T @ x + self.alpha * np.eye(x.shape[1]), x.T @ (y - intercept))
        self.save(
            {
                "kind": "ridge",
                "alpha": self.alpha,
                "feature_names": f["feature_names"],
                "intercept": intercept,
                "coef": coef,
                "train_rmse": _rmse(y, intercept + x @ coef),
            }
        )


def predict(model: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Demand predicted by a saved model for standardised features ``x``."""
    return np.asarray(model["intercept"] + x @ model["coef"])


def _rmse(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - pred) ** 2)))


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    residual = y - pred
    return 1.0 - float(residual @ residual) / float(((y - y.mean()) ** 2).sum())


def r2_ceiling(x: np.ndarray, y: np.ndarray) -> float:
    """The best R² any model linear in the features ``x`` can reach on these very rows.

    Least squares fitted to the rows themselves: no such model, whatever it was
    trained on, scores higher there. The true relation is one of them (the
    derived columns make it linear in the features), so it bounds that too.
    """
    design = np.column_stack([np.ones(len(y)), x])
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    return _r2(y, design @ coef)


class Report(DemandTask):
    """Scores the model on the held-out rows and records exactly which artifacts it used.

    Beside the model's R², on the same rows: ``r2_true_relation``, what the
    generator's own noise-free relation scores (a perfect model), and
    ``r2_ceiling``, the most any model linear in these features can score.
    The versions come from the store's lineage, so the report names the data
    the model was really trained on, not the latest data at reading time.
    """

    artifact_name = REPORT
    artifact_code_version = "2"  # 2: the ceiling is computed on the held-out rows
    alpha = luigi.FloatParameter(default=1.0, description="ridge penalty of the model scored")

    def requires(self) -> dict[str, luigi.Task]:
        return {"model": self.clone(TrainModel), "features": self.clone(BuildFeatures)}

    def run(self) -> None:
        inputs = self.load_input()
        model, f = inputs["model"], inputs["features"]
        x, y = f["x_test"], f["y_test"]
        pred = predict(model, x)
        readings = (x * f["std"] + f["mean"])[:, : len(COLUMNS)]  # undo the standardising

        store = self.artifact_store()
        versions = _lineage_versions(store, [target.get() for target in self.input().values()])
        clean = store.load(CLEAN, versions[CLEAN])
        self.save(
            {
                "date": self.date.isoformat(),
                "seed": self.seed,
                "alpha": self.alpha,
                "metrics": {
                    "rmse": _rmse(y, pred),
                    "mae": float(np.mean(np.abs(y - pred))),
                    "r2": _r2(y, pred),
                    "r2_true_relation": _r2(y, true_demand(readings)),
                    "r2_ceiling": r2_ceiling(x, y),
                    "baseline_rmse": _rmse(y, np.full_like(y, f["y_train"].mean())),
                },
                "rows": {
                    "raw": clean["n_raw"],
                    "dropped_missing": clean["dropped_missing"],
                    "dropped_outliers": clean["dropped_outliers"],
                    "train": len(f["y_train"]),
                    "test": len(y),
                },
                "coefficients": dict(
                    zip(model["feature_names"], map(float, model["coef"]), strict=True)
                ),
                "artifacts": versions,
            }
        )


def _lineage_versions(store: ll.ArtifactStore, start: list[ll.Artifact]) -> dict[str, int]:
    """Name -> version of these artifacts and everything upstream of them."""
    found: dict[str, int] = {}
    todo = list(start)
    while todo:
        art = todo.pop()
        if found.setdefault(art.name, art.version) != art.version:
            raise RuntimeError(
                f"{art.name} is used in two versions: {found[art.name]} and {art.version}"
            )
        todo.extend(store.upstream(art.name, art.version))
    return dict(sorted(found.items()))


# -- command line ---------------------------------------------------------------------------


def _all_tasks(task: luigi.Task) -> list[luigi.Task]:
    """The task and everything it depends on, each once, upstream first."""
    seen: dict[str, luigi.Task] = {}

    def visit(t: luigi.Task) -> None:
        for dep in flatten(t.requires()):
            visit(dep)
        seen.setdefault(t.task_id, t)

    visit(task)
    return list(seen.values())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The pipeline's parameters and Luigi's usual worker and scheduler options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--date", type=dt.date.fromisoformat, default=DEFAULT_DATE)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--n-rows", type=int, default=2000)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--verbose", action="store_true", help="show Luigi's own log")
    luigi_opts = parser.add_argument_group(
        "Luigi",
        "The scheduler is a central one when named here or in luigi.cfg [core] "
        "(scheduler_host or scheduler_url), else an in-process one.",
    )
    luigi_opts.add_argument("--workers", type=int, default=1, help="tasks run in parallel")
    luigi_opts.add_argument("--local-scheduler", action="store_true", help="in-process scheduler")
    luigi_opts.add_argument("--scheduler-host", help="central scheduler's host (port 8082)")
    luigi_opts.add_argument("--scheduler-port", type=int, help="central scheduler's port")
    luigi_opts.add_argument("--scheduler-url", help="central scheduler's URL, e.g. http://h:8082/")
    args = parser.parse_args(argv)
    central = (args.scheduler_host, args.scheduler_port, args.scheduler_url)
    if args.local_scheduler and any(v is not None for v in central):
        parser.error("--local-scheduler cannot be combined with a central scheduler's address")
    return args


def scheduler_options(args: argparse.Namespace) -> dict[str, Any]:
    """``luigi.build`` keywords choosing the scheduler, as ``python -m luigi`` would.

    A central scheduler named on the command line, or in luigi.cfg ``[core]`` (which
    Luigi then reads itself); otherwise the in-process one, so that the example
    runs on a machine with no scheduler at all.
    """
    named = {
        key: value
        for key, value in (
            ("scheduler_host", args.scheduler_host),
            ("scheduler_port", args.scheduler_port),
            ("scheduler_url", args.scheduler_url),
        )
        if value is not None
    }
    if args.local_scheduler:
        return {"local_scheduler": True}
    if named:
        return {"local_scheduler": False, **named}
    cfg = luigi.configuration.get_config()
    keys = ("scheduler_host", "scheduler_url")  # and their deprecated names, default_*
    configured = any(cfg.has_option("core", k) for key in keys for k in (key, f"default_{key}"))
    return {"local_scheduler": not configured}


def _scheduler_address(options: dict[str, Any]) -> str | None:
    """The central scheduler's base URL that ``luigi.build`` will use (None for local)."""
    if options["local_scheduler"]:
        return None
    core = luigi.interface.core(**{k: v for k, v in options.items() if k != "local_scheduler"})
    if core.scheduler_url:
        return str(core.scheduler_url).rstrip("/")
    return f"http://{core.scheduler_host}:{core.scheduler_port}"


def _this_python() -> str:
    """The interpreter running this, as the user would type it (``.venv/bin/python``)."""
    relative = os.path.relpath(sys.executable)
    return sys.executable if relative.startswith("..") else relative


def main(argv: list[str] | None = None) -> int:
    """Run the pipeline and print what ran and the scores."""
    args = parse_args(argv)
    sched = scheduler_options(args)
    report = Report(date=args.date, seed=args.seed, n_rows=args.n_rows, alpha=args.alpha)
    tasks = _all_tasks(report)
    pending = {t.task_id for t in tasks if not t.complete()}
    result = luigi.build(
        [report],
        workers=args.workers,
        detailed_summary=True,
        log_level="INFO" if args.verbose else "WARNING",
        **sched,
    )
    if result.status not in (LuigiStatusCode.SUCCESS, LuigiStatusCode.SUCCESS_WITH_RETRY):
        print(result.summary_text, file=sys.stderr)
        return 1

    address = _scheduler_address(sched)
    print(f"store: {report.artifact_store()!r}")
    print(f"scheduler: {address or 'local (in-process)'}")
    for t in tasks:
        artifact = t.output().get()
        state = "ran" if t.task_id in pending else "up to date, skipped"
        print(f"  {t.get_task_family():<17} {artifact.name:<16} v{artifact.version:<3} {state}")
    summary = report.load_output()
    m, rows = summary["metrics"], summary["rows"]
    print(
        f"test RMSE {m['rmse']:.2f} MW (baseline {m['baseline_rmse']:.2f}), "
        f"R² {m['r2']:.3f} (true relation {m['r2_true_relation']:.3f}, "
        f"ceiling {m['r2_ceiling']:.3f}) on {rows['test']} held-out rows"
    )
    if address:
        print(f"task history: {address}/history")
    print(f"retrieve the outputs with: {_this_python()} examples/retrieve.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
