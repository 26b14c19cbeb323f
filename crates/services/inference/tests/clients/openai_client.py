"""The official `openai` Python package as a client of Plexus's OpenAI-compatible
endpoint. Run by tests/inference/http.rs with PLEXUS_BASE_URL (…/v1), PLEXUS_TOKEN
(scopes call:inference.*) and PLEXUS_OPS_TOKEN (scope ops only); prints one JSON
object with what it saw."""

import json
import os

import openai

base = os.environ["PLEXUS_BASE_URL"]
client = openai.OpenAI(base_url=base, api_key=os.environ["PLEXUS_TOKEN"], max_retries=0)
messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
out = {}

answer = client.chat.completions.create(model="chain", messages=messages, temperature=0.5)
out["answer"] = {
    "content": answer.choices[0].message.content,
    "usage": [answer.usage.prompt_tokens, answer.usage.completion_tokens],
    "plexus": (answer.model_extra or {}).get("plexus"),
}

text, usage = "", None
for chunk in client.chat.completions.create(
    model="chain", messages=messages, stream=True, stream_options={"include_usage": True}
):
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage:
        usage = [chunk.usage.prompt_tokens, chunk.usage.completion_tokens]
out["stream"] = {"content": text, "usage": usage}

out["models"] = sorted(m.id for m in client.models.list())

try:
    client.chat.completions.create(model="nope", messages=messages)
except openai.NotFoundError as e:
    out["unknown_model"] = e.status_code

text = ""
try:
    for chunk in client.chat.completions.create(model="broken", messages=messages, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    out["midstream"] = "completed"
except openai.APIError as e:
    out["midstream"] = {"error": type(e).__name__, "text": text}

ops = openai.OpenAI(base_url=base, api_key=os.environ["PLEXUS_OPS_TOKEN"], max_retries=0)
try:
    ops.chat.completions.create(model="chain", messages=messages)
except openai.PermissionDeniedError as e:
    out["forbidden"] = e.status_code

anonymous = openai.OpenAI(base_url=base, api_key="not-a-token", max_retries=0)
try:
    anonymous.models.list()
except openai.AuthenticationError as e:
    out["unauthenticated"] = e.status_code

print(json.dumps(out))
