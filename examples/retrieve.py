"""Read the example pipeline's outputs back, by name and version, from any process.

Nothing here imports the pipeline or Luigi: the store alone knows every
version, what made it and what it was made from. Run after
``python examples/pipeline.py``::

    python examples/retrieve.py                  # the latest report
    python examples/retrieve.py --version 0      # a given version of the report
"""

from __future__ import annotations

import argparse
import sys

import linea_luigi as ll

PREFIX = "demand."  # the pipeline's artifact names all start with this
REPORT, MODEL = "demand.report", "demand.model"


def _made_by(artifact: ll.Artifact) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted((artifact.params or {}).items()))
    return f"{artifact.task_family}({params})" if artifact.task_family else "saved by hand"


def _print_tree(
    store: ll.ArtifactStore, artifact: ll.Artifact, indent: str = "", shown: set[str] | None = None
) -> None:
    """Below each artifact, the exact versions it was made from (repeats are not expanded)."""
    shown = set() if shown is None else shown
    parents = store.upstream(artifact.name, artifact.version)
    for i, parent in enumerate(parents):
        last = i == len(parents) - 1
        label = f"{parent.name} v{parent.version}"
        seen = label in shown
        shown.add(label)
        detail = "(shown above)" if seen else f"({_made_by(parent)})"
        print(f"{indent}{'└─' if last else '├─'} {label}   {detail}")
        if not seen:
            _print_tree(store, parent, indent + ("   " if last else "│  "), shown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--version", default="latest", help="report version (default: latest)")
    args = parser.parse_args(argv)
    version: int | str = int(args.version) if args.version.isdigit() else args.version

    store = ll.artifact_store()  # the configured default: nothing to set up on this machine
    print(f"store: {store!r}\n")

    ours = [a for a in store.list() if a.name.startswith(PREFIX)]
    if not ours:
        print("No pipeline outputs yet: run `python examples/pipeline.py` first.", file=sys.stderr)
        return 1
    print("artifacts (name, latest version, number of versions):")
    for latest in ours:
        count = len(store.versions(latest.name))
        print(f"  {latest.name:<16} v{latest.version:<3} {count} version(s)")

    report_artifact = store.get(REPORT, version)
    report = report_artifact.load()
    m, rows = report["metrics"], report["rows"]
    made = f"{report_artifact.created_at:%Y-%m-%d %H:%M} UTC"
    print(
        f"\n{REPORT} v{report_artifact.version}, made {made} for "
        f"date={report['date']} seed={report['seed']} alpha={report['alpha']}"
    )
    print(f"  test RMSE  {m['rmse']:.3f} MW   (predicting the mean: {m['baseline_rmse']:.3f})")
    print(f"  test MAE   {m['mae']:.3f} MW")
    if "r2_true_relation" in m:  # reports made before version 2 of the Report task lack it
        print(
            f"  test R²    {m['r2']:.3f}      (the true relation: {m['r2_true_relation']:.3f}, "
            f"no linear model above {m['r2_ceiling']:.3f} on these rows)"
        )
    else:
        print(f"  test R²    {m['r2']:.3f}")
    print(
        f"  rows       {rows['raw']} generated, {rows['dropped_missing']} missing and "
        f"{rows['dropped_outliers']} outliers dropped, {rows['train']} train / {rows['test']} test"
    )
    print("  made from  " + ", ".join(f"{n} v{v}" for n, v in report["artifacts"].items()))

    # the model the report scored: its exact version, not whatever is latest now
    model_version = report["artifacts"][MODEL]
    model = store.load(MODEL, model_version)
    print(f"\n{MODEL} v{model_version}: ridge, alpha={model['alpha']}")
    print(f"  intercept  {model['intercept']:9.3f}")
    for name, coef in zip(model["feature_names"], model["coef"], strict=True):
        print(f"  {name:<21}{coef:+9.3f}   (per standard deviation)")

    print(f"\nlineage of {REPORT} v{report_artifact.version}:")
    print(f"{REPORT} v{report_artifact.version}")
    _print_tree(store, report_artifact)

    print(f"\nversions of {MODEL}:")
    for a in store.versions(MODEL):
        downstream = ", ".join(f"{d.name} v{d.version}" for d in store.downstream(MODEL, a.version))
        print(f"  v{a.version:<3} {_made_by(a)}  ->  {downstream or 'nothing yet'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
