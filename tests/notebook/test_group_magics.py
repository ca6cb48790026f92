"""``%wiz jobs --group``: a group's jobs, with the group beside the task."""

from __future__ import annotations


def test_wiz_jobs_filters_by_group_and_shows_it(kernel):
    kernel.ok("""
        %load_ext wiz_jupyter
        import wiz_jupyter as wiz
        ws = wiz.workspace()
        ws.jobs.pause()
        ws.jobs.add("crawl", {"u": 1}, group="alice")
        ws.jobs.add("crawl", {"u": 2}, group="bob")
    """)
    table = kernel.ok("%wiz jobs --group alice")
    assert "crawl [alice]" in table.plain[0] and "bob" not in table.plain[0]
    assert "crawl [alice]" in table.html[0]
    assert "crawl [bob]" in kernel.ok("%wiz jobs").plain[0]
