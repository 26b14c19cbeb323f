#!/usr/bin/env python3
"""A job target in another process, for the jobs fault tests (serve/jobs.rs).

It serves `work.run {tag, hold?, fail?}` (not idempotent) over a node's `/ws`, and
prints one JSON line on stdout per call it receives, before it answers:

    {"event": "call", "instance": …, "job": "7", "tag": "h0", "attempt": "1"}

`job` and `attempt` are the call's `plexus-job-id` and `plexus-job-attempt`
headers (null when missing). A call with `hold` never answers on its first attempt
(the test kills something meanwhile); one with `fail` always answers error 1001.

The node's WebSocket URL is read from the file named by WORKER_URL_FILE each time
it connects, so a test can point it at a restarted node; it reconnects every 50 ms
and prints {"event": "registered", "instance": …, "url": …} once registered.
WORKER_INSTANCE names the instance. Standard library plus `websockets`.
"""

import asyncio
import json
import os
import sys

from websockets.asyncio.client import connect

URL_FILE = os.environ["WORKER_URL_FILE"]
INSTANCE = os.environ["WORKER_INSTANCE"]

PARAMS = {
    "type": "object",
    "properties": {
        "tag": {"type": "string"},
        "hold": {"type": "boolean"},
        "fail": {"type": "boolean"},
    },
    "required": ["tag"],
    "additionalProperties": False,
}

DESCRIPTOR = {
    "name": "work",
    "service_type": "test",
    "version": "1.0.0",
    "instance": INSTANCE,
    "description": "A job target that records its calls.",
    "methods": [
        {"name": "run", "description": "Record the call; hold or fail when asked.",
         "params": PARAMS, "idempotent": False},
    ],
    "tags": ["test"],
}


def say(line):
    print(json.dumps(line), flush=True)


async def serve(ws, request):
    params = request.get("params") or {}
    headers = (request.get("plexus") or {}).get("headers") or {}
    attempt = headers.get("plexus-job-attempt")
    say({"event": "call", "instance": INSTANCE, "job": headers.get("plexus-job-id"),
         "tag": params.get("tag"), "attempt": attempt})
    if params.get("hold") and attempt in (None, "1"):
        await asyncio.Future()  # never answers; the test kills something
    if params.get("fail"):
        error = {"code": 1001, "message": f"{params.get('tag')} fails on purpose"}
        answer = {"jsonrpc": "2.0", "id": request["id"], "error": error}
    else:
        result = {"tag": params.get("tag"), "attempt": attempt, "instance": INSTANCE}
        answer = {"jsonrpc": "2.0", "id": request["id"], "result": result}
    await ws.send(json.dumps(answer))


async def heartbeat(ws, every):
    while True:
        await asyncio.sleep(every)
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": "hb", "method": "plexus.heartbeat",
                                  "params": {}}))


async def session(ws, url):
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": "register", "method": "plexus.register",
                              "params": {"descriptor": DESCRIPTOR}}))
    tasks = set()
    try:
        async for raw in ws:
            message = json.loads(raw)
            if "method" in message and "id" in message:
                task = asyncio.create_task(serve(ws, message))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            elif message.get("id") == "register":
                if "error" in message:
                    raise RuntimeError(f"registration refused: {message['error']}")
                every = message["result"]["heartbeat_ttl_ms"] / 3000.0
                beats = asyncio.create_task(heartbeat(ws, every))
                tasks.add(beats)
                say({"event": "registered", "instance": INSTANCE, "url": url})
    finally:
        for task in tasks:
            task.cancel()


async def main():
    while True:
        try:
            with open(URL_FILE) as f:
                url = f.read().strip()
            async with connect(url) as ws:
                await session(ws, url)
        except Exception as e:  # no node yet, or it went away: try again
            print(f"session ended: {e}", file=sys.stderr, flush=True)
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(main())
