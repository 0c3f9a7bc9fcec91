"""A mounted filesystem as the daemon sees it (shared by the platforms and the wire)."""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Tuple

#: ``fsid_t``: two int32
Fsid = Tuple[int, int]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


@dataclass(frozen=True)
class Mount:
    """One entry of the mount table (what getfsstat(2) reports)."""

    fsid: Fsid
    fstype: str
    mount_on: str
    mount_from: str
    read_only: bool = False

    def __post_init__(self) -> None:
        if (len(self.fsid) != 2
                or not all(isinstance(v, int) and INT32_MIN <= v <= INT32_MAX
                           for v in self.fsid)):
            raise ValueError(f"fsid {self.fsid!r} of {self.mount_on!r} is not two int32")
        if not self.mount_on.startswith("/"):
            raise ValueError(f"mount point {self.mount_on!r} is not an absolute path")
        if not self.fstype:
            raise ValueError(f"mount point {self.mount_on!r} has an empty filesystem type")

    @property
    def depth(self) -> int:
        """Number of path components below ``/`` (``/`` is 0, ``/var/db`` is 2)."""
        return len([part for part in self.mount_on.split("/") if part])

    @property
    def fsid_text(self) -> str:
        return f"{self.fsid[0]:#x}:{self.fsid[1]:#x}"


def errno_name(number: int) -> str:
    """``EBUSY`` for errno.EBUSY; ``errno 999`` for numbers without a name."""
    return errno.errorcode.get(number, f"errno {number}")


def errno_number(name: str) -> int:
    """errno.EBUSY for ``EBUSY``; ValueError naming the input otherwise."""
    number = getattr(errno, name, None)
    if not name.startswith("E") or not isinstance(number, int):
        raise ValueError(f"{name!r} is not an errno name")
    return number
