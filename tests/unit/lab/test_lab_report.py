"""The lab's summary.md and summary.html: what the run was, each guest's files, a legend."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hvbsd.lab.report import LEGEND, Check, GuestReport, summary_markdown, write_summaries

ABOUT = [("variables file", "/v/lab.yml"), ("hvbsd", "9.8.7"), ("ansible-core", "2.19.1")]


def guest(name: str = "g1") -> GuestReport:
    report = GuestReport(name, "sim", steps=[("create", 1.0)],
                         checks=[Check("test_x::test_y", "passed", 0.5)],
                         junit=f"junit-{name}.xml", check_output=f"checks-{name}.txt",
                         deploy_log="ansible.log", freebsd_version="14.1-RELEASE")
    report.timelines.append(("backup", f"timelines/{name}-1-backup.svg"))
    return report


def write(tmp_path, guests):
    for g in guests:
        for _, name in g.timelines:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    write_summaries(guests, tmp_path, "title", ABOUT)
    return (tmp_path / "summary.md").read_text(), (tmp_path / "summary.html").read_text()


def test_both_summaries_name_the_variables_file_and_the_versions(tmp_path):
    markdown, page = write(tmp_path, [guest()])
    for text in (markdown, page):
        for value in ("/v/lab.yml", "9.8.7", "2.19.1", "14.1-RELEASE"):
            assert value in text


def test_both_summaries_link_each_guests_check_output_and_deploy_log(tmp_path):
    markdown, page = write(tmp_path, [guest("g1"), guest("g2")])
    for name in ("g1", "g2"):
        assert f"[check output](checks-{name}.txt)" in markdown
        assert f'href="checks-{name}.txt"' in page
    assert "[deploy log](ansible.log)" in markdown
    assert 'href="ansible.log"' in page


def test_both_summaries_explain_the_timelines(tmp_path):
    markdown, page = write(tmp_path, [guest()])
    assert "## Reading the timelines" in markdown
    assert 'id="legend"' in page
    for what, _text in LEGEND:
        assert what in markdown and what in page
    assert "green" in markdown and "red" in page
    ET.fromstring(page.split("\n", 1)[1].replace('<meta charset="utf-8">', ""))  # well formed


def test_hostile_values_do_not_become_markup(tmp_path):
    about = [("variables file", "x|y](javascript:z) <b>\n# heading")]
    markdown = summary_markdown([guest()], "t", about)
    row = next(line for line in markdown.splitlines() if line.startswith("| variables file"))
    assert row.count("|") - row.count("\\|") == 3  # one row of two cells
    assert "<b>" not in markdown and "\n# heading" not in markdown
    write(tmp_path, [guest()])
    write_summaries([guest()], tmp_path, "t", about)
    assert "<b>" not in (tmp_path / "summary.html").read_text()
