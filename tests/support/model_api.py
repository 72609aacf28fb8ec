"""A scripted model API for the agent tests (issue "Real agents, end to end").

Real agents (Claude Code, Codex, Gemini CLI) take a model API base URL. This server, bound to
127.0.0.1 and bounded in requests and lifetime, speaks enough of three model APIs that an agent
calls one MCP tool and reports back:

- the Anthropic Messages API (`POST /v1/messages`, streaming or not) — Claude Code;
- the OpenAI Responses API (`POST /v1/responses`, streaming) — Codex;
- the Gemini API (`POST /v1beta/models/M:generateContent`, `:streamGenerateContent`) — Gemini CLI.

On a request that offers a tool whose name ends with `--tool` (agents prefix MCP tools with their
own server names) it answers a call of that tool with `--args`; on a request carrying that call's
result it logs the result and answers plain text (or, with `--rounds N`, calls the tool again
until it has seen N results; before round k > 1 it waits for the file `LOG.go<k>` so a test can
act between two turns). Anything else is answered minimally. Every request is logged, one JSON
object a line, to `--log`; a result the model saw is logged as `{"event": "result", ...}`.

It prints `listening: http://127.0.0.1:PORT` once it is ready.
"""

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOCK = threading.Lock()
COUNT = [0]
START = time.time()


def log(record):
    record = dict(record, t=round(time.time() - START, 3))
    with LOCK:
        with open(ARGS.log, "a") as f:
            f.write(json.dumps(record) + "\n")


def target_in(names):
    for name in names:
        if name.endswith(ARGS.tool):
            return name
    return None


def text_of(content):
    """A tool result's content as text, whatever shape the API gives it."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(text_of(c) for c in content)
    if isinstance(content, dict):
        for key in ("text", "output", "content", "result", "response"):
            if key in content:
                return text_of(content[key])
        return json.dumps(content)
    return str(content)


def call_args(round_no):
    return ARGS.per_round[min(round_no, len(ARGS.per_round)) - 1]


def wait_gate(round_no):
    """Before round k > 1: wait (bounded) until the test says go."""
    if round_no <= 1:
        return
    gate = f"{ARGS.log}.go{round_no}"
    log({"event": "waiting", "round": round_no})
    end = time.monotonic() + 120
    while not os.path.exists(gate) and time.monotonic() < end:
        time.sleep(0.05)


# Per API: (offered tool names, tool results seen [(id, text, is_error)]) from the request, and
# the answer of a tool call or of text.


def anthropic_view(body):
    names = [t.get("name", "") for t in body.get("tools") or [] if isinstance(t, dict)]
    results = []
    for m in body.get("messages") or []:
        content = m.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if (
                isinstance(block, dict)
                and block.get("type") == "tool_result"
                and str(block.get("tool_use_id", "")).startswith("toolu_mcpv_")
            ):
                text = text_of(block.get("content"))
                results.append((block["tool_use_id"], text, bool(block.get("is_error"))))
    return names, results


def openai_tools(tools, into):
    """Tool names a Responses request (or a tool search's output) offers: (namespace, name)."""
    for t in tools or []:
        if not isinstance(t, dict):
            continue
        inner = t.get("tools")
        if isinstance(inner, list):
            # A namespace of tools (Codex groups each MCP server's tools under one).
            for i in inner:
                if isinstance(i, dict) and i.get("name"):
                    into.append((t.get("name"), i["name"]))
        elif t.get("name"):
            into.append((None, t["name"]))
        elif t.get("type"):
            into.append((None, t["type"]))


def openai_view(body):
    offered = []
    openai_tools(body.get("tools"), offered)
    searched = False
    results = []
    for item in body.get("input") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "tool_search_output":
            searched = True
            openai_tools(item.get("tools"), offered)
        if item.get("type") == "function_call_output" and str(item.get("call_id", "")).startswith(
            "call_mcpv_"
        ):
            results.append((item["call_id"], text_of(item.get("output")), False))
    return offered, searched, results


def gemini_view(body):
    names = []
    for t in body.get("tools") or []:
        for d in (t or {}).get("functionDeclarations") or []:
            names.append(d.get("name", ""))
    results = []
    for c in body.get("contents") or []:
        for part in (c or {}).get("parts") or []:
            fr = (part or {}).get("functionResponse")
            ours = fr and str(fr.get("id", "mcpv")).startswith("mcpv")
            if ours and target_in([fr.get("name", "")]):
                response = fr.get("response") or {}
                results.append((fr.get("id", ""), text_of(response), "error" in response))
    return names, results


def instance_of(schema):
    """A minimal value of a JSON schema (an agent's own structured side requests, e.g. Gemini
    CLI's model router, want JSON of a given shape)."""
    if not isinstance(schema, dict):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "object")).lower()
    if isinstance(schema.get("type"), list):
        kind = str(schema["type"][0]).lower()
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: instance_of(v) for k, v in props.items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def body(self):
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return {}

    def send_json(self, value, status=200):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_sse(self, events):
        """events: [(event name or None, data dict)]"""
        chunks = []
        for name, data in events:
            head = f"event: {name}\n" if name else ""
            chunks.append(f"{head}data: {json.dumps(data)}\n\n")
        data = "".join(chunks).encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def counted(self):
        with LOCK:
            COUNT[0] += 1
            over = COUNT[0] > ARGS.max_requests
        if over:
            self.send_json({"error": {"message": "scripted model: request limit reached"}}, 429)
        return not over

    def do_GET(self):
        if not self.counted():
            return
        log({"method": "GET", "path": self.path})
        # Model lists and the like: nothing here, minimally.
        self.send_json({"data": [], "models": [], "object": "list"})

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self):
        if not self.counted():
            return
        body = self.body()
        if ARGS.dump:
            with LOCK, open(ARGS.dump, "a") as f:
                f.write(json.dumps({"path": self.path, "body": body}) + "\n")
        path = self.path.split("?")[0]
        if path.endswith("/v1/messages"):
            self.anthropic(body)
        elif path.endswith("/responses"):
            self.openai(body)
        elif ":generateContent" in path or ":streamGenerateContent" in path:
            self.gemini(body, ":streamGenerateContent" in path)
        elif path.endswith("/count_tokens") or ":countTokens" in path:
            log({"method": "POST", "path": self.path, "api": "count"})
            self.send_json({"input_tokens": 1, "totalTokens": 1})
        else:
            log({"method": "POST", "path": self.path, "api": None})
            self.send_json({})

    def decide(self, api, names, results):
        """What to answer: ("call", name, round) or ("text", text)."""
        for rid, text, is_error in results:
            log({"event": "result", "api": api, "id": rid, "text": text, "is_error": is_error})
        target = target_in(names)
        seen = len(results)
        if target and seen < ARGS.rounds:
            wait_gate(seen + 1)
            return ("call", target, seen + 1)
        if results:
            return ("text", "The tool answered: " + results[-1][1])
        return ("text", "ok")

    def anthropic(self, body):
        names, results = anthropic_view(body)
        decision = self.decide("anthropic", names, results)
        log({"api": "anthropic", "path": self.path, "tools": names, "answer": decision[0],
             "stream": bool(body.get("stream"))})
        model = body.get("model", "scripted")
        usage = {"input_tokens": 1, "output_tokens": 1}
        if decision[0] == "call":
            block = {"type": "tool_use", "id": f"toolu_mcpv_{decision[2]}", "name": decision[1],
                     "input": {}}
            stop = "tool_use"
            partial = json.dumps(call_args(decision[2]))
            delta = {"type": "input_json_delta", "partial_json": partial}
        else:
            block = {"type": "text", "text": ""}
            stop = "end_turn"
            delta = {"type": "text_delta", "text": decision[1]}
        if not body.get("stream"):
            full = dict(block)
            if decision[0] == "call":
                full["input"] = call_args(decision[2])
            else:
                full["text"] = decision[1]
            self.send_json({"id": "msg_mcpv", "type": "message", "role": "assistant",
                            "model": model, "content": [full], "stop_reason": stop,
                            "stop_sequence": None, "usage": usage})
            return
        self.send_sse([
            ("message_start", {"type": "message_start", "message": {
                "id": "msg_mcpv", "type": "message", "role": "assistant", "model": model,
                "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}}),
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": block}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": stop, "stop_sequence": None},
                               "usage": {"output_tokens": 1}}),
            ("message_stop", {"type": "message_stop"}),
        ])

    def openai(self, body):
        offered, searched, results = openai_view(body)
        names = [n for _, n in offered]
        namespace = {n: ns for ns, n in offered}
        decision = self.decide("openai", names, results)
        if decision[0] == "text" and not searched and not results and "tool_search" in names:
            # Codex defers MCP tools behind its client-run tool search: search first.
            decision = ("search",)
        log({"api": "openai", "path": self.path, "tools": names, "answer": decision[0]})
        if decision[0] == "search":
            query = ARGS.query or ARGS.tool.split("__")[-1].replace("_", " ").replace("-", " ")
            item = {"type": "tool_search_call", "id": "tsc_mcpv", "call_id": "call_search_mcpv",
                    "execution": "client", "status": "completed",
                    "arguments": {"query": query}}
        elif decision[0] == "call":
            item = {"type": "function_call", "id": f"fc_mcpv_{decision[2]}",
                    "call_id": f"call_mcpv_{decision[2]}", "name": decision[1],
                    "arguments": json.dumps(call_args(decision[2])), "status": "completed"}
            if namespace.get(decision[1]):
                item["namespace"] = namespace[decision[1]]
        else:
            item = {"type": "message", "id": "msg_mcpv", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": decision[1], "annotations": []}]}
        response = {"id": "resp_mcpv", "object": "response", "status": "completed",
                    "model": body.get("model", "scripted"), "output": [item],
                    "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2,
                              "input_tokens_details": {"cached_tokens": 0},
                              "output_tokens_details": {"reasoning_tokens": 0}}}
        if not body.get("stream"):
            self.send_json(response)
            return
        created = dict(response, status="in_progress", output=[])
        self.send_sse([
            ("response.created", {"type": "response.created", "response": created}),
            ("response.output_item.added", {"type": "response.output_item.added",
                                            "output_index": 0, "item": item}),
            ("response.output_item.done", {"type": "response.output_item.done",
                                           "output_index": 0, "item": item}),
            ("response.completed", {"type": "response.completed", "response": response}),
        ])

    def gemini(self, body, stream):
        names, results = gemini_view(body)
        decision = self.decide("gemini", names, results)
        log({"api": "gemini", "path": self.path, "tools": names, "answer": decision[0],
             "stream": stream})
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        if schema and decision[0] == "text":
            part = {"text": json.dumps(instance_of(schema))}
        elif decision[0] == "call":
            part = {"functionCall": {"id": f"mcpv_{decision[2]}", "name": decision[1],
                                     "args": call_args(decision[2])}}
        else:
            part = {"text": decision[1]}
        answer = {"candidates": [{"content": {"role": "model", "parts": [part]},
                                  "finishReason": "STOP", "index": 0}],
                  "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1,
                                    "totalTokenCount": 2},
                  "modelVersion": "scripted"}
        if stream:
            self.send_sse([(None, answer)])
        else:
            self.send_json(answer)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--tool", required=True, help="the tool's name ends with this")
    p.add_argument("--args", default="{}",
                   help="the call's arguments, JSON; a list: those of each round")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--query", help="what to search for where the agent defers its tools (Codex)")
    p.add_argument("--log", required=True)
    p.add_argument("--max-requests", type=int, default=200)
    p.add_argument("--lifetime", type=float, default=300)
    p.add_argument("--dump", help="also write every request's whole body here")
    ARGS = p.parse_args()
    ARGS.per_round = json.loads(ARGS.args)
    if not isinstance(ARGS.per_round, list):
        ARGS.per_round = [ARGS.per_round]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Timer(ARGS.lifetime, lambda: os._exit(0)).start()
    print(f"listening: http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
