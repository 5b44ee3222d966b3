#!/usr/bin/env python3
"""Talks to a running EdgeAI worker with the official `openai` package (Tests/openai-check.sh
starts the worker and runs this). Exits non-zero on the first failed check.

    python3 Benchmarks/openai-client.py --base-url http://127.0.0.1:8787/v1 --api-key KEY --model @cf/...
"""
import argparse
import json
import sys
import time

import openai
from openai import OpenAI


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--api-key", required=True)
    ap.add_argument("--model", required=True)
    args = ap.parse_args()

    client = OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=60)
    checks = 0

    def check(cond, what):
        nonlocal checks
        if not cond:
            print(f"FAIL: {what}", file=sys.stderr)
            sys.exit(1)
        checks += 1
        print(f"ok: {what}")

    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "List three colors."},
    ]

    # models.list
    models = client.models.list()
    ids = [m.id for m in models.data]
    check(args.model in ids, f"models.list contains {args.model} ({ids})")
    m = client.models.retrieve(args.model)
    check(m.id == args.model and m.object == "model", "models.retrieve")

    # chat, non-streaming
    t = time.time()
    r = client.chat.completions.create(model=args.model, messages=messages, max_tokens=12, temperature=0, seed=1)
    text = r.choices[0].message.content
    check(r.object == "chat.completion", "chat.completions.create returns a chat.completion")
    check(r.model == args.model, "model echoed")
    check(r.choices[0].message.role == "assistant" and isinstance(text, str) and len(text) > 0,
          f"assistant text {text!r} ({time.time() - t:.2f} s)")
    check(r.choices[0].finish_reason in ("stop", "length"), f"finish_reason {r.choices[0].finish_reason}")
    check(r.usage is not None and r.usage.completion_tokens == 12 and
          r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, f"usage {r.usage}")

    # chat, streaming (with include_usage)
    stream = client.chat.completions.create(model=args.model, messages=messages, max_tokens=12, temperature=0,
                                            stream=True, stream_options={"include_usage": True})
    pieces, finish, usage, n = [], None, None, 0
    for chunk in stream:
        n += 1
        check(chunk.object == "chat.completion.chunk", "chunk object") if n == 1 else None
        if chunk.choices:
            d = chunk.choices[0].delta
            if d.content:
                pieces.append(d.content)
            if chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        if chunk.usage:
            usage = chunk.usage
    streamed = "".join(pieces)
    check(streamed == text, f"streamed text equals the non-streamed text ({n} chunks)")
    check(finish in ("stop", "length"), f"stream finish_reason {finish}")
    check(usage is not None and usage.completion_tokens == 12, f"stream usage {usage}")

    # stop sequences
    r = client.chat.completions.create(model=args.model, messages=messages, max_tokens=12, temperature=0, stop=["Red"])
    check("Red" not in r.choices[0].message.content and r.choices[0].finish_reason == "stop",
          f"stop sequence: {r.choices[0].message.content!r}")

    # legacy completions
    c = client.completions.create(model=args.model, prompt="The capital of France is", max_tokens=4, temperature=0)
    check(c.object == "text_completion" and len(c.choices[0].text) > 0, f"completions.create {c.choices[0].text!r}")

    # AI Gateway cache headers through the client
    extra = {"cf-aig-cache-ttl": "60"}
    body = dict(model=args.model, messages=[{"role": "user", "content": f"Pick a number {time.time()}"}],
                max_tokens=6, temperature=1)
    a = client.chat.completions.with_raw_response.create(**body, extra_headers=extra)
    b = client.chat.completions.with_raw_response.create(**body, extra_headers=extra)
    check(a.headers.get("cf-aig-cache-status") == "MISS" and b.headers.get("cf-aig-cache-status") == "HIT",
          "cf-aig-cache-status MISS then HIT")
    check(a.parse().choices[0].message.content == b.parse().choices[0].message.content and a.parse().id == b.parse().id,
          "a cache hit returns the same completion")

    # tool calling: a required call, its arguments as JSON text, then the follow-up turn
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather in a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                             "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}]
    ask = [{"role": "user", "content": "What is the weather like in Paris today?"}]
    r = client.chat.completions.create(model=args.model, messages=ask, tools=tools, tool_choice="required", temperature=0, max_tokens=80)
    calls = r.choices[0].message.tool_calls or []
    check(r.choices[0].finish_reason == "tool_calls" and len(calls) == 1 and calls[0].type == "function"
          and calls[0].function.name == "get_weather", f"tools: one get_weather call ({r.choices[0].message})")
    arguments = json.loads(calls[0].function.arguments) if calls else {}
    check(isinstance(arguments.get("city"), str) and set(arguments) <= {"city", "unit"}, f"tool arguments {arguments}")
    follow = ask + [r.choices[0].message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": calls[0].id if calls else "x", "content": "21 C and sunny"}]
    f = client.chat.completions.create(model=args.model, messages=follow, tools=tools, temperature=0, max_tokens=30)
    check(f.choices[0].message.content is not None, f"follow-up turn answered: {f.choices[0].message.content!r}")
    deltas = [c for c in client.chat.completions.create(model=args.model, messages=ask, tools=tools, tool_choice="required",
                                                        temperature=0, max_tokens=80, stream=True)]
    streamed_calls = [tc for c in deltas if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    check(len(streamed_calls) == 1 and streamed_calls[0].function.name == "get_weather"
          and json.loads(streamed_calls[0].function.arguments) == arguments, "streamed tool call delta")

    # errors map to the client's exception classes
    try:
        client.chat.completions.create(model=args.model, messages=messages, n=2)
        check(False, "n=2 refused")
    except openai.BadRequestError as e:
        check(e.status_code == 400 and "'n'" in str(e), f"n=2 -> BadRequestError ({e.code})")
    try:
        client.chat.completions.create(model="@cf/nope/none", messages=messages)
        check(False, "unknown model refused")
    except openai.NotFoundError as e:
        check(e.status_code == 404 and e.code == "model_not_found", "unknown model -> NotFoundError")
    bad = OpenAI(base_url=args.base_url, api_key=args.api_key + "-wrong", max_retries=0)
    try:
        bad.models.list()
        check(False, "wrong key refused")
    except openai.AuthenticationError as e:
        check(e.status_code == 401 and e.code == "invalid_api_key", "wrong key -> AuthenticationError")

    print(f"openai {openai.__version__}: {checks} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
