"""The ask -> cell -> run -> fix loop in a real kernel: answers' code goes into a new
cell below (a ``set_next_input`` payload, never run), ``%wiz fix`` sends the last error,
and prompts interpolate ``{In[n]}``, ``{Out[n]}`` and ``{Err[n]}``."""

from __future__ import annotations

import pytest

from wiz_jupyter.notebook.cells import code_blocks, code_of


def next_cells(res) -> list[str]:
    return [p["text"] for p in res.payload if p.get("source") == "set_next_input"]


ANSWER = """Here it is:

```python
total = sum(range(10))
```

and to show it:

~~~py
print(total)
~~~

```bash
rm -rf /
```
"""


def test_the_code_of_an_answer_is_its_python_and_unlabelled_blocks():
    assert code_blocks(ANSWER) == ["total = sum(range(10))", "print(total)"]
    assert code_of(ANSWER) == "total = sum(range(10))\n\nprint(total)"
    assert code_of("no code here, only `inline`") is None
    assert code_blocks("```\nx = 1\n```") == ["x = 1"]
    assert code_blocks("```python\n\n```") == []  # an empty block is no code


def test_ask_code_puts_the_answers_code_in_a_new_cell_and_never_runs_it(kernel):
    kernel.ok("%load_ext wiz_jupyter\n%wiz agent coder --role 'python helper'")
    res = kernel.ok("%%wiz ask coder --code\nsay Here:\n```python\nran = 'yes'\nprint(ran)\n```")
    assert next_cells(res) == ["ran = 'yes'\nprint(ran)"]
    assert [p["replace"] for p in res.payload] == [False]  # below, not over this cell
    assert "NameError" in kernel.run("print(ran)").error  # offered, not run
    plain = kernel.ok("%wiz ask coder --code say there is nothing to run here")
    assert not next_cells(plain) and "no code block: no cell added" in plain.stdout
    assert not next_cells(kernel.ok("%%wiz ask coder\nsay Here:\n```python\nx = 1\n```"))


def test_fix_sends_the_failing_cell_and_offers_the_corrected_one(kernel):
    kernel.ok("%load_ext wiz_jupyter\n%wiz agent fixer --role 'python helper' --notebook")
    kernel.ok("total = 41")
    failed = kernel.run("answer = totl + 1\nprint(answer)")
    assert failed.error == "NameError: name 'totl' is not defined"
    kernel.ok("unrelated = 1")  # a cell that succeeds does not replace the error
    res = kernel.ok("%wiz fix -o why")
    assert next_cells(res) == ["answer = total + 1\nprint(answer)"]
    assert "misspelling of `total`" in res.plain[-1]
    sent = kernel.ok(
        "import wiz_jupyter as wiz\n"
        "job = [j for j in wiz.workspace().jobs.list() if j.task == 'agent:fixer'][-1]\n"
        "print(job.data['prompt'])"
    ).stdout
    assert "answer = totl + 1" in sent and "Traceback" in sent
    assert "NameError: name 'totl' is not defined" in sent
    assert "look alike: total" in sent and "- total: int" in sent  # it has the notebook tools
    kernel.ok(next_cells(res)[0])  # the offered cell runs


def test_fix_explains_what_it_cannot_correct_and_names_no_secret(kernel):
    kernel.ok("%load_ext wiz_jupyter\n%wiz agent fixer --role helper")
    kernel.ok("API_TOKEN = 'sk-not-to-be-sent-1234'\nzero = 0")
    assert kernel.run("API_TOKN + zero").error.startswith("NameError")
    res = kernel.ok("%wiz fix fixer")
    sent = kernel.ok(
        "import wiz_jupyter as wiz\nprint(wiz.workspace().jobs.list()[-1].data['prompt'])"
    ).stdout
    assert "API_TOKEN" not in sent and "sk-not" not in sent  # secret-looking names stay out
    assert not next_cells(res)
    assert kernel.run("1 / zero").error == "ZeroDivisionError: division by zero"
    res = kernel.ok("%wiz fix")
    assert "ZeroDivisionError: division by zero" in res.plain[-1]
    assert not next_cells(res) and "no code block" in res.stdout


def test_fix_errors_are_one_line(kernel):
    kernel.ok("%load_ext wiz_jupyter")
    assert "wiz: no error to fix" in kernel.run("%wiz fix").stderr
    kernel.run("1 / 0")
    assert "wiz: no agents yet" in kernel.run("%wiz fix").stderr
    kernel.ok("%wiz agent a --role x\n%wiz agent b --role y")
    res = kernel.run("%wiz fix")
    assert "wiz: name the agent: %wiz fix NAME (agents: a, b)" in res.stderr
    assert "wiz: no agent 'ghost'" in kernel.run("%wiz fix ghost").stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("ref", ["{In[2]}", "{Out[2]}", "{Err[3]}"])
def test_prompts_interpolate_cells_outputs_and_errors(kernel, ref):
    kernel.ok("%load_ext wiz_jupyter\n%wiz agent echo --role echo")  # cell 1
    kernel.ok("6 * 7")  # cell 2
    kernel.run("int('forty')")  # cell 3
    kernel.ok(f"%wiz ask echo say {ref} -o got")
    got = kernel.ok("print(got)").stdout
    expected = {"{In[2]}": "6 * 7", "{Out[2]}": "42", "{Err[3]}": "ValueError: invalid literal"}
    assert expected[ref] in got
