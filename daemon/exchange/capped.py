"""Byte caps for reading untrusted packed files (zip members, gzip, the XML inside an XLSX):
the unpacked size of one member, of the whole archive, and the packing ratio.

Sizes a zip directory or a gzip trailer declares cost nothing to check, so they are checked
first; but they are the sender's word, so every byte unpacked is also counted as it is read,
and reading stops at the first byte over a cap. A cap is never reached by holding a member
whole: callers read through `Counted` in chunks.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Protocol

from otmetka.daemon.core.errors import OtmetkaError

MB = 1024**2
# Journal exports pack 10-20 to 1 (JSON, CSV and spreadsheet XML alike); a run of one
# repeated byte packs over 1000 to 1, which is what a bomb is made of.
MAX_RATIO = 100
# Below this a member may pack as well as it likes: a small file of repeated cells (an empty
# sheet, a manifest) packs far beyond MAX_RATIO and is no danger.
RATIO_FREE = 1 * MB


@dataclass(frozen=True)
class Caps:
    member: int  # unpacked bytes of one member
    total: int  # unpacked bytes of all members together
    ratio: int = MAX_RATIO  # unpacked / packed size of a member past RATIO_FREE


def size_text(size: int) -> str:
    return f"{size // 1024**3} GB" if size >= 1024**3 else f"{size // MB} MB"


_ADVICE = "export it again; if it is genuine, unpack it and hand over the unpacked files"


def _ratio_problem(caps: Caps) -> str:
    return (
        f"unpacks to more than {caps.ratio} times its packed size (a zip bomb, or a file "
        f"of one value repeated); {_ADVICE}"
    )


def _member_problem(caps: Caps) -> str:
    return f"holds more than {size_text(caps.member)}, the limit for one file; {_ADVICE}"


def _total_problem(caps: Caps) -> str:
    return (
        f"brings the whole to more than {size_text(caps.total)} unpacked, the limit for one "
        "archive or folder; split it into smaller ones"
    )


class TooLarge(OtmetkaError):
    """A packed file over a cap; says which archive, which member and which limit."""

    def __init__(self, origin: str, member: str, kind: str, caps: Caps) -> None:
        self.origin, self.member, self.kind, self.caps = origin, member, kind, caps
        problem = _PROBLEMS[kind](caps)
        super().__init__(f"{origin}: member '{member}' {problem}")


# What went over: the packing ratio, the size of one member, the size of all together.
_PROBLEMS = {"ratio": _ratio_problem, "member": _member_problem, "total": _total_problem}


class Budget:
    """What one archive may still unpack; counts actual bytes across its members."""

    def __init__(self, origin: str, caps: Caps, packed_size: int) -> None:
        self.origin, self.caps = origin, caps
        self.packed_size = packed_size  # of the whole archive: no member packs to more
        self.unpacked = 0

    def check_declared(self, members: Iterable[zipfile.ZipInfo]) -> None:
        """Refuse on the sizes the zip directory declares, before anything is unpacked."""
        total = 0
        for info in members:
            total += info.file_size
            self._check(info.filename, info.file_size, total, info.compress_size)

    def _check(self, member: str, size: int, total: int, packed: int) -> None:
        caps = self.caps
        if size > max(RATIO_FREE, caps.ratio * packed):
            raise TooLarge(self.origin, member, "ratio", caps)
        if size > caps.member:
            raise TooLarge(self.origin, member, "member", caps)
        if total > caps.total:
            raise TooLarge(self.origin, member, "total", caps)

    def counted(self, source: IO[bytes], member: str, packed: int) -> Counted:
        """`source` (the unpacking stream of `member`) read through the caps."""
        return Counted(self, source, member, min(packed, self.packed_size))

    def add(self, member: str, size: int, chunk: int, packed: int) -> None:
        self.unpacked += chunk
        self._check(member, size, self.unpacked, packed)


class Counted(io.RawIOBase):
    """A stream over an unpacking one that counts what it yields; TooLarge at the first
    byte over a cap. Wrap it in `io.BufferedReader` to read lines."""

    def __init__(self, budget: Budget, source: IO[bytes], member: str, packed: int) -> None:
        super().__init__()
        self.budget, self.source, self.member, self.packed = budget, source, member, packed
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.source.read(len(buffer))
        self.size += len(data)
        self.budget.add(self.member, self.size, len(data), self.packed)
        buffer[: len(data)] = data
        return len(data)


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes | None: ...


def drain(stream: Readable, chunk: int = MB) -> None:
    """Read `stream` to its end, for its caps and checks alone."""
    while stream.read(chunk):
        pass


def check_zip(archive: zipfile.ZipFile, budget: Budget) -> None:
    """Every member of `archive` through the caps, before another reader opens it: the
    declared sizes first, then every byte (nothing is kept)."""
    members = archive.infolist()
    budget.check_declared(members)
    for info in members:
        with archive.open(info) as source:
            drain(budget.counted(source, info.filename, info.compress_size))
