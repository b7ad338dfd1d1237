"""lm-evaluation-harness bridge: run lm-eval tasks (gpqa_diamond_cot_zeroshot, mmlu_pro,
minerva_math500, or custom YAML tasks over local files via `include_path`) against the same model,
through m1bench's client, with lm-eval's metrics folded into m1bench's results.

lm-eval drives: it builds the requests and scores them; every generation goes through the
runner's cache (records.jsonl), so an interrupted lm-eval run resumes like any other suite.
Chat endpoints give no log-probabilities, so only `generate_until` tasks are supported.
Requires the `lm-eval` extra (lm-eval==0.4.13).
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable

from m1bench.harness.core.types import Completion, Request, Sampling
from m1bench.suites import register
from m1bench.suites.base import Option, Suite
from m1bench.suites.source import content_hash

_CHAT_MARK = "\x00m1bench-chat:"  # apply_chat_template output: the messages, kept structured

# Sends requests through the runner (cache + records); a failed request comes back as an Exception.
Send = Callable[[list[tuple[str, Request]]], Awaitable[list[Completion | Exception]]]


def make_lm(send: Send, loop: asyncio.AbstractEventLoop, sampling: dict[str, Any], seed_of: Callable[[str], int]):
    """An lm-eval `LM` whose generations come from m1bench's client (called from lm-eval's thread)."""
    from lm_eval.api.model import LM

    class M1BenchLM(LM):
        @property
        def tokenizer_name(self) -> str:
            return "m1bench-chat"

        def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
            return _CHAT_MARK + json.dumps(chat_history)

        def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
            batch = []
            for inst in requests:
                context, gen = inst.args
                messages = (json.loads(context[len(_CHAT_MARK):]) if context.startswith(_CHAT_MARK)
                            else [{"role": "user", "content": context}])
                key = f"lm_eval/{inst.task_name}/{inst.doc_id}/{inst.idx}/{inst.repeats}"
                do_sample = gen.get("do_sample", True)
                until = gen.get("until") or []
                s = Sampling(max_tokens=int(gen.get("max_gen_toks", sampling["max_tokens"])),
                             temperature=float(gen.get("temperature", sampling["temperature"])) if do_sample else 0.0,
                             top_p=float(gen.get("top_p", sampling["top_p"])), top_k=sampling["top_k"],
                             seed=seed_of(key), stop=tuple([until] if isinstance(until, str) else until))
                batch.append((key, Request(messages=tuple(messages), sampling=s, key=key)))
            results = asyncio.run_coroutine_threadsafe(send(batch), loop).result()
            out = []
            for r in results:
                if isinstance(r, Exception):  # lm-eval has no error slot: scored as an empty answer, counted by us
                    out.append("")
                else:
                    out.append(r.text)
            return out

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            raise NotImplementedError("lm_eval suite: chat clients give no log-probabilities; use generate_until "
                                      "tasks (e.g. gpqa_diamond_cot_zeroshot, mmlu_pro, minerva_math500)")

        loglikelihood_rolling = loglikelihood

    return M1BenchLM()


def metric_name(task: str, metric: str, filt: str) -> str:
    return f"{task}/{metric}" + ("" if filt == "none" else f"[{filt}]")


def fold_results(raw: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]]]:
    """lm-eval's output -> (m1bench metrics, per-item values). The metrics come from
    {"results": {task: {"metric,filter": v, "metric_stderr,filter": se}}}; the per-item values
    (metric -> document id -> value, what the regression gate pairs) from its logged samples."""
    out = []
    for task, vals in raw.get("results", {}).items():
        n = raw.get("n-samples", {}).get(task, {}).get("effective")
        for key, value in vals.items():
            if "," not in key or "_stderr," in key or not isinstance(value, (int, float)):
                continue
            metric, filt = key.split(",", 1)
            se = vals.get(f"{metric}_stderr,{filt}")
            se = se if isinstance(se, (int, float)) else None
            out.append({"metric": metric_name(task, metric, filt), "value": float(value), "stderr": se,
                        "n_problems": n, "n_samples": n,
                        "ci95": [value - 1.96 * se, value + 1.96 * se] if se is not None else None})
    per_item: dict[str, dict[str, float]] = {}
    for task, examples in (raw.get("samples") or {}).items():
        for ex in examples:
            for metric in ex.get("metrics", []):
                value = ex.get(metric)
                if isinstance(value, (bool, int, float)):
                    per_item.setdefault(metric_name(task, metric, ex.get("filter", "none")), {})[str(ex["doc_id"])] = float(value)
    return out, per_item


def task_docs_hash(opts: dict[str, Any]) -> tuple[int, str]:
    """(documents, content hash) of the tasks' evaluation documents, each tagged with its task: what
    `compare` checks before pairing two lm-eval runs, as it does for m1bench's own suites."""
    from lm_eval.tasks import get_task_dict

    docs = []
    for name, task in sorted(_leaf_tasks(get_task_dict(list(opts["tasks"]), LMEvalTasks.task_manager(opts)))):
        docs.extend({"task": name, "doc": doc} for doc in task.eval_docs)
    return len(docs), content_hash(docs)


def _leaf_tasks(task_dict: dict) -> list[tuple[str, Any]]:
    """get_task_dict nests groups ({group: {task: Task}}); the tasks, by name."""
    out = []
    for key, value in task_dict.items():
        out.extend(_leaf_tasks(value) if isinstance(value, dict) else [(getattr(key, "group_name", key), value)])
    return out


@register
class LMEvalTasks(Suite):
    name = "lm_eval"
    version = "1"
    default_samples = 1
    external = True  # lm-eval plans and scores; the runner only serves its requests
    options = {
        "tasks": Option(list, [], "lm-eval task names"),
        "include_path": Option(str, None, "directory of custom task YAMLs"),
        "builtin_tasks": Option(bool, True, "also index lm-eval's built-in tasks (slow; off for custom-only runs)"),
        "num_fewshot": Option(int, None, "few-shot examples (task default when unset)"),
        "apply_chat_template": Option(bool, True, "send chat messages rather than one flat prompt"),
        "system_instruction": Option(str, None, "system message for every request"),
    }

    @property
    def grader(self) -> str:  # type: ignore[override]
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"lm-eval=={version('lm-eval')}"
        except PackageNotFoundError:
            return "lm-eval (not installed)"

    def load(self, opts: dict[str, Any]):
        if not opts.get("tasks"):
            raise ValueError("config key suites.lm_eval.tasks: name at least one lm-eval task")
        try:
            import lm_eval  # noqa: F401
        except ImportError:
            raise ImportError("suite lm_eval needs the lm-eval extra: pip install 'm1bench[lm-eval]'") from None
        rows, digest = task_docs_hash(opts)
        return [], {"source": "lm-eval", "tasks": opts["tasks"], "include_path": opts.get("include_path"),
                    "rows": rows, "content_hash": digest}

    @staticmethod
    def task_manager(opts: dict[str, Any]):
        from lm_eval.tasks import TaskManager

        return TaskManager(include_path=opts.get("include_path"), include_defaults=opts.get("builtin_tasks", True))

    def evaluate(self, lm: Any, opts: dict[str, Any], seed: int) -> dict[str, Any]:
        """Run lm-eval (blocking; call from a worker thread)."""
        import lm_eval

        tm = self.task_manager(opts)
        return lm_eval.simple_evaluate(
            model=lm, tasks=list(opts["tasks"]), num_fewshot=opts.get("num_fewshot"), limit=opts.get("limit"),
            task_manager=tm, apply_chat_template=opts["apply_chat_template"],
            system_instruction=opts.get("system_instruction"), log_samples=True, bootstrap_iters=1000,
            random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed,
        )
