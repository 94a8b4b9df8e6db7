"""Names that become paths: the one check that keeps every file inside its base directory.

A name given over HTTP, typed to the assistant or read back from the database is joined to a
base directory (the data directory) only through :func:`inside`. Each part must be a plain
name (letters, digits, ``_ . -``, starting with a letter or digit, at most
:data:`MAX_NAME_LENGTH` characters), so ``..``, absolute paths, NUL bytes, Windows separators
and drive letters never reach the file system; the joined path is then resolved, so a symlink
inside the base that points out of it is refused as well.

>>> import tempfile
>>> base = Path(tempfile.mkdtemp())
>>> inside(base, "datasets", "titanic", "v1.parquet").relative_to(base.resolve()).as_posix()
'datasets/titanic/v1.parquet'
>>> inside(base, "datasets", "../../etc", what="dataset name")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
mlwarden.errors.InvalidInput: the dataset name '../../etc' contains a path separator ('/')...
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from mlwarden.errors import InvalidInput

__all__ = ["MAX_NAME_LENGTH", "NAME_PATTERN", "check_name", "inside", "inside_relative"]

MAX_NAME_LENGTH = 128
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_RULE = "a name is letters, digits and _ . - only"


def check_name(name: object, what: str = "name", *, new: bool = True) -> str:
    """``name`` when it is a safe single path part, else :class:`InvalidInput` saying why.

    The specific faults are named first (a user who sent ``../x`` learns it was the separator),
    then, for a ``new`` name, the allow-list catches everything else (spaces, control and
    non-ASCII characters, a leading dot or dash). A name already stored (``new=False``) only
    has to stay where it is: older versions accepted e.g. spaces, and their files must still
    open.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"the {what} is empty", name=str(name))
    if len(name) > MAX_NAME_LENGTH:
        fault = f"is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed"
    elif "\x00" in name:
        fault = "contains a NUL byte"
    elif name.startswith(("/", "\\")):
        fault = "is an absolute path"
    elif "/" in name or "\\" in name:
        separator = "/" if "/" in name else "\\"
        fault = f"contains a path separator ({separator!r})"
    elif ":" in name:
        fault = "contains ':' (a drive letter or stream name)"
    elif name in (".", ".."):
        fault = "is a relative directory"
    elif new and NAME_PATTERN.fullmatch(name) is None:
        fault = "has a character outside letters, digits and _ . - (or starts with one of _ . -)"
    else:
        return name
    shown = repr(name[:40]) + ("…" if len(name) > 40 else "")
    raise InvalidInput(f"the {what} {shown} {fault}: {_RULE}", name=name[:MAX_NAME_LENGTH])


def inside(base: str | Path, *parts: str, what: str = "name", new: bool = True) -> Path:
    """``base / part / …`` resolved, when every part is a safe name (see :func:`check_name`)
    and the result (symlinks followed) is still under ``base``; :class:`InvalidInput`
    otherwise."""
    if not parts:
        raise InvalidInput(f"the {what} is empty")
    for part in parts:
        check_name(part, what, new=new)
    root = Path(base).resolve()
    path = root.joinpath(*parts).resolve()
    if not path.is_relative_to(root) or path == root:
        raise InvalidInput(
            f"the {what} {'/'.join(parts)!r} leads outside the data directory (a symlink)",
            name="/".join(parts),
        )
    return path


def inside_relative(base: str | Path, relative: str, what: str = "stored path") -> Path:
    """:func:`inside` for a relative POSIX path kept in the database (``datasets/x/v1.parquet``),
    whose names were made before this check and are held only to staying inside."""
    if "\\" in relative or "\x00" in relative:
        raise InvalidInput(f"the {what} {relative!r} is not a relative path of plain names")
    pure = PurePosixPath(relative)
    if pure.is_absolute():
        raise InvalidInput(f"the {what} {relative!r} is absolute")
    return inside(base, *pure.parts, what=what, new=False)
