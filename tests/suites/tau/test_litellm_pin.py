"""The litellm that tau_bench imports is pinned in one place (the `tau` extra) and named with tau_bench's
commit in the README's install line and the hint m1bench prints without tau_bench; where the extra is
installed, that litellm serves what tau_bench v1 asks of it, offline (mock responses)."""
import sys
from importlib.metadata import version

import pytest

from m1bench.suites.tau.env import INSTALL_HINT, TAU_BENCH_COMMIT
from tests.support import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


def pinned_litellm() -> str:
    (spec,) = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["tau"]
    name, pin = spec.split("==")
    assert name == "litellm"
    return pin


def test_the_install_line_and_the_hint_name_the_extra_and_the_commit():
    readme = (REPO / "README.md").read_text()
    (line,) = [x.strip() for x in readme.splitlines() if "tau_bench @ git+" in x]
    assert line == ("pip install -e '.[tau]' \"tau_bench @ git+https://github.com/sierra-research/tau-bench@"
                    f"{TAU_BENCH_COMMIT}\"")
    assert f"pip install -e '.[tau]' 'tau_bench @ git+https://github.com/sierra-research/tau-bench@{TAU_BENCH_COMMIT}'" \
        in INSTALL_HINT
    assert f"the extra pins {pinned_litellm()}" in " ".join(readme.split())


def test_the_pinned_litellm_serves_what_tau_bench_asks(monkeypatch):
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # its bundled price table, no download
    pytest.importorskip("litellm", reason="the tau extra is not installed (pip install -e '.[tau]')")
    from litellm import completion, provider_list

    assert version("litellm") == pinned_litellm()
    assert "openai" in [getattr(p, "value", p) for p in provider_list]  # tau_bench's run.py choices
    ask = {"model": "gpt-4o", "custom_llm_provider": "openai", "messages": [{"role": "user", "content": "Hi"}]}
    res = completion(**ask, temperature=0.0, mock_response="Hello, how can I help?")  # LLMUserSimulationEnv's call
    message = res.choices[0].message.model_dump()
    assert (message["role"], message["content"]) == ("assistant", "Hello, how can I help?")
    assert res._hidden_params["response_cost"] >= 0
    tools = [{"type": "function", "function": {"name": "get_user_details", "description": "d", "parameters": {
        "type": "object", "properties": {"user_id": {"type": "string"}}, "required": ["user_id"]}}}]
    call = {"id": "c1", "type": "function", "function": {"name": "get_user_details", "arguments": '{"user_id": "u1"}'}}
    res = completion(**ask, tools=tools, mock_tool_calls=[call])  # ToolCallingAgent's call
    (got,) = res.choices[0].message.model_dump()["tool_calls"]
    assert got["function"] == call["function"] and got["id"] == "c1"
