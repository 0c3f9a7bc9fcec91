"""testinfra checks for a simulated guest, written as for a real FreeBSD host.

Run by tests/integration/test_testinfra_backend.py with
``--hosts=hvbsd-sim://NAME?state_dir=DIR`` after it has installed and started
the ``hvbsd_probe`` rc.d service and written /usr/local/etc/hvbsd_probe.conf.
"""


def test_guest_reports_freebsd(host):
    assert host.system_info.type == "freebsd"
    assert host.system_info.release.endswith("-RELEASE")


def test_probe_config_has_its_owner_and_mode(host):
    config = host.file("/usr/local/etc/hvbsd_probe.conf")
    assert config.exists
    assert config.is_file
    assert config.user == "root"
    assert config.mode == 0o640
    assert config.contains("^greeting=testinfra$")


def test_rc_d_script_is_executable(host):
    assert host.file("/usr/local/etc/rc.d/hvbsd_probe").mode == 0o755


def test_sysctl_reads_the_simulated_kernel(host):
    assert host.sysctl("kern.ostype") == "FreeBSD"
    assert host.sysctl("hw.hn.vf_transparent") == 1


def test_probe_service_is_enabled_and_running(host):
    service = host.service("hvbsd_probe")
    assert service.is_enabled
    assert service.is_running


def test_stopped_service_is_not_running(host):
    assert not host.service("hvbsd_absent").is_running


def test_hn0_exists(host):
    assert host.interface("hn0").exists
