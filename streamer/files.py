"""Output paths: checked before any expensive work, written atomically so a user's file is never lost.

``check_file_target`` / ``check_dir_target`` say in one line why a path cannot be written (a missing
folder, a folder where a file should be, a file where a folder should be, no permission).
``AtomicTextFile`` writes beside the target and renames on success; a run that fails midway leaves
the target untouched and keeps what it wrote as ``NAME.partial``. What is not a regular file is never
replaced: a symlink's target is written (atomically), a device or a named pipe written through.
``check_not_input`` refuses an output that is the input.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable, TextIO

from .errors import StreamerError

PARTIAL_SUFFIX = ".partial"


def first_existing(path: Path) -> Path:
    """The path itself or its nearest ancestor that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def written_through(path: Path) -> bool:
    """path is (or links to) something that exists and is not a regular file: a device, a named pipe."""
    try:
        mode = os.stat(path).st_mode  # follows links, also /dev/stdout's to a pipe that has no path
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def check_not_input(output: Path, source: str, what: str = "output") -> None:
    """Refuse an output that is the input itself (under any name): writing it would destroy the audio."""
    try:
        same = Path(output).exists() and Path(source).exists() and os.path.samefile(output, source)
    except OSError:
        same = False
    if same:
        raise StreamerError(f"{what} {output} is the input {source}: writing it would destroy the audio; "
                            "choose another file")


def check_file_target(path: Path, what: str = "output") -> None:
    """A file can be created or replaced at path: its folder exists and is writable (or path is a device or a
    named pipe that can be written)."""
    path = Path(path)
    if path.is_dir():
        raise StreamerError(f"{what} {path} is a directory: give a file name")
    if written_through(path):
        if not os.access(path, os.W_OK):
            raise StreamerError(f"cannot write {what} {path}: no permission")
        return
    path = Path(os.path.realpath(path)) if path.is_symlink() else path
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        existing = first_existing(folder)
        problem = "is a file" if existing.is_file() else "does not exist"
        raise StreamerError(f"cannot write {what} {path}: {existing if existing.is_file() else folder} {problem}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StreamerError(f"cannot write {what} {path}: no permission to write in {folder}")
    if path.exists() and not os.access(path, os.W_OK):
        raise StreamerError(f"cannot write {what} {path}: the file is read-only")


def check_dir_target(path: Path, what: str = "output directory", hint: str = "") -> None:
    """A directory can be created (with its parents) at path, or exists and is writable."""
    path = Path(path)
    existing = first_existing(path)
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == Path(os.path.abspath(path)) else f"lies under the file {existing}"
        raise StreamerError(f"cannot use {what} {path}: it {where}{hint}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StreamerError(f"cannot use {what} {path}: no permission to write in {existing}{hint}")


class AtomicTextFile:
    """``with AtomicTextFile(path) as out:`` text goes to a temporary file beside path, renamed over it
    on success. On failure path is left as it was, and the text written so far is kept as
    ``path.partial`` when the writer's ``keep_partial()`` says so (else removed)."""

    def __init__(self, path: Path):
        self.path = Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path)  # a link's target
        self.partial_path = self.path.with_name(self.path.name + PARTIAL_SUFFIX)
        self.keep_partial: Callable[[], bool] = lambda: False
        self.atomic = not written_through(self.path)  # a device or a pipe is written through

    def __enter__(self) -> TextIO:
        check_file_target(self.path)
        if not self.atomic:
            self._file = open(self.path, "w", encoding="utf-8")
            return self._file
        try:
            handle, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        except OSError as exc:  # a folder that takes no new files (/proc, a read-only mount)
            raise StreamerError(f"cannot write {self.path}: {exc.strerror or exc} in {self.path.parent}") from None
        self._tmp = Path(name)
        self._file = os.fdopen(handle, "w", encoding="utf-8")
        return self._file

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.atomic:
            try:
                self._file.close()
            except OSError:
                if exc_type is None:
                    raise
            return
        self._file.close()
        if exc_type is None:
            if self.path.exists():
                os.chmod(self._tmp, self.path.stat().st_mode & 0o7777)
            else:
                os.chmod(self._tmp, 0o666 & ~current_umask())
            os.replace(self._tmp, self.path)
        elif self.keep_partial():
            os.replace(self._tmp, self.partial_path)
        else:
            self._tmp.unlink(missing_ok=True)


def write_atomically(path: Path, text: str, consequence: str = "") -> None:
    """path holds text, whole, or what it held before: the one atomic writer's short form (AtomicTextFile).
    consequence: what the error message adds (what still stands)."""
    try:
        with AtomicTextFile(path) as out:
            out.write(text)
    except OSError as exc:
        raise StreamerError(f"cannot write {path}: {exc.strerror or exc}{consequence}") from None


def replace_dir(stage: Path, target: Path) -> None:
    """A folder written in full beside target (stage, on the same file system) takes its place: the one way
    export dirs and Triton model folders are written (the caller has checked that target is one of its own)."""
    if target.exists():
        shutil.rmtree(target)
    Path(stage).rename(target)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
