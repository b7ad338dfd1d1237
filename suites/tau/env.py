"""TAU-bench environments behind one interface.

- airline / retail: tau-bench's own environments, tools, tasks and reward, when the `tau_bench`
  package (sierra-research/tau-bench v1, installed from its repository; not on PyPI) imports.
- a domain of one's own (the test fixture, or any `domain = "file.py"`): `LocalEnv`, which keeps
  tau-bench's Env contract: `tools_info`, `wiki`, `tasks`, `terminate_tools`, `reset(task_index)`,
  `step(action)`, `calculate_reward()`, and a `user` slot holding the user simulator.

The reward is tau-bench's: 1 when the final database equals the one obtained by replaying the
task's gold actions on a fresh copy AND every required output appears (case-insensitive, commas
removed) in some message the agent sent the user; else 0.

m1bench drives its own (async) user simulator; `UserRelay` sits in the environment's user slot
and hands the environment each answer the simulator already gave, so `env.reset`/`env.step` run
exactly as tau-bench wrote them (stop token detection and reward included).
"""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
from dataclasses import asdict, dataclass, field, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from m1bench.suites.source import DataError

RESPOND = "respond"  # tau-bench's RESPOND_ACTION_NAME: the agent talks to the user
STOP_TOKEN = "###STOP###"  # the user simulator ends the conversation with it
SUCCESS_MIN = 1.0 - 1e-6  # tau-bench counts a trial successful when its reward is 1 (within 1e-6)

TAU_BENCH_COMMIT = "59a200c6d575d595120f1cb70fea53cef0632f6b"  # sierra-research/tau-bench v1
INSTALL_HINT = ("the tau_bench package (sierra-research/tau-bench v1) is not importable; it is not on PyPI. "
                "Install it from its repository, with the litellm it imports (the tau extra): pip install -e '.[tau]' "
                f"'tau_bench @ git+https://github.com/sierra-research/tau-bench@{TAU_BENCH_COMMIT}' "
                "(see the README, TAU-bench section)")


# ---- LocalEnv: tau-bench's Env contract for domains of one's own -----------------------------
@dataclass
class Action:
    name: str
    kwargs: dict[str, Any]


@dataclass
class Task:
    user_id: str
    actions: list[Action]
    instruction: str
    outputs: list[str] = field(default_factory=list)


@dataclass
class EnvInfo:
    source: str | None = None
    reward_info: dict[str, Any] | None = None


@dataclass
class EnvResponse:
    observation: str
    reward: float = 0.0
    done: bool = False
    info: EnvInfo = field(default_factory=EnvInfo)


class Tool:
    """A domain tool: its OpenAI function schema and `invoke(data, **arguments) -> str`."""

    def __init__(self, fn: Callable[..., str], info: dict[str, Any]):
        self.fn, self.info = fn, info

    def get_info(self) -> dict[str, Any]:
        return self.info

    def invoke(self, data: dict[str, Any], **kwargs: Any) -> str:
        return self.fn(data, **kwargs)


def tool(description: str, properties: dict[str, Any], required: list[str] | None = None) -> Callable[[Callable], Tool]:
    """Decorator: a function `(data, **arguments) -> str` becomes a Tool named after it."""
    def wrap(fn: Callable[..., str]) -> Tool:
        return Tool(fn, {"type": "function", "function": {
            "name": fn.__name__, "description": description,
            "parameters": {"type": "object", "properties": properties,
                           "required": list(properties) if required is None else required}}})
    return wrap


def data_hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


class LocalEnv:
    """A tau-bench-style environment over a JSON database (see the module docstring)."""

    def __init__(self, data_load_func: Callable[[], dict[str, Any]], tools: list[Tool], tasks: list[Task],
                 wiki: str, terminate_tools: tuple[str, ...] = ()):
        self.data_load_func = data_load_func
        self.data = data_load_func()
        self.tools_map = {t.get_info()["function"]["name"]: t for t in tools}
        self.tools_info = [t.get_info() for t in tools]
        self.tasks, self.wiki = tasks, wiki
        self.terminate_tools = list(terminate_tools)
        self.user: Any = None  # reset(instruction) -> str, step(content) -> str
        self.task_index, self.task = 0, tasks[0]
        self.actions: list[Action] = []

    def reset(self, task_index: int) -> EnvResponse:
        self.task_index, self.task = task_index, self.tasks[task_index]
        self.data = self.data_load_func()
        self.actions = []
        return EnvResponse(observation=self.user.reset(instruction=self.task.instruction), info=EnvInfo(source="user"))

    def step(self, action: Action) -> EnvResponse:
        self.actions.append(action)
        done = False
        if action.name == RESPOND:
            observation = self.user.step(action.kwargs["content"])
            done = STOP_TOKEN in observation
        elif action.name in self.tools_map:
            try:
                observation = self.tools_map[action.name].invoke(self.data, **action.kwargs)
            except Exception as e:  # a tool refusing (bad id, wrong state, bad arguments) answers with the error
                observation = f"Error: {e}"
            done = action.name in self.terminate_tools
        else:
            observation = f"Unknown action {action.name}"
        info = EnvInfo(source="user" if action.name == RESPOND else action.name)
        reward = 0.0
        if done:
            info.reward_info = self.calculate_reward()
            reward = info.reward_info["reward"]
        return EnvResponse(observation=observation, reward=reward, done=done, info=info)

    def get_data_hash(self) -> str:
        return data_hash(self.data)

    def calculate_reward(self) -> dict[str, Any]:
        got = self.get_data_hash()
        agent_actions = list(self.actions)
        self.data = self.data_load_func()
        for a in self.task.actions:  # the gold replay, on a fresh database
            if a.name not in self.terminate_tools:
                try:
                    self.tools_map[a.name].invoke(self.data, **a.kwargs)
                except Exception:  # as in tau-bench, where a failing gold step only yields an error observation
                    pass
        gold = self.get_data_hash()
        said = [a.kwargs["content"].lower().replace(",", "") for a in agent_actions if a.name == RESPOND]
        outputs = {o: any(o.lower() in s for s in said) for o in self.task.outputs}
        r_actions, r_outputs = got == gold, all(outputs.values())
        return {"reward": float(r_actions and r_outputs), "r_actions": r_actions, "data_hash": got,
                "gt_data_hash": gold, "r_outputs": r_outputs, "outputs": outputs}


# ---- the user slot ------------------------------------------------------------------------
class UserRelay:
    """Sits in an environment's user slot: hands over the answer m1bench's user simulator already
    gave (put), when the environment asks for it (reset/step), exactly once."""

    def __init__(self) -> None:
        self.pending: str | None = None

    def put(self, text: str) -> None:
        self.pending = text

    def _take(self) -> str:
        if self.pending is None:
            raise RuntimeError("the environment asked its user for a message that the user simulator has not given")
        text, self.pending = self.pending, None
        return text

    def reset(self, instruction: str | None = None) -> str:
        return self._take()

    def step(self, content: str) -> str:
        return self._take()

    def get_total_cost(self) -> float:
        return 0.0


# ---- domains --------------------------------------------------------------------------------
@dataclass
class Domain:
    """What an episode needs of a domain: fresh environments, its action type, the user
    simulator's system prompt (tau-bench's own when it has one) and facts for the results."""

    name: str
    make_env: Callable[[], Any]
    make_action: Callable[[str, dict[str, Any]], Any]
    tasks: list[Any]
    wiki: str
    tools_info: list[dict[str, Any]]
    info: dict[str, Any]
    user_prompt: Callable[[str], str] | None = None


def _plain(x: Any) -> Any:
    if hasattr(x, "model_dump"):
        return x.model_dump()
    if is_dataclass(x) and not isinstance(x, type):
        return asdict(x)
    return x


def reward_info(info: Any) -> dict[str, Any]:
    """An env step's reward details as plain JSON (tau-bench: pydantic RewardResult; LocalEnv: dict)."""
    r = getattr(info, "reward_info", None)
    r = _plain(r) if r is not None else {}
    return json.loads(json.dumps(r, default=_plain))


def _facts(env: Any, source: str, version: str | None) -> dict[str, Any]:
    tasks = [_plain(t) for t in env.tasks]
    parts = {"tasks_hash": data_hash(tasks)[:16], "data_hash": data_hash(env.data)[:16],
             "wiki_hash": hashlib.sha256(env.wiki.encode()).hexdigest()[:16], "tools_hash": data_hash(env.tools_info)[:16]}
    return {"source": source, "revision": version, "rows": len(tasks), "content_hash": data_hash(parts)[:16], **parts,
            "tools": [t["function"]["name"] for t in env.tools_info]}


def _tau_bench_version() -> str | None:
    """Installed version, plus the commit when pip recorded one (installs from git do)."""
    try:
        dist = metadata.distribution("tau_bench")
    except metadata.PackageNotFoundError:
        return None
    commit = None
    try:
        commit = json.loads(dist.read_text("direct_url.json") or "{}").get("vcs_info", {}).get("commit_id")
    except (json.JSONDecodeError, OSError):
        pass
    return dist.version + (f"@{commit}" if commit else "")


def tau_bench_domain(env_name: str, task_split: str, suite: str, opts: dict[str, Any]) -> Domain:
    if opts.get("data"):
        raise DataError(f"suites.{suite}.data: {suite} runs tau_bench's own tasks; for a domain of your own use tau-custom")
    try:
        from tau_bench.envs import get_env
        from tau_bench.types import Action as TauAction
    except ImportError as e:
        raise DataError(f"{suite}: {INSTALL_HINT} ({e})") from None

    params = inspect.signature(get_env).parameters
    extra = {"task_index": 0} if "task_index" in params else {}  # else Env picks a random task index

    def make_env() -> Any:
        # "human": tau-bench's user class that needs no API; m1bench replaces it with a UserRelay.
        for _ in range(10):
            try:
                return get_env(env_name, user_strategy="human", user_model="none", task_split=task_split, **extra)
            except IndexError:  # early v1 (no task_index): Env.__init__ may draw an index one past the end
                if extra:
                    raise
        raise RuntimeError(f"tau_bench.get_env({env_name!r}) kept failing with IndexError")

    env = make_env()
    user_prompt = _tau_user_prompt()
    return Domain(name=env_name, make_env=make_env, make_action=lambda n, kw: TauAction(name=n, kwargs=kw),
                  tasks=list(env.tasks), wiki=env.wiki, tools_info=list(env.tools_info),
                  info={**_facts(env, f"tau_bench:{env_name}/{task_split}", _tau_bench_version()),
                        "user_prompt": "tau_bench" if user_prompt else "m1bench"},
                  user_prompt=user_prompt)


def _tau_user_prompt() -> Callable[[str], str] | None:
    """tau-bench's own user-simulator system prompt (LLMUserSimulationEnv.build_system_prompt), when present."""
    try:
        from tau_bench.envs.user import LLMUserSimulationEnv
        build = LLMUserSimulationEnv.build_system_prompt
        build(None, instruction="probe")  # uses no instance state in v1
    except Exception:
        return None
    return lambda instruction: build(None, instruction=instruction)


def local_domain(path: str) -> Domain:
    """A domain defined by a Python file exposing `make_env()` (a LocalEnv or another env with
    tau-bench's interface) and optionally NAME."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"{file}: no such domain file")
    spec = importlib.util.spec_from_file_location(f"m1bench_tau_domain_{hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:8]}", file)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise DataError(f"{file}: the domain module failed to import ({type(e).__name__}: {e})") from None
    if not callable(getattr(module, "make_env", None)):
        raise DataError(f"{file}: a domain file must define make_env()")
    env = module.make_env()
    for attr in ("tasks", "wiki", "tools_info", "reset", "step", "calculate_reward"):
        if not hasattr(env, attr):
            raise DataError(f"{file}: make_env() returned an environment without {attr!r}")
    return Domain(name=getattr(module, "NAME", file.stem), make_env=module.make_env, make_action=Action,
                  tasks=list(env.tasks), wiki=env.wiki, tools_info=list(env.tools_info),
                  info={**_facts(env, str(file.resolve()), getattr(module, "VERSION", None)), "user_prompt": "m1bench"})
