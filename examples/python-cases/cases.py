#!/usr/bin/env python3
"""Case management as an external Plexus service in Python: `case`, with methods
`create`, `update`, `get`, `list` and `close`, its cases stored in the node's
DataStore (collection `cases`) through the same WebSocket it serves on.

Every call the node forwards to it, and every DataStore call it makes, goes through
the node's call path, so each write is in the audit trail (`audit.query`), under the
correlation id of the call it was made for (the service passes on the `plexus` ids
it receives), and the command language reaches it like any registered service:

    (case.create :case-id "C-1" :case-type "kyc" :client "ACME")
    (case.update :case-id "C-1" :details {:risk "low"} :note "documents received")
    (case.close :case-id "C-1" :resolution "approved")
    (case.list :state "closed")

Run it (the node's gateway listens on 127.0.0.1:7700 by default):

    pip install -r examples/python-cases/requirements.txt
    PLEXUS_URL=ws://127.0.0.1:7700/ws python3 examples/python-cases/cases.py
    plexus call case.create case-id=C-1 case-type=kyc client=ACME

Errors, each with its own code (docs/external-services.md): 4040 no such case,
4090 the case exists, 4091 the case is closed, 4092 it changed meanwhile (run
again); a DataStore error is passed on with its own code and data.

Environment: PLEXUS_URL (default ws://127.0.0.1:7700/ws), PLEXUS_TOKEN (scopes
`register:case` and `call:datastore.*` when the node has auth on), CASES_INSTANCE
(default cases-py-<pid>), CASES_COLLECTION (default `cases`), CASES_CALL_TIMEOUT
(seconds one DataStore call may take, default 10). Standard library plus
`websockets` only.
"""

import asyncio
import contextvars
import json
import os
import random
import sys

try:
    from websockets.asyncio.client import connect
except ImportError:  # pragma: no cover - told to the person running it
    sys.exit("cases.py needs the `websockets` package: pip install websockets==17.4")

URL = os.environ.get("PLEXUS_URL", "ws://127.0.0.1:7700/ws")
TOKEN = os.environ.get("PLEXUS_TOKEN")
INSTANCE = os.environ.get("CASES_INSTANCE", f"cases-py-{os.getpid()}")
COLLECTION = os.environ.get("CASES_COLLECTION", "cases")
CALL_TIMEOUT = float(os.environ.get("CASES_CALL_TIMEOUT", "10"))

NOT_FOUND, EXISTS, CLOSED, CHANGED = 4040, 4090, 4091, 4092

CASE_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"}
TEXT = {"type": "string", "maxLength": 1000}
DETAILS = {"type": "object", "maxProperties": 64}


def params(properties, required):
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


METHODS = [
    {"name": "create", "description": "Open a case (state `open`); 4090 when the id is taken.",
     "params": params({"case-id": CASE_ID, "case-type": {"type": "string", "enum": ["kyc", "aml", "fraud", "complaint"]},
                       "client": TEXT, "details": DETAILS}, ["case-id", "case-type"])},
    {"name": "update", "description": "Merge details into an open case and append a note; 4091 when closed.",
     "params": params({"case-id": CASE_ID, "details": DETAILS, "note": TEXT}, ["case-id"])},
    {"name": "get", "description": "One case; 4040 when there is none.", "idempotent": True,
     "params": params({"case-id": CASE_ID}, ["case-id"])},
    {"name": "list", "description": "Cases by id, filtered by state and type.", "idempotent": True,
     "params": params({"state": {"type": "string", "enum": ["open", "closed"]},
                       "case-type": {"type": "string"},
                       "limit": {"type": "integer", "minimum": 1, "maximum": 100}}, [])},
    {"name": "close", "description": "Close an open case with its resolution; 4091 when already closed.",
     "params": params({"case-id": CASE_ID, "resolution": TEXT}, ["case-id", "resolution"])},
]

DESCRIPTOR = {
    "name": "case",
    "service_type": "example",
    "version": "1.0.0",
    "instance": INSTANCE,
    "description": "Case management (Python) on the DataStore.",
    "methods": METHODS,
    "tags": ["example", "python"],
}


class Refused(Exception):
    """An error answer: its JSON-RPC error object."""

    def __init__(self, code, message, data=None):
        super().__init__(message)
        self.error = {"code": code, "message": message}
        if data is not None:
            self.error["data"] = data


def kind_of(refused):
    """The DataStore's kind of error (`version_conflict`, …) in a refusal, if any."""
    data = refused.error.get("data") or {}
    return data.get("kind") or (data.get("detail") or {}).get("kind")


# The conversation of the call being served: its `plexus` ids, passed on with every
# call made for it, so the audit trail shows those writes under the caller's
# correlation id. A context variable, so each concurrently served call keeps its own.
CONVERSATION = contextvars.ContextVar("conversation", default=None)


class Node:
    """Calls to the node over the socket the service is served on."""

    def __init__(self, ws):
        self.ws = ws
        self.pending = {}
        self.next_id = 0

    async def call(self, method, params):
        self.next_id += 1
        call_id = f"c-{self.next_id}"
        answer = asyncio.get_running_loop().create_future()
        self.pending[call_id] = answer
        try:
            request = {"jsonrpc": "2.0", "id": call_id, "method": method, "params": params}
            if CONVERSATION.get():
                request["plexus"] = CONVERSATION.get()
            await self.ws.send(json.dumps(request))
            message = await asyncio.wait_for(answer, CALL_TIMEOUT)
        except asyncio.TimeoutError:
            raise Refused(-32004, f"{method} did not answer within {CALL_TIMEOUT} s")
        finally:
            self.pending.pop(call_id, None)
        if "error" in message:
            e = message["error"]
            raise Refused(e.get("code", -32000), f"{method}: {e.get('message', '')}", e.get("data"))
        return message.get("result")

    def answered(self, message):
        """Completes the call `message` answers; whether there was one."""
        answer = self.pending.get(message.get("id"))
        if answer is None or answer.done():
            return False
        answer.set_result(message)
        return True


def view(stored):
    """A stored document as the service shows it."""
    doc = stored["doc"]
    return {"case-id": stored["id"], "case-type": doc["case_type"], "client": doc.get("client"),
            "state": doc["state"], "details": doc.get("details", {}), "notes": doc.get("notes", []),
            "resolution": doc.get("resolution"), "version": stored["version"]}


async def load(node, case_id):
    stored = await node.call("datastore.get", {"collection": COLLECTION, "id": case_id})
    if stored is None:
        raise Refused(NOT_FOUND, f"no case {case_id}", {"case-id": case_id})
    return stored


async def load_open(node, case_id):
    stored = await load(node, case_id)
    if stored["doc"]["state"] != "open":
        raise Refused(CLOSED, f"case {case_id} is closed", {"case-id": case_id})
    return stored


async def write(node, stored, doc):
    """Replaces a case's document if nobody changed it since it was read."""
    try:
        return await node.call("datastore.put", {"collection": COLLECTION, "id": stored["id"], "doc": doc,
                                                 "expected_version": stored["version"]})
    except Refused as e:
        if kind_of(e) == "version_conflict":
            raise Refused(CHANGED, f"case {stored['id']} changed meanwhile; run again", {"case-id": stored["id"]})
        raise


async def create(node, p):
    doc = {"case_type": p["case-type"], "state": "open", "details": p.get("details", {}), "notes": []}
    if "client" in p:
        doc["client"] = p["client"]
    try:
        await node.call("datastore.put", {"collection": COLLECTION, "id": p["case-id"], "doc": doc,
                                          "expected_version": 0})
    except Refused as e:
        if kind_of(e) in ("version_conflict", "already_exists"):
            raise Refused(EXISTS, f"case {p['case-id']} exists", {"case-id": p["case-id"]})
        raise
    return view(await load(node, p["case-id"]))


async def update(node, p):
    stored = await load_open(node, p["case-id"])
    doc = dict(stored["doc"])
    doc["details"] = {**doc.get("details", {}), **p.get("details", {})}
    if "note" in p:
        doc["notes"] = doc.get("notes", []) + [p["note"]]
    await write(node, stored, doc)
    return view(await load(node, p["case-id"]))


async def get(node, p):
    return view(await load(node, p["case-id"]))


async def list_cases(node, p):
    terms = []
    if "state" in p:
        terms.append({"field": "state", "eq": p["state"]})
    if "case-type" in p:
        terms.append({"field": "case_type", "eq": p["case-type"]})
    where = {"and": terms} if len(terms) > 1 else (terms[0] if terms else {})
    page = await node.call("datastore.query", {"collection": COLLECTION, "filter": where,
                                               "limit": p.get("limit", 100)})
    return {"cases": [view(d) for d in page["docs"]]}


async def close(node, p):
    stored = await load_open(node, p["case-id"])
    doc = dict(stored["doc"], state="closed", resolution=p["resolution"])
    await write(node, stored, doc)
    return view(await load(node, p["case-id"]))


HANDLERS = {"case.create": create, "case.update": update, "case.get": get, "case.list": list_cases,
            "case.close": close}


async def serve_one(ws, node, request):
    """Answers one call the node forwarded (its params already checked by the node)."""
    handler = HANDLERS.get(request.get("method"))
    meta = request.get("plexus") or {}
    CONVERSATION.set({k: meta[k] for k in ("correlation_id", "causation_id") if meta.get(k)} or None)
    try:
        if handler is None:
            raise Refused(-32601, f"case has no method {request.get('method')!r}")
        answer = {"result": await handler(node, request.get("params") or {})}
    except Refused as e:
        answer = {"error": e.error}
    except Exception as e:  # a bug here must not kill the session
        answer = {"error": {"code": -32603, "message": f"case failed: {e}"}}
    await ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], **answer}))


async def heartbeat(ws, every):
    n = 0
    while True:
        await asyncio.sleep(every)
        n += 1
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": f"hb-{n}", "method": "plexus.heartbeat", "params": {}}))


async def session(ws):
    """Makes the collection, registers, then serves until the socket closes."""
    node = Node(ws)
    tasks = set()
    reader = asyncio.create_task(read(ws, node, tasks))
    try:
        await node.call("datastore.create_collection", {"name": COLLECTION})
        registered = await node.call("plexus.register", {"descriptor": DESCRIPTOR})
        beats = asyncio.create_task(heartbeat(ws, registered["heartbeat_ttl_ms"] / 3000.0))
        print(f"registered {INSTANCE} at {URL} (collection {COLLECTION})", flush=True)
        try:
            await reader
        finally:
            beats.cancel()
    finally:
        reader.cancel()
        for t in tasks:
            t.cancel()


async def read(ws, node, tasks):
    async for raw in ws:
        message = json.loads(raw)
        if "method" in message and "id" in message:
            task = asyncio.create_task(serve_one(ws, node, message))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        elif not node.answered(message) and "error" in message:
            print(f"node error: {message['error']}", file=sys.stderr, flush=True)


async def main():
    headers = {"Authorization": f"Bearer {TOKEN}"} if TOKEN else None
    backoff = 0.1
    while True:
        try:
            async with connect(URL, additional_headers=headers) as ws:
                backoff = 0.1
                await session(ws)
        except (OSError, EOFError) as e:
            print(f"connection failed: {e}", file=sys.stderr, flush=True)
        except Exception as e:  # the socket closed or the node refused us
            print(f"session ended: {e}", file=sys.stderr, flush=True)
        await asyncio.sleep(backoff * (0.5 + random.random()))
        backoff = min(backoff * 2, 5.0)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
