"""%wiz schedule --overlap in a real kernel (issue 21, item 7)."""

from __future__ import annotations

import wiz_jupyter as wiz


def test_schedule_takes_an_overlap_policy(kernel, tmp_path):
    kernel.ok("%load_ext wiz_jupyter")
    res = kernel.ok("%wiz schedule report --every 300 --overlap buffer_one --name kept")
    assert "overlap buffer_one" in res.plain[0]
    kernel.ok("%wiz schedule cleanup --every 60 --name plain")
    listed = kernel.ok("%wiz schedules").plain[0]
    assert "overlap" in listed.splitlines()[0] and "skipped" in listed.splitlines()[0]
    assert "buffer_one" in listed.splitlines()[2] and "skip" in listed.splitlines()[3]
    ws = wiz.Workspace(tmp_path / "home" / "wiz.db")  # the same file, from outside the kernel
    assert ws.schedules.get("kept").overlap == "buffer_one"
    assert ws.schedules.get("plain").overlap == "skip"  # the default
    ws.close()
    assert "--overlap {skip,buffer_one,allow}" in kernel.ok("%wiz schedule --help").stdout


def test_an_unknown_overlap_is_one_line(kernel):
    kernel.ok("%load_ext wiz_jupyter")
    res = kernel.run("%wiz schedule t --every 5 --overlap queue")
    assert res.status == "ok" and res.error is None
    assert "invalid choice: 'queue'" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
