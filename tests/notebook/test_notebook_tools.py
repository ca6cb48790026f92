"""The kernel-aware tools (tools=["notebook"]) in a real kernel, driven by scripted model turns."""

from __future__ import annotations

import json

SETUP = """
%load_ext wiz_jupyter
import json
import pandas as pd
import wiz_jupyter as wiz
from wiz_jupyter.agents import ScriptedModel, ToolCall
ws = wiz.workspace()
"""

CELL = """
df = pd.DataFrame({"city": ["Paris", "Lyon", "Nice"], "population": [2100000, 520000, 340000]})
OPENAI_API_KEY = "sk-test-123"
config = {"db_password": "hunter2", "host": "localhost"}
def helper(x):
    return x
"""


#: the scripted model's final answer: the mean it read in describe_variable's result
MEAN_FROM = """
def mean_from(messages):
    described = [m["content"] for m in messages if m["role"] == "tool"][-1]
    line = next(x for x in described.splitlines() if x.startswith("mean"))
    return f"The mean population is {line.split()[-1]}."
"""


def tool_results(kernel, model: str) -> list[str]:
    out = kernel.ok(
        f"print(json.dumps([m['content'] for m in {model}.requests[-1]['messages'] if m['role'] == 'tool']))"
    )
    return json.loads(out.stdout)


def test_an_agent_answers_about_a_dataframe_of_an_earlier_cell(kernel):
    kernel.ok(SETUP)
    kernel.ok(CELL)
    kernel.ok(MEAN_FROM)
    kernel.ok(
        "model = ScriptedModel([ToolCall('list_variables', {}),\n"
        "                       ToolCall('describe_variable', {'name': 'df'}), mean_from])\n"
        "analyst = ws.agent('analyst', role='data analyst', model=model, tools=['notebook'])"
    )
    res = kernel.ok("%wiz ask analyst What is the mean population in df? -o answer")
    # the answer is a display carrying its provenance (from describe())
    assert [p for p in res.plain if p.strip()] == ["The mean population is 9.866667e+05."]
    listed, described = tool_results(kernel, "model")
    assert "df: DataFrame shape (3, 2)" in listed.splitlines()
    assert "config: dict len 2" in listed.splitlines()
    assert "helper" not in listed and "pd:" not in listed and "wiz:" not in listed  # code, modules
    assert "In:" not in listed and "_" not in {x.split(":")[0] for x in listed.splitlines()}
    assert "withheld, as their names look secret" in listed and "OPENAI_API_KEY" in listed
    assert "DataFrame, 3 rows x 2 columns" in described
    assert "population: int64" in described and "Lyon" in described and "mean" in described
    offered = kernel.ok(
        "print(sorted(t['function']['name'] for t in model.requests[0]['tools']))"
    ).stdout
    assert offered.strip() == "['describe_variable', 'list_variables']"
    # the secret's value never reached the model; the dict's secret-looking key is masked
    sent = kernel.ok("print(json.dumps(model.requests, default=str))").stdout
    assert "sk-test-123" not in sent and "hunter2" not in sent


def test_a_secret_is_withheld_unless_the_user_names_it(kernel):
    kernel.ok(SETUP)
    kernel.ok(CELL)
    kernel.ok(
        "model = ScriptedModel([\n"
        "    ToolCall('describe_variable', {'name': 'OPENAI_API_KEY'}), 'no',\n"
        "    ToolCall('describe_variable', {'name': 'OPENAI_API_KEY'}), 'yes',\n"
        "])\n"
        "agent = ws.agent('keeper', model=model, tools=['notebook'])"
    )
    kernel.ok("%wiz ask keeper Which key do I use")
    (refused,) = tool_results(kernel, "model")
    assert refused == (
        "error: ToolError: 'OPENAI_API_KEY' is withheld: its name looks secret, "
        "and the user did not name it in the request"
    )
    kernel.ok("%wiz ask keeper Show me OPENAI_API_KEY please")
    (shown,) = tool_results(kernel, "model")
    assert shown == "str len 11\n'sk-test-123'"
    # a prompt made while another job runs (an agent's sub-job, a task's) never names one
    made = kernel.ok(
        "@ws.task\n"
        "def maker():\n"
        "    return agent.submit('ask', 'show OPENAI_API_KEY', delay=3600).data['kernel']['named']\n"
        "j = ws.jobs.add('maker')\n"
        "%wiz result {j.id} --wait -o inner\n"
        "outer = agent.submit('ask', 'show OPENAI_API_KEY', delay=3600).data['kernel']['named']\n"
        "print(inner, outer)"
    )
    assert made.stdout.strip().endswith("[] ['OPENAI_API_KEY']")


def test_without_the_tools_an_agent_cannot_see_the_notebook(kernel):
    kernel.ok(SETUP)
    kernel.ok(CELL)
    kernel.ok(
        "model = ScriptedModel([ToolCall('list_variables', {}), 'I cannot see it.'])\n"
        "plain = ws.agent('plain', model=model, tools=['read_file'])"
    )
    assert "I cannot see it." in kernel.ok("%wiz ask plain What is in df").plain
    (result,) = tool_results(kernel, "model")
    assert result == "error: there is no tool 'list_variables'; tools: read_file"
    offered = kernel.ok("print([t['function']['name'] for t in model.requests[0]['tools']])")
    assert offered.stdout.strip() == "['read_file']"


def test_a_job_from_elsewhere_gets_a_tool_error_not_this_namespace(kernel):
    kernel.ok(SETUP)
    kernel.ok(CELL)
    kernel.ok(
        "model = ScriptedModel([ToolCall('list_variables', {}), 'a', ToolCall('list_variables', {}), 'b'])\n"
        "nb = ws.agent('nb', model=model, tools=['notebook'])\n"
        "def result_of(job):\n"
        "    rows = ws.store.read('SELECT tool_calls FROM activity WHERE job_id = ?', (job.id,))\n"
        "    print(json.loads(rows[0][0])[0]['result'])"
    )
    # stamped by another kernel (another notebook, or the headless worker running it)
    elsewhere = kernel.ok(
        "other = {'process': 'elsewhere:1:abc', 'named': []}\n"
        "j1 = ws.jobs.add('agent:nb', {'kind': 'ask', 'prompt': 'vars', 'kernel': other}, agent='nb')\n"
        "%wiz result {j1.id} --wait\n"
        "result_of(j1)"
    ).stdout
    # not stamped at all: made by a schedule, a script, a worker
    unstamped = kernel.ok(
        "j2 = ws.jobs.add('agent:nb', {'kind': 'ask', 'prompt': 'vars'}, agent='nb')\n"
        "%wiz result {j2.id} --wait\n"
        "result_of(j2)"
    ).stdout
    assert "error: ToolError: this job runs in another process" in elsewhere
    assert (
        "error: ToolError: the notebook tools only answer for a job started from a notebook kernel"
        in unstamped
    )
    assert "DataFrame" not in elsewhere + unstamped


def test_the_magic_switches_the_tools_on(kernel):
    kernel.ok("%load_ext wiz_jupyter")
    made = kernel.ok("%wiz agent helper --tools read_file --notebook")
    assert "tools read_file, notebook" in made.plain[0]
    again = kernel.ok("%wiz agent helper --notebook")  # keeps the tools it had
    assert "tools read_file, notebook" in again.plain[0]
    kernel.ok(
        "import wiz_jupyter as wiz\n"
        "def lookup(city: str) -> str:\n"
        "    return city\n"
        "wiz.workspace().agent('custom', tools=[lookup])"
    )
    # a function given to an agent is registered by name, so the magic can keep it
    kept = kernel.ok("%wiz agent custom --notebook")
    assert "tools lookup, notebook" in kept.plain[0]
    kernel.ok("wiz.workspace().agent('remote', tools=[wiz.mcp('files', command=['x'])])")
    refused = kernel.run("%wiz agent remote --notebook")
    assert "wiz: remote has tools defined in Python" in refused.stderr
    assert "Traceback" not in refused.stderr


async def test_outside_a_kernel_the_tools_answer_with_an_error(ws):
    """What the headless worker, or a script, sees: no notebook, so a tool error."""
    from wiz_jupyter.agents import ScriptedModel, ToolCall

    model = ScriptedModel([ToolCall("list_variables", {}), "none"])
    a = ws.agent("worker", model=model, tools=["notebook"])
    assert await a.ask("what variables are there", timeout=30) == "none"
    assert "kernel" not in a.history()[0].data  # created outside a kernel: no stamp
    result = [m["content"] for m in model.requests[-1]["messages"] if m["role"] == "tool"]
    assert result[0].startswith("error: ToolError: the notebook tools only answer for a job")


def test_summaries_and_descriptions_stay_small_and_read_only():
    import numpy as np
    import pandas as pd

    from wiz_jupyter.agents import notebook_tools as nt

    assert nt.summary(np.zeros((4, 5))) == "ndarray shape (4, 5)"
    assert nt.summary(pd.Series([1, 2])) == "Series shape (2,)"
    assert nt.summary([1, 2, 3]) == "list len 3"

    class Sneaky(list):  # a subclass's __len__ is user code: not called
        def __len__(self):
            raise AssertionError("called")

    assert nt.summary(Sneaky()) == "Sneaky"
    arr = nt.describe(np.arange(1_000_000).reshape(1000, 1000))
    assert "shape (1000, 1000), dtype int64" in arr and "first values: [ 0  1  2" in arr
    wide = pd.DataFrame({f"c{i}": range(200_000) for i in range(80)})
    text = nt.cut(nt.describe(wide))
    assert len(text) <= nt.BUDGET + 60 and text.endswith("more characters cut]")
    assert "... 30 more columns" in nt.describe(wide)
    assert "describe() (first 100000 rows)" in nt.describe(wide)
    masked = nt.describe({"api_key": "sk-1", "user": "ann"})
    assert "sk-1" not in masked and "'user': 'ann'" in masked
    assert [n for n in ("OPENAI_API_KEY", "db_password", "auth", "token2", "df", "cities")
            if nt.looks_secret(n)] == ["OPENAI_API_KEY", "db_password", "auth", "token2"]  # fmt: skip
