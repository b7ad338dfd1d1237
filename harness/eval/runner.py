"""The resumable runner: plan (suite × problem × sample) requests, send the missing ones with
bounded concurrency, grade each answer as it arrives, append every finished record at once
(fsync'd) to records.jsonl, aggregate, write results.json beside the records. (The summary table
and the report of the run are the caller's: `m1bench run` writes them from the results and
`run_records()`.) Before the first request the endpoints are checked (harness/eval/preflight.py).
`run.deadline_s` bounds the whole run: what is unfinished then is cancelled, left unrecorded and
counted in `unfinished`, so the next run sends it.

Progress: bars on a terminal, with a line of the client's retries and endpoints down; elsewhere
(a CI log) one plain line every `run.progress_every_s` seconds.

Resume: records are keyed by request hash (model identity + messages + sampling incl. the
per-sample seed + sample key). A record with a completion is never re-sent; if its grade is
missing, failed or came from another grader version it is re-graded from the stored completion.
Records of failed requests (server error, timeout, …) are sent again on the next run.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from m1bench.harness.clients import make_client
from m1bench.harness.core.client import Client, RequestError
from m1bench.harness.core.records import Record, RecordStore
from m1bench.harness.core.secrets import Redactor
from m1bench.harness.core.types import Completion, Request, Score, sample_seed
from m1bench.harness.eval.compute import sample_compute, served_architecture
from m1bench.harness.eval.config import RunConfig
from m1bench.harness.eval.plan import Planned, plan_suite
from m1bench.harness.eval.preflight import check_endpoints
from m1bench.harness.eval.results import build_results, external_results, write_results
from m1bench.suites import get_suite
from m1bench.suites.base import Problem, Suite


class Runner:
    def __init__(self, cfg: RunConfig, client: Client | None = None, console: Console | None = None):
        self.cfg = cfg
        self.console = console or Console(stderr=True)
        self.client = client
        self.out_dir = cfg.output_dir
        self.suites: dict[str, Suite] = {name: get_suite(name) for name in cfg.suites}
        self.records: dict[str, Record] = {}  # hash -> latest record
        self.stats = defaultdict(lambda: {"sent": 0, "reused": 0, "regraded": 0, "secrets_redacted": 0})
        # what a record says never carries a secret of this process (or the endpoint's key)
        self.redactor = Redactor.from_environ(extra_names=(cfg.model.api_key_env,))
        self.external_results: dict[str, dict[str, Any]] = {}
        self.plans: dict[str, list[Planned]] = {}
        self._grade_slots = asyncio.Semaphore(4)
        self.unfinished = 0  # planned samples the deadline cut off
        self._side_loop: asyncio.AbstractEventLoop | None = None  # serves external suites' requests

    # ---- records -------------------------------------------------------------------------
    def _record(self, item: Planned, completion: Completion | None,
                score: Score | None, grade_error: str | None, error: RequestError | None, regraded: bool = False) -> None:
        rec: Record = {
            "hash": item.hash, "suite": item.suite, "suite_version": self.suites[item.suite].version,
            "problem_id": item.problem.id, "sample": item.sample, "model_id": self.client.model_id,
            "status": "error" if error else "ok", "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "request": item.request.to_dict(),
            "completion": completion.to_record(self.cfg.run["keep_token_times"]) if completion else None,
            "compute": sample_compute(completion, self.arch, self.tokenizer) if completion else None,
            "grader": self.suites[item.suite].grader,
            "score": None if score is None else score.to_record(),
            "grade_error": grade_error,
            "error": None if error is None else {"kind": error.kind, "message": error.message, "attempts": error.attempts},
        }
        if regraded:
            rec["regraded"] = True
        rec, redacted = self.redactor.scrub(rec)
        self.stats[item.suite]["secrets_redacted"] += redacted
        self.store.append(rec)
        self.records[item.hash] = rec

    async def _grade(self, item: Planned, completion: Completion) -> tuple[Score | None, str | None]:
        suite = self.suites[item.suite]
        opts = self.cfg.suites[item.suite]
        try:
            if suite.thread_safe_scoring:
                async with self._grade_slots:
                    return await asyncio.to_thread(suite.score, item.problem, completion, opts), None
            return suite.score(item.problem, completion, opts), None  # e.g. math-verify: SIGALRM timeouts, main thread only
        except Exception as e:  # a grading crash is an error of its own, not a wrong answer
            return None, f"{type(e).__name__}: {e}"

    # ---- the run -------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        t_start = time.perf_counter()
        problems, data_info = {}, {}
        for name, suite in self.suites.items():  # data errors surface before any request
            problems[name], data_info[name] = suite.load(self.cfg.suites[name])
        if self.client is None:
            self.client = make_client(self.cfg.model)
        self.arch = served_architecture(self.cfg.model, self.client.describe())
        self.tokenizer = getattr(getattr(self.client, "engine", None), "tokenizer", None)  # the reference engine's
        plans = {name: plan_suite(name, suite, problems[name], self.cfg.suites[name], self.cfg.sampling,
                                  self.cfg.run["seed"], self.client.model_id)
                 for name, suite in self.suites.items() if not suite.external}
        self.plans = plans
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, suite in self.suites.items():
            suite.work_dir = self.out_dir / name
        self.store = RecordStore(self.out_dir / "records.jsonl")
        if self.store.dropped_partial_line:
            self.console.print(f"[yellow]{self.store.path}: dropped a partial last line left by an interrupted run[/]")
        for rec in self.store.read():  # the latest record of each hash wins
            self.records[rec["hash"]] = rec
        probe = getattr(self.client, "probe", None)
        if probe is not None:
            try:
                warnings = check_endpoints(await probe(), self.cfg, plans)
            except Exception:
                await self.client.aclose()
                raise
            for warning in warnings:
                self.console.print(f"[yellow]warning:[/] {warning}")
        self.sem = asyncio.Semaphore(self.cfg.run["concurrency"])
        try:
            with Progress(TextColumn("{task.description:<16}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("[green]{task.fields[ok]} ok[/] [red]{task.fields[err]} err[/]"),
                          TimeElapsedColumn(), console=self.console, disable=not self.console.is_terminal) as self.progress:
                self.bars = {name: self.progress.add_task(name, total=len(plans.get(name, [])), ok=0, err=0)
                             for name in self.suites}
                ticker = asyncio.create_task(self._tick(t_start))
                try:
                    await self._serve_all([it for items in plans.values() for it in items])
                    for name, suite in self.suites.items():
                        if suite.external and not self.unfinished:
                            await self._run_external(name, suite, data_info[name])
                finally:
                    ticker.cancel()
        finally:
            self.store.close()
            await self.client.aclose()
            if self._side_loop is not None:
                self._side_loop.call_soon_threadsafe(self._side_loop.stop)
        results = build_results(self.cfg, self.suites, plans, problems, data_info, self.records, self.stats,
                                self.external_results, self.client.describe(), time.perf_counter() - t_start, self.arch)
        if self.unfinished:
            results["unfinished"] = {"deadline_s": self.cfg.run["deadline_s"], "samples": self.unfinished}
        write_results(self.out_dir / "results.json", results)
        return results

    async def _serve_all(self, items: list[Planned]) -> None:
        """Serve every planned item; at the run's deadline cancel what is left (it stays unrecorded)."""
        tasks = [asyncio.create_task(self._serve(it)) for it in items]
        if not tasks:
            return
        done, pending = await asyncio.wait(tasks, timeout=self.cfg.run["deadline_s"] or None)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self.unfinished = len(pending)
        for t in done:
            t.result()  # a harness bug surfaces, as it did before the deadline existed

    async def _tick(self, t_start: float) -> None:
        """Progress for where it goes: on a terminal the bars, plus a line above them whenever the
        client's status changes (retries, endpoints down); elsewhere (a CI log) a plain line every
        `run.progress_every_s` seconds."""
        status = getattr(self.client, "status", lambda: "")
        said = ""
        while True:
            await asyncio.sleep(min(self.cfg.run["progress_every_s"], 2.0) if self.console.is_terminal
                                else self.cfg.run["progress_every_s"])
            now = status()
            elapsed = f"[{time.perf_counter() - t_start:6.0f}s]"
            if not self.console.is_terminal:
                bars = ", ".join(f"{t.description} {t.completed:g}/{t.total:g} ({t.fields['err']} err)"
                                 for t in self.progress.tasks)
                self.console.print(f"{elapsed} {bars}" + (f"; {now}" if now else ""), highlight=False)
            elif now != said:
                self.console.print(f"{elapsed} {now or 'endpoints answering again'}", highlight=False)
            said = now

    def run_records(self) -> list[Record]:
        """The latest record of every planned sample, in plan order (what the run's report shows)."""
        return [self.records[it.hash] for items in self.plans.values() for it in items if it.hash in self.records]

    def _advance(self, item: Planned) -> None:
        rec = self.records[item.hash]
        good = rec["status"] == "ok" and rec["grade_error"] is None
        bar = self.bars[item.suite]
        f = self.progress.tasks[bar].fields
        self.progress.update(bar, advance=1, ok=f["ok"] + good, err=f["err"] + (not good))

    async def _serve(self, item: Planned) -> Record:
        """Reuse the finished record of this request, or send it; grade; record. Returns the record."""
        suite = self.suites[item.suite]
        rec = self.records.get(item.hash)
        if rec is not None and rec["status"] == "ok":
            self.stats[item.suite]["reused"] += 1
            # regrade: no score, another grader version, or a score recorded without its value
            if not suite.external and (rec["score"] is None or rec["grader"] != suite.grader
                                       or "value" not in rec["score"]):
                completion = Completion.from_record(rec["completion"])
                score, gerr = await self._grade(item, completion)
                self._record(item, completion, score, gerr, None, regraded=True)
                self.stats[item.suite]["regraded"] += 1
        else:
            async with self.sem:
                self.stats[item.suite]["sent"] += 1
                try:
                    completion = await self._complete(item)
                except Exception as e:  # recorded with its cause; the run goes on
                    err = e if isinstance(e, RequestError) else RequestError("internal", f"{type(e).__name__}: {e}")
                    self._record(item, None, None, None, err)
                    completion = None
            if completion is not None:
                score, gerr = (None, None) if suite.external else await self._grade(item, completion)
                self._record(item, completion, score, gerr, None)
        self._advance(item)
        return self.records[item.hash]

    async def _complete(self, item: Planned) -> Completion:
        suite = self.suites[item.suite]
        if suite.episodic:  # many requests, one record: resumed per episode
            return await suite.episode(item.problem, self.client, item.request, self.cfg.suites[item.suite])
        return await self.client.complete(item.request)

    async def _run_external(self, name: str, suite: Suite, info: dict[str, Any]) -> None:
        """A suite that plans and scores itself (lm-eval). Its evaluation runs here, in the main thread
        (lm-eval's and math-verify's grading timeouts are SIGALRM, which only the main thread gets),
        blocking this loop; its requests are served through _serve on a loop of their own in a worker
        thread, kept until the client is closed."""
        served: list[Planned] = []
        bar = self.bars[name]

        async def send(batch: list[tuple[str, Request]]) -> list[Completion | Exception]:
            items = [Planned(name, Problem(id=key, messages=list(req.messages), target=None), 0, req,
                             req.hash(self.client.model_id)) for key, req in batch]
            served.extend(items)
            self.progress.update(bar, total=len(served))
            recs = await asyncio.gather(*(self._serve(it) for it in items))
            return [Completion.from_record(r["completion"]) if r["status"] == "ok"
                    else RequestError(r["error"]["kind"], r["error"]["message"]) for r in recs]

        from m1bench.suites.lm_eval.suite import fold_results, make_lm

        if self._side_loop is None:
            self._side_loop = asyncio.new_event_loop()
            threading.Thread(target=self._side_loop.run_forever, name="m1bench-requests", daemon=True).start()
            self.sem = asyncio.Semaphore(self.cfg.run["concurrency"])  # the run loop's is bound to that loop
        opts = self.cfg.suites[name]
        seed = self.cfg.run["seed"]
        lm = make_lm(send, self._side_loop, self.cfg.sampling, lambda key: sample_seed(seed, name, key, 0))
        raw = suite.evaluate(lm, opts, seed)
        metrics, per_item = fold_results(raw or {})
        self.external_results[name] = external_results(suite, opts, served, self.records, info, metrics, per_item,
                                                       self.stats[name])
