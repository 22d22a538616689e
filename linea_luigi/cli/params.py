"""What the commands take: counts, name globs and ``NAME[:VERSION]`` specs, checked strictly.

A bad count or glob is a usage error (exit status 2) raised by click before
the store opens; a bad spec is our ``InvalidArgumentError`` (exit status 1).
"""

from __future__ import annotations

from typing import Any

import click

from .. import globs
from ..errors import InvalidArgumentError
from ..names import LATEST, parse_count, parse_version_text


class Count(click.types.IntParamType):
    """A whole number in ASCII digits, at most a BIGINT: a usage error otherwise.

    click's ``int`` takes '٣', ' 1' and '1_0', and any size; a bad count is
    refused here, before it reaches the store.
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return parse_count(value, "it")
        except InvalidArgumentError as err:
            self.fail(str(err), param, ctx)


class Glob(click.types.StringParamType):
    """A name glob: an invalid or too costly one is a usage error, before the store opens."""

    name = "glob"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = super().convert(value, param, ctx)
        try:
            globs.parse(text)
        except InvalidArgumentError as err:
            self.fail(str(err), param, ctx)
        return text


COUNT = Count()


def parse_spec(spec: str) -> tuple[str, int | str]:
    """``NAME`` or ``NAME:VERSION`` (VERSION an int or ``latest``), strictly.

    ``NAME@ALIAS`` is passed through whole, for ``store.get`` to resolve.
    """
    if "@" in spec:
        return spec, LATEST
    name, colon, text = spec.rpartition(":")
    if not colon:
        return spec, LATEST
    if not name:
        raise InvalidArgumentError(f"{spec!r} has no name before ':' (expected NAME[:VERSION]).")
    try:
        return name, parse_version_text(text)
    except InvalidArgumentError as err:
        raise InvalidArgumentError(
            f"Bad version in {spec!r}: {err} (expected NAME[:VERSION]; a name containing "
            f"':' needs its version spelled out, e.g. '{spec}:latest')."
        ) from err
