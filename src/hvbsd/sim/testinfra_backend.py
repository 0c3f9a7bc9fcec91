"""testinfra backend ``hvbsd-sim://NAME``: run checks inside a simulated guest.

This module is a pytest plugin (entry point ``hvbsd_sim``), so any pytest
run can say::

    pytest tests/infra --hosts=hvbsd-sim://g1
    pytest tests/infra --hosts='hvbsd-sim://g1?state_dir=/tmp/lab'

Outside pytest, importing this module is enough:
``testinfra.get_host("hvbsd-sim://g1")``.  Without ``state_dir`` the guest is
looked up in ``$HVBSD_SIM_HOME`` (default ``~/.local/state/hvbsd/sim``).

testinfra keeps its backends in ``testinfra.backend.BACKENDS`` and its
``parse_hostspec`` keeps only the query keys it knows; both are extended here
for this one scheme and left unchanged for every other.  Importing this module
costs only testinfra's own small modules; the guest code loads on first use.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Callable, Optional

SCHEME = "hvbsd-sim"
_CLASS_PATH = "hvbsd.sim.testinfra_backend.HvbsdSimBackend"

try:
    import testinfra.backend as _backends
    from testinfra.backend import base as _base
except ImportError:  # testinfra not installed: nothing to register
    _backends = None
    _base = None


def _with_state_dir(
    original: Callable[[str], tuple[str, dict[str, Any]]],
) -> Callable[[str], tuple[str, dict[str, Any]]]:
    def parse_hostspec(hostspec: str) -> tuple[str, dict[str, Any]]:
        host, options = original(hostspec)
        if hostspec and hostspec.startswith(SCHEME + "://"):
            query = urllib.parse.parse_qs(urllib.parse.urlparse(hostspec).query)
            if "state_dir" in query:
                options["state_dir"] = query["state_dir"][0]
        return host, options

    parse_hostspec.hvbsd_sim = True  # type: ignore[attr-defined]
    return parse_hostspec


def register() -> None:
    """Make ``hvbsd-sim://`` known to testinfra (idempotent)."""
    if _backends is None:
        return
    _backends.BACKENDS.setdefault(SCHEME, _CLASS_PATH)
    if not getattr(_backends.parse_hostspec, "hvbsd_sim", False):
        _backends.parse_hostspec = _with_state_dir(_backends.parse_hostspec)


if _base is not None:

    class HvbsdSimBackend(_base.BaseBackend):
        """Runs each command with ``/bin/sh -c`` inside the guest, as root."""

        NAME = SCHEME

        def __init__(
            self, hostname: str, *args: Any, state_dir: Optional[str] = None, **kwargs: Any
        ) -> None:
            super().__init__(hostname, *args, **kwargs)
            self.state_dir = state_dir
            self._guest: Any = None

        @property
        def guest(self) -> Any:
            if self._guest is None:
                from hvbsd.sim.guest import Guest

                self._guest = Guest(self.hostname, self.state_dir)
            return self._guest

        def run(self, command: str, *args: str, **kwargs: Any) -> Any:
            from hvbsd.sim.guest import GuestError

            # Commands already run as the guest's root: sudo is not wrapped in.
            command = self.quote(command, *args)
            try:
                completed = self.guest.exec(["/bin/sh", "-c", command])
            except GuestError as error:
                raise RuntimeError(f"{SCHEME}://{self.hostname}: {error}") from None
            return self.result(
                completed.returncode, self.encode(command), completed.stdout, completed.stderr
            )


register()
