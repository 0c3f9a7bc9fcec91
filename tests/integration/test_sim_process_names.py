"""A simulated daemon is named as FreeBSD names it (p_comm), inside a guest whose
/proc is read-only: pgrep -x and pkill -x find it by that name."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_daemon_8_is_found_by_its_name_with_pgrep_x(sim_guests):
    guest = sim_guests("g1")
    started = guest.exec(["daemon", "-f", "-p", "/var/run/probe.pid", "sleep", "60"], text=True,
                         timeout=30)
    assert started.returncode == 0, started.stdout + started.stderr
    found = guest.exec(["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do "
                        "pgrep -x daemon && exit 0; sleep 0.2; done; exit 1"],
                       text=True, timeout=30)
    assert found.returncode == 0, found.stdout + found.stderr
    stopped = guest.exec(["pkill", "-x", "daemon"], text=True, timeout=30)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
