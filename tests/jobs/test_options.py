"""The jobs row and job options, each defined once, and the queue's public seams
(``register``, ``spec``, ``transaction`` + ``insert_in``). Real SQLite files."""

from __future__ import annotations

import sqlite3
import typing

import pytest

import wiz_jupyter as wiz
from wiz_jupyter.jobs.models import COLUMNS, INSERT_COLUMNS, NEW_ROW, SUMMARY_COLUMNS
from wiz_jupyter.jobs.options import JOB_OPTIONS, JobOptions, JobSpec, TaskSpec
from wiz_jupyter.jobs.queue import Queue


def test_the_table_the_migrations_make_has_exactly_the_columns_the_code_names(ws):
    with sqlite3.connect(ws.path) as c:
        table = [r[1] for r in c.execute("PRAGMA table_info(jobs)")]
    assert sorted(table) == sorted(COLUMNS)
    assert set(INSERT_COLUMNS) <= set(COLUMNS) and set(SUMMARY_COLUMNS) <= set(COLUMNS)
    assert set(NEW_ROW) == set(COLUMNS)


def test_rows_are_read_by_name_whatever_the_tables_column_order(db_path):
    ws = wiz.Workspace(db_path)
    ws.jobs.add("t", {"x": 1}, priority=3, key="k")
    ws.close()
    # rebuild the table with its columns in reverse order, as a migration might leave it
    with sqlite3.connect(db_path) as c:
        cols = [r[1] for r in c.execute("PRAGMA table_info(jobs)")][::-1]
        c.execute("ALTER TABLE jobs RENAME TO old_jobs")
        quoted = ", ".join(f'"{c}"' for c in cols)  # "group" is an SQL keyword
        c.execute(f"CREATE TABLE jobs AS SELECT {quoted} FROM old_jobs")
        c.execute("DROP TABLE old_jobs")
    ws = wiz.Workspace(db_path)
    [job] = ws.jobs.list()
    assert (job.task, job.data, job.key, job.status) == ("t", {"x": 1}, "k", "waiting")
    assert ws.jobs.get(job.id).snapshot["priority"] == 3
    ws.close()


def test_the_typed_options_are_the_options_add_takes(ws):
    hints = typing.get_type_hints(Queue.add, include_extras=True)
    assert typing.get_args(hints["options"]) == (JobOptions,)
    assert JOB_OPTIONS == {"priority", "delay", "run_at", "attempts", "backoff", "timeout",
                           "depends_on", "parent", "key", "agent", "on_dep_failure",
                           "fail_parent", "notify", "remove_on_complete", "remove_on_fail",
                           "group"}  # fmt: skip


@pytest.mark.parametrize(
    "options, message",
    [
        ({"prority": 1}, "unknown job option(s): prority"),
        ({"attempts": True}, "attempts must be an integer >= 1, not True"),
        ({"timeout": 0}, "timeout must be a positive number of seconds, not 0"),
        ({"run_at": "soon"}, "run_at must be a datetime"),
        ({"on_dep_failure": "skip"}, "on_dep_failure must be 'fail' or 'ignore'"),
    ],
)
def test_add_add_bulk_and_schedules_refuse_bad_options_alike(ws, options, message):
    for add in (
        lambda: ws.jobs.add("t", {}, **options),
        lambda: ws.jobs.add_bulk([("t", {}, options)]),
        lambda: ws.jobs.spec("t", {}, **options),
    ):
        with pytest.raises(wiz.InvalidJob) as e:
            add()
        assert str(e.value).startswith(message)
    assert ws.jobs.list() == []


def test_a_task_registered_through_the_queue_gets_the_same_checks_as_ws_task(ws):
    with pytest.raises(ValueError, match="executor must be"):
        ws.jobs.register(TaskSpec(name="x", fn=print, executor="gpu"))
    with pytest.raises(ValueError, match="resources are Dask annotations"):
        ws.jobs.register(TaskSpec(name="x", fn=print, resources={"GPU": 1}))
    with pytest.raises(wiz.InvalidJob, match="backoff type"):
        ws.jobs.register(TaskSpec(name="x", fn=print, backoff=("linear", 1)))
    assert "x" not in ws.jobs.tasks
    with pytest.raises(TypeError):
        ws.jobs.tasks["x"] = TaskSpec(name="x", fn=print)  # read-only: register is the way in
    ws.jobs.register(TaskSpec(name="x", fn=print, attempts=4))
    assert ws.jobs.add("x").attempts == 4  # the task's defaults fill the job's options
    ws.jobs.unregister("x")
    assert ws.jobs.add("x").attempts == 1


async def test_jobs_inserted_in_a_transaction_commit_or_roll_back_with_it(ws):
    spec = ws.jobs.spec("t", {"n": 1}, priority=2)
    assert isinstance(spec, JobSpec) and spec.priority == 2
    with ws.jobs.transaction() as tx:
        [job] = ws.jobs.insert_in(tx, [spec, spec.with_data('{"n": 2}')])[:1]
    assert [j.data for j in ws.jobs.list()] == [{"n": 1}, {"n": 2}]
    with pytest.raises(RuntimeError), ws.jobs.transaction() as tx:
        ws.jobs.insert_in(tx, [spec])
        raise RuntimeError("the other change failed")
    assert len(ws.jobs.list()) == 2
    assert job.priority == 2
