"""`hvbsd render` and ansible-playbook's template module write the same bytes.

A real ansible-playbook run (connection local) renders every wanted output of
the manifest with ansible.builtin.template from the same templates and
variables (role defaults, then the example), and each file is compared with
the Python API's output byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from hvbsd.render import render_host

pytestmark = pytest.mark.slow

PLAYBOOK = """
- name: Render hvbsd's templates with ansible.builtin.template
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {root}/roles/hyperv_guest/defaults/main.yml
    - {root}/roles/hyperv_vss/defaults/main.yml
    - {root}/templates/manifest.yml
    - {variables}
  vars:
    out: {out}
    templates: {root}/templates
  tasks:
    - name: Create the directories
      ansible.builtin.file:
        path: "{{{{ (out ~ item.path) | dirname }}}}"
        state: directory
        mode: "0755"
      loop: "{{{{ outputs }}}}"
    - name: Render the files
      ansible.builtin.template:
        src: "{{{{ templates }}}}/{{{{ item.template }}}}"
        dest: "{{{{ out }}}}{{{{ item.path }}}}"
        mode: "{{{{ item.mode }}}}"
      loop: "{{{{ outputs | rejectattr('per_interface', 'defined') }}}}"
      when: >-
        switches[item.when].variable is none or
        lookup('vars', switches[item.when].variable) == switches[item.when].equals
    - name: Render the per-interface files
      ansible.builtin.template:
        src: "{{{{ templates }}}}/{{{{ pair[0].template }}}}"
        dest: "{{{{ out }}}}{{{{ pair[0].path }}}}{{{{ pair[1].name }}}}"
        mode: "{{{{ pair[0].mode }}}}"
      vars:
        hyperv_guest_interface: "{{{{ pair[1] }}}}"
      loop: >-
        {{{{ outputs | selectattr('per_interface', 'defined')
           | product(hyperv_guest_interfaces) }}}}
      loop_control:
        loop_var: pair
      when:
        - lookup('vars', switches[pair[0].when].variable) == switches[pair[0].when].equals
        - pair[1][pair[0].per_interface] | default({{}}) | length > 0
"""


@pytest.fixture(params=["azure-lagg", "static-dual-stack", "transparent", "static-lagg"])
def variables_file(request, root, tmp_path):
    if request.param != "static-lagg":
        return root / "examples" / f"{request.param}.yml"
    path = tmp_path / "static-lagg.yml"
    path.write_text(yaml.safe_dump({
        "hyperv_guest_mode": "lagg", "hyperv_guest_static_lagg": True,
        "hyperv_guest_kvp": "off", "hyperv_guest_vss_daemon": "none",
        "hyperv_vss_debug": True, "hyperv_vss_app_device": "/dev/hv_appvss_dev",
        "hyperv_guest_interfaces": [
            {"name": "hn0", "ipv6": "slaac", "vfup": {"dhclient_flags": "-q"}},
            {"name": "hn3", "lagg": "lagg9", "ipv4": "static", "ipv4_address": "10.0.0.9",
             "ipv4_prefix": 8, "ipv6": "static", "ipv6_address": "fd00::9", "ipv6_prefix": 48}]}))
    return path


def test_ansible_template_module_writes_the_same_bytes(root, tmp_path, variables_file):
    out = tmp_path / "ansible"
    playbook = tmp_path / "render.yml"
    playbook.write_text(PLAYBOOK.format(root=root, out=out, variables=variables_file))
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\nretry_files_enabled = False\n")
    env = {**os.environ, "ANSIBLE_LOCALHOST_WARNING": "False",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_PYTHON_INTERPRETER": sys.executable, "ANSIBLE_CONFIG": str(config)}
    result = subprocess.run(
        [sys.executable, "-m", "ansible.cli.playbook", str(playbook)],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

    expected = render_host(yaml.safe_load(variables_file.read_text()))
    written = {"/" + p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file()}
    assert sorted(written) == sorted(expected)
    for path, rendered in expected.items():
        assert written[path].read_bytes() == rendered.content, path
        assert written[path].stat().st_mode & 0o777 == rendered.mode, path
