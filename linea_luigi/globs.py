"""Name globs: validated once, then matched by the database itself in bounded time.

A glob (``fnmatch`` syntax, case-sensitive: ``*``, ``?``, ``[seq]``, ``[!seq]``;
an unclosed ``[`` is a literal) becomes whatever each database matches
natively without backtracking: ``GLOB`` on SQLite, ``LIKE`` on PostgreSQL (a
regex for ``~`` when the glob has ``[…]`` sets), a regex elsewhere. A regex
engine that backtracks (Python's ``re``, which SQLite's ``REGEXP`` calls) took
10 s to match ``*a*a*a*a*c`` against one name, and minutes for longer ones.

These matchers still compare a name against the text after a ``*`` at every
position of the name, so the limits below keep the work per name small: over
100,000 names of 255 characters built to be near misses, a pattern at the
limits takes about a second. The search box's usual form, ``*text*`` with no
other wildcard, is a plain substring search instead (``instr`` / ``strpos``,
a memory comparison per position), so it takes text as long as a name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, Boolean, ColumnElement, bindparam, func
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from .errors import InvalidArgumentError
from .names import MAX_NAME_LENGTH

#: longest pattern, in characters
MAX_LENGTH = 64
#: longest ``*text*`` substring search: the text may be as long as a name
MAX_SUBSTRING_LENGTH = MAX_NAME_LENGTH + 2
#: most a part between a ``*`` and the next (or the end) may cost, where a character costs 1,
#: a ``?`` 2 (PostgreSQL's LIKE) and a ``[…]`` set twice its length (SQLite reads all of it)
MAX_AFTER_STAR = 24


class Wild(enum.Enum):
    """The wildcards ``*`` (any run of characters) and ``?`` (any one character)."""

    MANY = "*"
    ONE = "?"


@dataclass(frozen=True)
class CharSet:
    """``[seq]`` (or ``[!seq]`` when ``negated``): inclusive code-point ranges."""

    negated: bool
    ranges: tuple[tuple[str, str], ...]
    #: how many characters of the pattern it takes, brackets included
    width: int


#: one character of a name: a literal (a one-character str), a wildcard or a set
Token = str | Wild | CharSet


def parse(pattern: object) -> tuple[Token, ...]:
    """The tokens of a valid glob; ``InvalidArgumentError`` naming what is wrong otherwise."""
    if not isinstance(pattern, str):
        raise InvalidArgumentError(f"A name pattern is a string, got {pattern!r}.")
    limit = MAX_SUBSTRING_LENGTH if substring_of(pattern) is not None else MAX_LENGTH
    if len(pattern) > limit:
        raise InvalidArgumentError(
            f"Name pattern of {len(pattern)} characters is too long (at most {MAX_LENGTH}, "
            f"or {MAX_SUBSTRING_LENGTH} for a plain '*text*' search)."
        )
    if not pattern.isprintable():
        raise InvalidArgumentError(
            f"Name pattern {pattern!r} contains control characters (names never do)."
        )
    tokens: list[Token] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        i += 1
        if c == "[" and (end := _set_end(pattern, i)) >= 0:
            tokens.append(_char_set(pattern, i, end))
            i = end + 1
        elif c == "*":
            if not tokens or tokens[-1] is not Wild.MANY:
                tokens.append(Wild.MANY)
        else:
            tokens.append(Wild.ONE if c == "?" else c)
    if substring_of(pattern) is None:
        _check_cost(pattern, tokens)
    return tuple(tokens)


def substring_of(pattern: str) -> str | None:
    """The text of a ``*text*`` search (no other wildcard, no set, no ``[``); else None."""
    inner = pattern[1:-1]
    if len(pattern) < 3 or pattern[0] != "*" or pattern[-1] != "*":
        return None
    return None if any(c in "*?[" for c in inner) else inner


def _set_end(pattern: str, start: int) -> int:
    """Where the ``]`` closing a set opened before ``start`` is (-1: unclosed, a literal ``[``).

    As in ``fnmatch``, a ``]`` right after ``[`` or ``[!`` is a member.
    """
    j = start + 1 if pattern.startswith("!", start) else start
    j = j + 1 if pattern.startswith("]", j) else j
    return pattern.find("]", j)


def _char_set(pattern: str, start: int, end: int) -> CharSet:
    """The set in ``pattern[start:end]``, split into ranges the way ``fnmatch`` does."""
    negated = pattern[start] == "!"
    body = pattern[start + negated : end]
    chunks, begin, k = [], 0, 1  # a '-' right after '[' or '[!' is a member
    while (k := body.find("-", k)) >= 0:
        chunks.append(body[begin:k])
        begin, k = k + 1, k + 3
    if body[begin:]:
        chunks.append(body[begin:])
    else:
        chunks[-1] += "-"  # a trailing '-' is a member
    ranges: list[tuple[str, str]] = []
    for n, chunk in enumerate(chunks):
        if n:  # the previous chunk's last character and this one's first make a range
            low, high = chunks[n - 1][-1], chunk[0]
            if low > high:
                raise InvalidArgumentError(
                    f"Invalid name pattern {pattern!r}: the range '{low}-{high}' in "
                    f"'[{pattern[start:end]}]' is reversed (write '{high}-{low}')."
                )
            ranges.append((low, high))
        inner = chunk[1 if n else 0 : len(chunk) - 1 if n < len(chunks) - 1 else len(chunk)]
        ranges.extend((c, c) for c in inner)
    return CharSet(negated, tuple(ranges), end - start + 2)


def _check_cost(pattern: str, tokens: list[Token]) -> None:
    """Refuse a part after a ``*`` that costs more than ``MAX_AFTER_STAR`` at every position.

    The part before the first ``*`` is compared once per name; a part after a
    ``*`` at each position of the name, and the costliest part bounds the work.
    """
    worst = part = -1  # -1: no '*' yet
    for t in tokens:
        if t is Wild.MANY:
            part = 0
        elif part >= 0:
            part += 2 * t.width if isinstance(t, CharSet) else 2 if t is Wild.ONE else 1
            worst = max(worst, part)
    if worst > MAX_AFTER_STAR:
        raise InvalidArgumentError(
            f"Name pattern {pattern!r} is too costly to match: a part after a '*' costs {worst}"
            f" (at most {MAX_AFTER_STAR}; a character costs 1, a '?' 2, a '[…]' set twice its "
            "length). Shorten that part, or move it before the first '*'."
        )


# -- what each database matches ------------------------------------------------------------


def to_regex(pattern: str) -> str:
    """An anchored regex with every literal escaped, for PostgreSQL's ``~`` and Python's ``re``."""
    return _regex(parse(pattern))


def _regex(tokens: tuple[Token, ...]) -> str:
    return "^" + "".join(_regex_token(t) for t in tokens) + "$"


def _regex_token(t: Token) -> str:
    if t is Wild.MANY:
        return ".*"
    if t is Wild.ONE:
        return "."
    if isinstance(t, CharSet):
        members = (_regex_char(a) + (f"-{_regex_char(b)}" if a < b else "") for a, b in t.ranges)
        return f"[{'^' if t.negated else ''}{''.join(members)}]"
    return _regex_char(t)


def _regex_char(c: str) -> str:
    """``c`` as a literal: a backslash before ASCII punctuation is a literal in both engines."""
    return "\\" + c if c.isascii() and not c.isalnum() else c


def to_sqlite_glob(pattern: str) -> str:
    """The pattern for SQLite's ``GLOB`` (``[^…]`` negates; ``*``, ``?``, ``[`` quoted as sets)."""
    return _sqlite_glob(parse(pattern))


def _sqlite_glob(tokens: tuple[Token, ...]) -> str:
    return "".join(_glob_token(t) for t in tokens)


def _glob_token(t: Token) -> str:
    if isinstance(t, Wild):
        return t.value
    if isinstance(t, CharSet):
        return _glob_set(t)
    return f"[{t}]" if t in "*?[" else t


#: characters that mean something inside a GLOB set depending on where they stand
_GLOB_SET_SPECIAL = "]-^"


def _glob_set(t: CharSet) -> str:
    """A GLOB set: ``]`` first, ``-`` next, ``^`` last, so each stands for itself."""
    singles: set[str] = set()
    spans: list[str] = []
    for low, high in t.ranges:
        while low <= high and low in _GLOB_SET_SPECIAL:  # no special range ends
            singles.add(low)
            low = chr(ord(low) + 1)
        while low <= high and high in _GLOB_SET_SPECIAL:
            singles.add(high)
            high = chr(ord(high) - 1)
        if low < high:
            spans.append(f"{low}-{high}")
        elif low == high:
            singles.add(low)
    if not t.negated and not spans and len(singles) == 1:
        return _glob_token(singles.pop())  # also keeps a lone '^' from reading as negation
    plain = sorted(singles.difference(_GLOB_SET_SPECIAL))
    ordered = [c for c in "]-" if c in singles] + spans + plain + ["^"] * ("^" in singles)
    return f"[{'^' if t.negated else ''}{''.join(ordered)}]"


def to_like(pattern: str) -> str | None:
    """The pattern for ``LIKE … ESCAPE '\\'``; None when a ``[…]`` set needs a regex."""
    return _like(parse(pattern))


def _like(tokens: tuple[Token, ...]) -> str | None:
    plain = [t for t in tokens if not isinstance(t, CharSet)]
    if len(plain) < len(tokens):
        return None
    return "".join(_like_token(t) for t in plain)


def _like_token(t: str | Wild) -> str:
    if isinstance(t, Wild):
        return "%" if t is Wild.MANY else "_"
    return "\\" + t if t in "%_\\" else t


# -- the SQL expression ---------------------------------------------------------------------


class NameGlob(ColumnElement[bool]):
    """``column`` matches a glob; compiled per dialect, the pattern travelling as parameters.

    All three spellings are bound, so the statement's cache key does not depend on the
    pattern (one cached compilation per shape, not one per search).
    """

    type = Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True  # a comparison: no "= 1" around it where booleans are ints
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy's declaration, read-only)
        ("subject", InternalTraversal.dp_clauseelement),
        ("glob_param", InternalTraversal.dp_clauseelement),
        ("like_param", InternalTraversal.dp_clauseelement),
        ("regex_param", InternalTraversal.dp_clauseelement),
        ("text_param", InternalTraversal.dp_clauseelement),
        ("has_sets", InternalTraversal.dp_boolean),
        ("is_substring", InternalTraversal.dp_boolean),
    ]

    def __init__(self, column: ColumnElement[str], pattern: str) -> None:
        tokens = parse(pattern)  # refuses a bad pattern here, before any database work
        like = _like(tokens)
        text = substring_of(pattern)
        self.subject = column
        self.glob_param = _bound(_sqlite_glob(tokens))
        self.like_param = _bound(like or "")
        self.regex_param = _bound(_regex(tokens))
        self.text_param = _bound(text or "")
        self.has_sets = like is None
        self.is_substring = text is not None


def _bound(value: str) -> BindParameter[str]:
    return bindparam(None, value, unique=True)


def matches(column: ColumnElement[str], pattern: str) -> ColumnElement[bool]:
    """A WHERE clause: ``column`` matches the glob ``pattern`` (``InvalidArgumentError`` if bad)."""
    return NameGlob(column, pattern)


@compiles(NameGlob)
def _compile_regex(element: NameGlob, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.subject.regexp_match(element.regex_param), **kw)


def _contains(element: NameGlob, function: str) -> ColumnElement[bool]:
    """``function(subject, text) > 0``: a substring search without pattern matching."""
    return getattr(func, function)(element.subject, element.text_param) > 0  # type: ignore[no-any-return]


@compiles(NameGlob, "sqlite")
def _compile_sqlite(element: NameGlob, compiler: SQLCompiler, **kw: Any) -> str:
    if element.is_substring:
        return compiler.process(_contains(element, "instr"), **kw)
    glob = element.subject.op("GLOB", is_comparison=True)(element.glob_param)
    return compiler.process(glob, **kw)


@compiles(NameGlob, "postgresql")
def _compile_postgresql(element: NameGlob, compiler: SQLCompiler, **kw: Any) -> str:
    if element.is_substring:
        return compiler.process(_contains(element, "strpos"), **kw)
    if element.has_sets:  # only a regex has sets (Spencer's engine does not backtrack)
        return _compile_regex(element, compiler, **kw)  # LIKE is cheaper per name otherwise
    return compiler.process(element.subject.like(element.like_param, escape="\\"), **kw)
