"""Which magic jobs ask to be announced (--notify, --no-notify, %wiz notify), and the
note a background job leaves in its cell (the fallback where JupyterLab's is absent)."""

from __future__ import annotations

WIDGET = "application/vnd.jupyter.widget-view+json"


def test_background_jobs_notify_by_default_and_the_switch_and_flags_decide(kernel):
    kernel.ok("%load_ext wiz_jupyter\n%wiz agent helper --role assistant")
    assert "notifications on" in kernel.ok("%wiz notify").stdout

    bg = kernel.ok("%wiz ask helper --background -o job what is 6 * 7?")
    assert WIDGET in bg.outputs[-1]["data"]  # the note, whose text is the job's
    assert "Job" in bg.plain[-1] and "agent:helper" in bg.plain[-1]
    kernel.ok("note = _")
    done = kernel.ok(
        """\
        await job.wait(timeout=30)
        import asyncio
        for _ in range(100):  # the note hears the job's end on the kernel's loop
            if note.status == "completed":
                break
            await asyncio.sleep(0.05)
        print(job.notify, note.status, note.detail, note.label)
        """
    )
    assert done.stdout.strip() == "True completed 42 job 1 (helper)"

    quiet = kernel.ok("%wiz ask helper --background --no-notify -o j2 hello")
    assert WIDGET not in quiet.outputs[-1]["data"]  # the job itself
    kernel.ok("%wiz ask helper what is 1 + 1? -o waited")  # waited for: no notification
    assert "notifications off" in kernel.ok("%wiz notify off").stdout
    kernel.ok("%wiz assign helper -o j3 plan a walk")
    kernel.ok("%wiz assign helper --notify -o j4 plan a run")
    flags = kernel.ok(
        """\
        import wiz_jupyter as wiz
        ws = wiz.workspace()
        print([ws.jobs.get(i).notify for i in (2, 3)], j3.notify, j4.notify)
        """
    )
    assert flags.stdout.strip() == "[False, False] False True"
    assert "notifications on" in kernel.ok("%wiz notify on").stdout
    assert "invalid choice" in kernel.run("%wiz notify maybe").stderr
