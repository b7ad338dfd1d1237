"""m1bench's OpenAI-compatible HTTP server on the reference engine (FastAPI).

Routes: GET /health, GET /v1/models, POST /v1/chat/completions, POST /v1/completions; streaming
(SSE) and not, `n` samples, temperature/top_p/top_k/seed/max_tokens/stop, usage counts. Chat requests
are rendered with the checkpoint's M1 chat template (tools included); chat output is split into
`reasoning_content` (<think>…</think>), `content` and `tool_calls` (<tool_calls> blocks) by the M1
output parser, the same way for streamed and whole responses. Concurrent requests share the
engine's running batch.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from m1bench.harness.core.m1_output import M1OutputParser, ParsedDelta
from m1bench.harness.engine.batching import Engine, EngineRequest, TextEvent
from m1bench.harness.serve.protocol import ChatRequest, CompletionRequest, error_body, new_id, now, usage
from m1bench.model.generate import SamplingParams


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param


def prepare_messages(messages: list[dict]) -> list[dict]:
    """OpenAI messages -> what the M1 template reads: `developer` is a system message, and a tool
    result gets the name of the call it answers (OpenAI sends only `tool_call_id`)."""
    names = {c.get("id"): c.get("function", {}).get("name") for m in messages for c in m.get("tool_calls") or []}
    out = []
    for m in messages:
        m = dict(m)
        if m["role"] == "developer":
            m["role"] = "system"
        if m["role"] == "tool" and not m.get("name"):
            m["name"] = names.get(m.get("tool_call_id")) or "tool"
        out.append(m)
    return out


class EmbeddedServer:
    def __init__(self, engine: Engine, tokenizer, served_model_name: str, max_model_len: int):
        self.engine, self.tok = engine, tokenizer
        self.name, self.max_model_len = served_model_name, max_model_len

    # ---- shared plumbing --------------------------------------------------------------------
    def _check_model(self, model: str | None) -> None:
        if model is not None and model != self.name:
            raise ApiError(404, f"model '{model}' does not exist; this server serves '{self.name}'",
                           "not_found_error", "model")

    def _params(self, req, prompt_len: int) -> list[SamplingParams]:
        room = self.max_model_len - prompt_len
        if room < 1:
            raise ApiError(400, f"the prompt has {prompt_len} tokens; max model length is {self.max_model_len}",
                           param="messages")
        limit = req.limit or room
        if limit > room:
            raise ApiError(400, f"max_tokens ({limit}) + prompt ({prompt_len} tokens) exceeds the max model "
                                f"length {self.max_model_len}", param="max_tokens")
        return [SamplingParams(max_new_tokens=limit, temperature=req.temperature, top_p=req.top_p, top_k=req.top_k,
                               seed=req.seed, stop=tuple(req.stop or ())) for _ in range(req.n)]

    @staticmethod
    async def _events(request: EngineRequest, queue: asyncio.Queue, n: int,
                      http: Request | None) -> AsyncIterator[TextEvent]:
        """The request's events until all n samples finished; cancels it if the client goes away."""
        finished = 0
        try:
            while finished < n:
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=1.0)
                except asyncio.TimeoutError:
                    if http is not None and await http.is_disconnected():
                        return
                    continue
                if event.finish_reason and event.finish_reason.startswith("error:"):
                    raise ApiError(500, f"the engine failed: {event.finish_reason[7:]}", "server_error")
                finished += event.finish_reason is not None
                yield event
        finally:
            request.cancelled.set()  # no-op once finished; stops generation for a disconnected client

    # ---- chat -------------------------------------------------------------------------------
    def _chat_prompt(self, req: ChatRequest) -> list[int]:
        tools = req.tools if req.tools and req.tool_choice != "none" else None
        try:
            text = self.tok.render_chat(prepare_messages(req.messages), tools=tools, add_generation_prompt=True)
        except Exception as e:  # a message shape the template cannot render
            raise ApiError(400, f"cannot render the messages with the chat template: {e}", param="messages") from None
        return self.tok.encode(text)

    async def chat(self, req: ChatRequest, http: Request):
        self._check_model(req.model)
        prompt_ids = self._chat_prompt(req)
        params = self._params(req, len(prompt_ids))
        request, queue = self.engine.submit_async(prompt_ids, params, req.routing_stats)
        rid, created = new_id("chatcmpl"), now()
        if req.stream:
            return self._sse(self._chat_stream(req, request, queue, http, rid, created, len(prompt_ids)))
        texts, finish, tokens = [""] * req.n, [None] * req.n, [0] * req.n
        async for e in self._events(request, queue, req.n, http):
            texts[e.index] += e.text
            if e.finish_reason:
                finish[e.index], tokens[e.index] = e.finish_reason, e.completion_tokens
        choices = []
        for i, text in enumerate(texts):
            parser = M1OutputParser()
            parsed = parser.feed(text)
            parsed.extend(parser.finish())
            message = {"role": "assistant", "content": parsed.content or None}
            if parsed.reasoning:
                message["reasoning_content"] = parsed.reasoning
            if parsed.tool_calls:
                message["tool_calls"] = [c.to_openai() for c in parsed.tool_calls]
            choices.append({"index": i, "message": message, "logprobs": None,
                            "finish_reason": _finish(finish[i], parsed.tool_calls)})
        return {"id": rid, "object": "chat.completion", "created": created, "model": self.name, "choices": choices,
                "usage": usage(len(prompt_ids), sum(tokens)), **_routing(request)}

    async def _chat_stream(self, req, request, queue, http, rid, created, prompt_tokens) -> AsyncIterator[dict]:
        def chunk(index: int, delta: dict, finish: str | None = None) -> dict:
            return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": self.name,
                    "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]}

        parsers = [M1OutputParser() for _ in range(req.n)]
        called = [False] * req.n
        completion_tokens = 0
        for i in range(req.n):
            yield chunk(i, {"role": "assistant", "content": ""})
        async for e in self._events(request, queue, req.n, http):
            parsed = parsers[e.index].feed(e.text)
            if e.finish_reason:
                parsed.extend(parsers[e.index].finish())
            called[e.index] |= bool(parsed.tool_calls)
            if parsed:
                yield chunk(e.index, _delta(parsed, parsers[e.index]))
            if e.finish_reason:
                completion_tokens += e.completion_tokens
                yield chunk(e.index, {}, _finish(e.finish_reason, called[e.index]))
        if req.include_usage or req.routing_stats:
            last = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": self.name,
                    "choices": [], **_routing(request)}
            yield last | ({"usage": usage(prompt_tokens, completion_tokens)} if req.include_usage else {})

    # ---- completions ------------------------------------------------------------------------
    async def completions(self, req: CompletionRequest, http: Request):
        self._check_model(req.model)
        prompts = [p if isinstance(p, list) else self.tok.encode(p) for p in req.prompts()]
        if any(not p for p in prompts):
            raise ApiError(400, "a prompt is empty", param="prompt")
        if any(t < 0 or t >= self.tok.vocab_size for p in prompts for t in p if isinstance(t, int)):
            raise ApiError(400, f"prompt token ids must be in [0, {self.tok.vocab_size})", param="prompt")
        started = [self.engine.submit_async(p, self._params(req, len(p))) for p in prompts]
        rid, created = new_id("cmpl"), now()
        prompt_tokens = sum(len(p) for p in prompts)

        async def merged() -> AsyncIterator[tuple[int, TextEvent]]:
            """Events of all prompts as they come; choice index = prompt index * n + sample index."""
            out: asyncio.Queue = asyncio.Queue()

            async def pump(k, request, queue):
                try:
                    async for e in self._events(request, queue, req.n, http):
                        await out.put((k * req.n + e.index, e))
                except ApiError as err:
                    await out.put((k, err))
                await out.put((k, None))

            tasks = [asyncio.create_task(pump(k, r, q)) for k, (r, q) in enumerate(started)]
            try:
                done = 0
                while done < len(tasks):
                    index, e = await out.get()
                    if isinstance(e, ApiError):
                        raise e
                    if e is None:
                        done += 1
                        continue
                    yield index, e
            finally:
                for t in tasks:
                    t.cancel()
                for request, _ in started:
                    request.cancelled.set()

        def choice(index: int, text: str, finish: str | None) -> dict:
            return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}

        if req.stream:
            async def stream():
                completion_tokens = 0
                async for index, e in merged():
                    completion_tokens += e.completion_tokens
                    yield {"id": rid, "object": "text_completion", "created": created, "model": self.name,
                           "choices": [choice(index, e.text, e.finish_reason)]}
                if req.include_usage:
                    yield {"id": rid, "object": "text_completion", "created": created, "model": self.name,
                           "choices": [], "usage": usage(prompt_tokens, completion_tokens)}
            return self._sse(stream())
        total = len(prompts) * req.n
        texts, finish, tokens = [""] * total, [None] * total, 0
        async for index, e in merged():
            texts[index] += e.text
            if e.finish_reason:
                finish[index], tokens = e.finish_reason, tokens + e.completion_tokens
        return {"id": rid, "object": "text_completion", "created": created, "model": self.name,
                "choices": [choice(i, t, f) for i, (t, f) in enumerate(zip(texts, finish))],
                "usage": usage(prompt_tokens, tokens)}

    # ---- SSE --------------------------------------------------------------------------------
    @staticmethod
    def _sse(chunks: AsyncIterator[dict]) -> StreamingResponse:
        async def body():
            try:
                async for c in chunks:
                    yield f"data: {json.dumps(c, ensure_ascii=False)}\n\n"
            except ApiError as e:  # headers are sent: report in-band, as OpenAI-compatible servers do
                yield f"data: {json.dumps(error_body(e.message, e.kind, e.param, e.status))}\n\n"
            yield "data: [DONE]\n\n"
        return StreamingResponse(body(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _delta(parsed: ParsedDelta, parser: M1OutputParser) -> dict:
    delta: dict[str, Any] = {}
    if parsed.reasoning:
        delta["reasoning_content"] = parsed.reasoning
    if parsed.content:
        delta["content"] = parsed.content
    if parsed.tool_calls:
        first = parser.num_tool_calls - len(parsed.tool_calls)
        delta["tool_calls"] = [{"index": first + k, **c.to_openai()} for k, c in enumerate(parsed.tool_calls)]
    return delta


def _routing(request: EngineRequest) -> dict:
    """The m1bench `routing_stats` response field, when the request asked for it."""
    return {"routing_stats": request.routing.summary()} if request.routing is not None else {}


def _finish(reason: str | None, called) -> str:
    return "tool_calls" if called and reason == "stop" else (reason or "stop")


def create_app(server: EmbeddedServer) -> FastAPI:
    app = FastAPI(title="m1bench embedded server", docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    async def _api_error(_, e: ApiError):
        return JSONResponse(error_body(e.message, e.kind, e.param, e.status), status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_, e: RequestValidationError):
        first = e.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse(error_body(f"{where}: {first.get('msg')}" if where else first.get("msg"), param=where or None),
                            status_code=400)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": server.name, "object": "model", "created": now(),
                                            "owned_by": "m1bench", "max_model_len": server.max_model_len}]}

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest, http: Request):
        return await server.chat(req, http)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, http: Request):
        return await server.completions(req, http)

    return app
