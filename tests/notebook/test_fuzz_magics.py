"""Issue 19: no argument string gives `%wiz` or `wiz` a traceback or a hang.

hypothesis builds lines from each subcommand's own words and hostile values (integers
past SQLite's range, NaN, negative and huge numbers, unbalanced quotes, long names, paths
into folders that do not exist) and runs them in a real IPython shell (in this process,
so a few hundred lines take seconds) and through the command line's ``main``. Any
exception that escapes, or "Traceback" in what is printed, fails. Commands that would
wait on purpose (``--wait``), start processes (``dask local``, ``worker``) or change the
user's crontab are left out; they have tests of their own.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

from wiz_jupyter import cli
from wiz_jupyter.notebook import magics

HOSTILE = ["9223372036854775808", "-9223372036854775809", str(10**30), "nan", "inf", "-inf",
           "1e400", "-1", "0", "0.5", "abc", "'", '"', "{", "{}", '{"a": 1}', "é", "\\", "--",
           "-", "nodir/x.yaml", "x" * 300, "", "1", "2", "None", "true", "*/5 * * * *",
           "2026-13-45", "tcp://", "..", "/"]  # fmt: skip


def words_of(parser) -> list[str]:
    """Option strings and choices of an argparse parser."""
    out: list[str] = []
    for action in parser._actions:
        out += [o for o in action.option_strings if o not in ("-h", "--help")]
        out += [str(c) for c in (action.choices or ()) if isinstance(c, str)]
    return out


@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    home = tmp_path_factory.mktemp("fuzz-magics")
    old_cwd, old_home = os.getcwd(), os.environ.get("WIZ_HOME")
    os.chdir(home)
    os.environ["WIZ_HOME"] = str(home)
    ip = InteractiveShell.instance()
    magics.load(ip)
    wiz = magics._loaded[id(ip)]
    wiz.ws.jobs.add("fuzzed", {"x": 1})
    wiz.ws.agent("fuzzer", role="r")
    yield ip, wiz
    magics.unload(ip)
    wiz.ws.close()
    InteractiveShell.clear_instance()  # later tests must not think they run in IPython
    os.chdir(old_cwd)
    if old_home is None:
        os.environ.pop("WIZ_HOME", None)
    else:
        os.environ["WIZ_HOME"] = old_home


SKIP_MAGIC = {"dask", "board", "chat"}  # a cluster, and widgets: tested in their own files


@pytest.mark.timeout(300)
def test_random_magic_lines_never_give_a_traceback(shell):
    ip, wiz = shell
    commands = sorted(set(wiz.subparsers) - SKIP_MAGIC)
    vocab = {name: [w for w in words_of(p) if w != "--wait"] for name, p in wiz.subparsers.items()}

    @settings(max_examples=400, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(
        command=st.sampled_from(commands),
        args=st.data(),
    )
    def run(command, args):
        pieces = args.draw(
            st.lists(st.sampled_from(HOSTILE + vocab[command]) | st.text(max_size=12), max_size=6)
        )
        line = " ".join([command, *(shlex.quote(p) if p and p[0] != "-" else p for p in pieces)])
        if args.draw(st.booleans()):
            line = command + " " + " ".join(pieces)  # unquoted: unbalanced quotes and all
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            ip.run_line_magic("wiz", line)  # an exception escaping here fails the test
        printed = out.getvalue() + err.getvalue()
        assert "Traceback" not in printed, (line, printed)
        if err.getvalue().strip():  # an error is one line
            assert err.getvalue().strip().count("\n") == 0, (line, err.getvalue())

    run()


@pytest.mark.timeout(300)
def test_random_command_lines_never_give_a_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = str(tmp_path / "wiz.db")
    parser = cli.parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    commands = ["jobs", "schedules", "run-due", "run", "autowake"]  # not `worker`: it serves
    vocab = {name: words_of(sub.choices[name]) for name in commands}
    vocab["autowake"] = [w for w in vocab["autowake"] if w not in ("install", "remove")]

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(command=st.sampled_from(commands), args=st.data())
    def run(command, args):
        pieces = args.draw(
            st.lists(st.sampled_from(HOSTILE + vocab[command]) | st.text(max_size=12), max_size=5)
        )
        if command == "autowake":
            pieces = ["status", *pieces]
        if command == "run-due":
            pieces = [*pieces, "--timeout", "5"]
        argv = [command, *pieces, "--db", db]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as e:  # argparse: usage errors and --help
                code = e.code
        printed = out.getvalue() + err.getvalue()
        assert "Traceback" not in printed, (argv, printed)
        if code not in (0, None):
            assert err.getvalue().strip() and err.getvalue().strip().count("\n") == 0, (
                argv,
                printed,
            )

    run()
