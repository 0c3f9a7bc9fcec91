# Copyright (c) hvbsd contributors
# SPDX-License-Identifier: BSD-2-Clause
"""Ansible connection to a simulated FreeBSD guest (``hvbsd sim guest``)."""

from __future__ import annotations

import os
import subprocess
import typing as t

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

DOCUMENTATION = """
    name: hvbsd_sim
    short_description: Run tasks inside a simulated FreeBSD guest of hvbsd
    description:
        - Runs commands and transfers files inside a simulated FreeBSD guest
          (a Linux user, mount and PID namespace created by C(hvbsd sim guest create)),
          the way the chroot and jail connections do for their targets.
        - The host name is the guest's name. Commands run as root inside the guest.
    author: hvbsd contributors
    options:
        remote_addr:
            description: Name of the guest.
            default: inventory_hostname
            type: str
            vars:
                - name: inventory_hostname
                - name: ansible_host
                - name: ansible_hvbsd_sim_guest
        state_dir:
            description:
                - Directory holding the guests' state, as C(hvbsd sim guest --state-dir).
                - Defaults to C($HVBSD_SIM_HOME), then C(~/.local/state/hvbsd/sim).
            type: str
            vars:
                - name: ansible_hvbsd_sim_state_dir
            env:
                - name: HVBSD_SIM_HOME
        timeout:
            description: Seconds a single command may run before it is killed.
            type: int
            default: 600
            vars:
                - name: ansible_hvbsd_sim_timeout
    extends_documentation_fragment:
        - connection_pipelining
"""

display = Display()

BUFFER_SIZE = 65536


class Connection(ConnectionBase):
    """Commands and files inside a simulated guest, entered with nsenter."""

    transport = "hvbsd_sim"
    has_pipelining = True
    has_tty = False
    default_user = "root"

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._guest: t.Any = None

    def _connect(self) -> Connection:
        if self._connected:
            return self
        from hvbsd.sim.guest import Guest, GuestError

        name = self.get_option("remote_addr") or self._play_context.remote_addr
        try:
            guest = Guest(name, self.get_option("state_dir") or None)
            guest.require_running()
        except GuestError as error:
            raise AnsibleConnectionFailure(f"hvbsd_sim: {error}") from None
        self._guest = guest
        self._play_context.remote_user = "root"
        display.vvv(f"ENTER simulated guest {name} ({guest.state_dir})", host=name)
        self._connected = True
        return self

    def _run(
        self, argv: list[str], stdin: t.Any = None, input_data: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        from hvbsd.sim.guest import GuestError

        timeout = self.get_option("timeout")
        try:
            if stdin is not None:
                process = self._guest.popen(
                    argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE
                )
                stdout, stderr = process.communicate(timeout=timeout)
                return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
            return self._guest.exec(argv, input=input_data, timeout=timeout)
        except GuestError as error:
            raise AnsibleConnectionFailure(f"hvbsd_sim: {error}") from None
        except subprocess.TimeoutExpired:
            raise AnsibleConnectionFailure(
                f"hvbsd_sim: command did not finish within {timeout} s: {argv!r}"
            ) from None

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = False
    ) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        shell = self._play_context.executable or "/bin/sh"
        display.vvv(f"EXEC {cmd}", host=self._guest.name)
        result = self._run([shell, "-c", cmd], input_data=in_data or b"")
        return result.returncode, result.stdout, result.stderr

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        display.vvv(f"PUT {in_path} TO {out_path}", host=self._guest.name)
        local = to_bytes(in_path, errors="surrogate_or_strict")
        if not os.path.exists(local):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        with open(local, "rb") as source:
            # Write through the guest so the file lands in its overlay, owned by its root.
            result = self._run(["/bin/sh", "-c", 'cat > "$1"', "sh", out_path], stdin=source)
        if result.returncode != 0:
            raise AnsibleError(
                f"failed to transfer file to {out_path}: {to_text(result.stderr).strip()}"
            )

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH {in_path} TO {out_path}", host=self._guest.name)
        result = self._run(["/bin/cat", "--", in_path])
        if result.returncode != 0:
            raise AnsibleError(
                f"failed to fetch file {in_path}: {to_text(result.stderr).strip()}"
            )
        with open(to_bytes(out_path, errors="surrogate_or_strict"), "wb") as target:
            target.write(result.stdout)

    def close(self) -> None:
        super().close()
        self._connected = False
