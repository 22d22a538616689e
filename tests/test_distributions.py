"""The sdist and wheel as an index would receive them: their files, metadata and long description.

The wheel must hold the package and nothing else (its license in ``.dist-info/licenses``);
the sdist must be a checkout that runs its own tests and carries the example and deploy
files the README's guide uses. One build serves the session (``dist_support``).
"""

from __future__ import annotations

import email.parser
import os
import re
import subprocess
import sys
import tarfile
from email.message import Message
from pathlib import Path

from dist_support import REPO, Distributions, built_distributions  # noqa: F401 (the fixture)

HOME = "https://github.com/linea-luigi/linea-luigi"
PYTHONS = {"3.10", "3.11", "3.12", "3.13"}
#: files the installed package cannot work without, beside its modules
PACKAGE_DATA = (
    "linea_luigi/py.typed",
    "linea_luigi/db/migrations/script.py.mako",
    "linea_luigi/db/migrations/versions/0001_baseline.py",
    "linea_luigi/web/templates/base.html",
)
#: top-level files of the sdist beyond the grafted folders
SDIST_FILES = (
    "LICENSE",
    "CHANGELOG.md",
    "README.md",
    "pyproject.toml",
    "luigi.cfg.example",
    "docker-compose.yml",
    ".ci/run",
)
SDIST_FOLDERS = ("tests", "examples", "deploy", "docs", "bench")


def metadata(distributions: Distributions) -> Message:
    return email.parser.Parser().parsestr(distributions.wheel_metadata())


def tree_files(folder: Path) -> set[str]:
    """Files under ``folder`` of the checkout, as paths from its root, without bytecode."""
    return {
        p.relative_to(REPO).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def test_the_build_warns_of_no_deprecation(distributions: Distributions) -> None:
    noted = [line for line in distributions.log.splitlines() if "deprecat" in line.lower()]
    assert noted == []


def test_the_wheel_holds_the_package_its_data_and_license_only(
    distributions: Distributions,
) -> None:
    """Every file of the package folder, so a new template or asset missing from
    ``package-data`` in pyproject.toml fails here rather than in a user's install."""
    names = set(distributions.wheel_names())
    expected = tree_files(REPO / "linea_luigi")
    assert set(PACKAGE_DATA) <= expected
    assert {n for n in names if n.startswith("linea_luigi/")} == expected
    info = {n for n in names if not n.startswith("linea_luigi/")}
    assert all(n.startswith("linea_luigi-0.1.0.dist-info/") for n in info), info
    license_name = "linea_luigi-0.1.0.dist-info/licenses/LICENSE"
    assert license_name in info
    assert distributions.wheel_file(license_name) == (REPO / "LICENSE").read_bytes()
    assert b"Apache License" in (REPO / "LICENSE").read_bytes()


def test_the_metadata_names_license_authors_urls_and_classifiers(
    distributions: Distributions,
) -> None:
    meta = metadata(distributions)
    assert meta["Metadata-Version"] in {"2.4", "2.5"}
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["License"] is None  # the expression replaces the free-text field
    assert meta["Author"] == "linea_luigi developers"
    urls = dict(entry.split(", ", 1) for entry in meta.get_all("Project-URL") or [])
    assert set(urls) == {"Repository", "Documentation", "Changelog", "Issues"}
    assert all(url.startswith(HOME) for url in urls.values()), urls
    assert urls["Repository"] == HOME
    assert meta["Requires-Python"] == ">=3.10"
    classifiers = meta.get_all("Classifier") or []
    declared = {c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(r".*:: 3\.\d+", c)}
    assert declared == PYTHONS
    for wanted in ("Typing :: Typed", "Operating System :: OS Independent"):
        assert wanted in classifiers
    assert any(c.startswith("Topic :: ") for c in classifiers)
    assert not any(c.startswith("License ::") for c in classifiers)  # PEP 639: the expression
    assert "luigi" in (meta["Keywords"] or "").split(",")


# -- the long description: no link that only works inside the repository ----------------------

FENCED = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"(`+).+?\1", re.S)
TARGETS = (
    re.compile(r"\]\(\s*<?([^)\s>]+)"),  # [text](target), ![alt](target)
    re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)", re.M),  # [label]: target
    re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']*)""", re.I),  # raw HTML
)
ABSOLUTE = re.compile(r"^(https?|mailto):", re.I)


def link_targets(markdown: str) -> list[str]:
    """Every link and image target outside code blocks and code spans."""
    prose = CODE_SPAN.sub("", FENCED.sub("", markdown))
    return [m.group(1) for pattern in TARGETS for m in pattern.finditer(prose)]


def not_absolute(markdown: str) -> list[str]:
    """Targets an index page cannot follow: relative paths, and in-page anchors, for which
    an index renders no heading ids."""
    return [t for t in link_targets(markdown) if not ABSOLUTE.match(t)]


def test_the_link_finder_sees_every_kind_of_target() -> None:
    sample = (
        "See [a](docs/a.md), ![b](img/b.png 'title'), [c](https://x.org/c) and [d](#part).\n"
        "[e]: ../e.md\n"
        '<img src="f.png"> <a href="https://x.org/g">g</a>\n'
        "```bash\ncat [h](h.md)\n```\n"
        "`[i](i.md)` and <https://x.org/j>\n"
    )
    assert link_targets(sample) == [
        "docs/a.md",
        "img/b.png",
        "https://x.org/c",
        "#part",
        "../e.md",
        "f.png",
        "https://x.org/g",
    ]
    assert not_absolute(sample) == ["docs/a.md", "img/b.png", "#part", "../e.md", "f.png"]


def test_the_long_description_has_only_absolute_links(distributions: Distributions) -> None:
    meta = metadata(distributions)
    assert meta["Description-Content-Type"] == "text/markdown"
    description = meta.get_payload()
    assert isinstance(description, str)
    assert description.startswith("# linea_luigi")
    assert len(link_targets(description)) >= 5
    assert not_absolute(description) == []


# -- the sdist: a checkout that runs its tests and its deploy guide ----------------------------


def test_the_sdist_carries_tests_examples_deploy_docs_and_bench(
    distributions: Distributions,
) -> None:
    names = set(distributions.sdist_names())
    for name in SDIST_FILES:
        assert name in names, name
    expected = set().union(*(tree_files(REPO / folder) for folder in SDIST_FOLDERS))
    for name in ("tests/conftest.py", "tests/dist_support.py", "examples/pipeline.py"):
        assert name in expected
    assert {n for n in expected if n.endswith("_support.py")} <= names
    assert sorted(expected - names) == []
    assert [n for n in names if "__pycache__" in n or n.endswith(".pyc")] == []
    assert distributions.sdist_file("LICENSE") == (REPO / "LICENSE").read_bytes()


def test_the_sdist_collects_its_own_tests(distributions: Distributions, tmp_path: Path) -> None:
    """The unpacked sdist, alone on PYTHONPATH, collects every test module without an error."""
    with tarfile.open(distributions.sdist) as archive:
        # the "data" filter where this Python has it (3.10.12+, 3.11.4+)
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(tmp_path / "unpacked", **safe)
    (root,) = (tmp_path / "unpacked").iterdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = str(root)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=300
        )

    where = run("-c", "import linea_luigi; print(linea_luigi.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(root), where.stdout + where.stderr
    collected = run("-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider")
    output = collected.stdout + collected.stderr
    assert collected.returncode == 0, output[-4000:]
    assert not re.search(r"\berrors?\b", output.splitlines()[-1]), output[-4000:]
    modules = {line.split("::", 1)[0] for line in collected.stdout.splitlines() if "::" in line}
    shipped = {p.relative_to(root).as_posix() for p in (root / "tests").glob("test_*.py")}
    assert "tests/test_distributions.py" in shipped
    assert modules == shipped
