#!/usr/bin/env node
// An external Plexus service in Node.js: `shout`, with methods `say` and `upper`.
//
// It connects to a node's WebSocket (`/ws`), registers its descriptor with
// `plexus.register`, sends `plexus.heartbeat` three times per heartbeat TTL, answers
// the calls the node forwards to it (`{"method": "shout.say", "id": "n-7", ...}`) with
// JSON-RPC responses, and reconnects with exponential backoff when the socket drops,
// registering again under the same instance id.
//
// Run it (the node's gateway listens on 127.0.0.1:7700 by default):
//
//   npm ci --prefix examples/node-echo
//   PLEXUS_URL=ws://127.0.0.1:7700/ws node examples/node-echo/echo.js
//   plexus call shout.upper text=hi   # or: --params '{"text": "hi"}'
//
// The protocol it speaks is docs/external-services.md.
//
// Environment: PLEXUS_URL (default ws://127.0.0.1:7700/ws), PLEXUS_TOKEN (a bearer
// token with scope `register:shout`, when the node has auth on), SHOUT_INSTANCE
// (default shout-js-<pid>).
'use strict';

let WebSocket;
try {
  WebSocket = require('ws');
} catch (e) {
  console.error('echo.js needs the `ws` package: npm ci --prefix examples/node-echo');
  process.exit(1);
}

const URL = process.env.PLEXUS_URL || 'ws://127.0.0.1:7700/ws';
const TOKEN = process.env.PLEXUS_TOKEN;
const INSTANCE = process.env.SHOUT_INSTANCE || `shout-js-${process.pid}`;

const TEXT = {
  type: 'object',
  properties: { text: { type: 'string' } },
  required: ['text'],
};

const DESCRIPTOR = {
  name: 'shout',
  service_type: 'example',
  version: '1.0.0',
  instance: INSTANCE,
  description: 'Says back what it is told (Node.js).',
  methods: [
    { name: 'say', description: 'Returns the text unchanged.', params: TEXT, idempotent: true },
    { name: 'upper', description: 'Returns the text in capitals.', params: TEXT, idempotent: true },
  ],
  tags: ['example', 'node'],
};

function answer(request) {
  const params = request.params || {};
  if (request.method !== 'shout.say' && request.method !== 'shout.upper') {
    return { jsonrpc: '2.0', id: request.id, error: { code: -32601, message: `shout has no method ${request.method}` } };
  }
  if (typeof params.text !== 'string') {
    return { jsonrpc: '2.0', id: request.id, error: { code: -32602, message: '`text` must be a string', data: { field: '/text' } } };
  }
  const text = request.method === 'shout.upper' ? params.text.toUpperCase() : params.text;
  return { jsonrpc: '2.0', id: request.id, result: { text, instance: INSTANCE } };
}

let backoff = 100;

function connect() {
  const headers = TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
  const ws = new WebSocket(URL, { headers });
  let beats = null;
  let n = 0;

  ws.on('open', () => {
    backoff = 100;
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: 'register', method: 'plexus.register', params: { descriptor: DESCRIPTOR } }));
  });

  ws.on('message', (raw) => {
    const message = JSON.parse(raw.toString());
    if (message.method && message.id !== undefined) {
      ws.send(JSON.stringify(answer(message)));
    } else if (message.id === 'register') {
      if (message.error) {
        console.error(`registration refused: ${JSON.stringify(message.error)}`);
        ws.close();
        return;
      }
      const every = message.result.heartbeat_ttl_ms / 3;
      beats = setInterval(() => {
        n += 1;
        ws.send(JSON.stringify({ jsonrpc: '2.0', id: `hb-${n}`, method: 'plexus.heartbeat', params: {} }));
      }, every);
      console.log(`registered ${INSTANCE} at ${URL}`);
    } else if (message.error) {
      console.error(`node error: ${JSON.stringify(message.error)}`);
    }
  });

  ws.on('error', (e) => console.error(`connection failed: ${e.message}`));

  ws.on('close', () => {
    if (beats) clearInterval(beats);
    const wait = backoff * (0.5 + Math.random());
    backoff = Math.min(backoff * 2, 5000);
    setTimeout(connect, wait);
  });
}

process.on('SIGTERM', () => process.exit(0));
connect();
