"""NDJSON output: one file per type (split after ``max_lines``), resources as stored."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

#: File names are ``<Type>-<n>.ndjson``; nothing else is ever served from a job directory.
SUFFIX = ".ndjson"


@dataclass
class OutputFile:
    type: str
    name: str
    count: int


class NdjsonWriter:
    """Appends resources to per-type files in a job's directory; a file per type is opened
    lazily, so types without matches leave no empty file (the manifest omits them)."""

    def __init__(self, directory: Path, max_lines: int) -> None:
        self.directory = directory
        self.max_lines = max(1, max_lines)
        self.files: list[OutputFile] = []
        self._open: dict[str, tuple[OutputFile, BinaryIO]] = {}

    def write(self, rtype: str, content: bytes) -> None:
        current = self._open.get(rtype)
        if current is None or current[0].count >= self.max_lines:
            if current is not None:
                current[1].close()
            current = self._new_file(rtype)
        entry, handle = current
        handle.write(content.replace(b"\n", b" ").rstrip() + b"\n")  # one resource, one line
        entry.count += 1

    def _new_file(self, rtype: str) -> tuple[OutputFile, BinaryIO]:
        number = sum(1 for f in self.files if f.type == rtype) + 1
        entry = OutputFile(rtype, f"{rtype}-{number}{SUFFIX}", 0)
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = (self.directory / entry.name).open("wb")
        self.files.append(entry)
        self._open[rtype] = (entry, handle)
        return entry, handle

    def close(self) -> list[OutputFile]:
        for _, handle in self._open.values():
            handle.close()
        self._open.clear()
        return self.files


def remove_dir(directory: Path) -> None:
    """Drop a job's files (cancel, restart from scratch)."""
    shutil.rmtree(directory, ignore_errors=True)


def file_path(root: Path, job_id: str, name: str) -> Path | None:
    """The path of a job's output file, or None for any name that is not one (no traversal)."""
    if "/" in name or "\\" in name or name.startswith(".") or not name.endswith(SUFFIX):
        return None
    if "/" in job_id or job_id.startswith("."):
        return None
    path = root / job_id / name
    return path if path.is_file() else None
