#!/usr/bin/env bash
# Installs the real MCP servers the integration tests run against, into .test-servers/ of the
# workspace (idempotent; nothing global): npm @modelcontextprotocol/server-everything and
# server-memory, PyPI mcp-server-time in a virtualenv, the official Python SDK 2.x (a client of
# the 2026-07-28 era) in another, the MCP conformance suite with Node 22, and three real agents
# (Claude Code, Codex, Gemini CLI).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/.test-servers"
mkdir -p "$dir"
if [ ! -f "$dir/node_modules/@modelcontextprotocol/server-everything/dist/index.js" ] ||
   [ ! -f "$dir/node_modules/@modelcontextprotocol/server-memory/dist/index.js" ] ||
   [ ! -f "$dir/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js" ]; then
  if command -v npm >/dev/null 2>&1; then
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
      @modelcontextprotocol/server-everything @modelcontextprotocol/server-memory \
      @modelcontextprotocol/server-filesystem
  else
    echo "install-test-servers: npm not found; tests needing node servers will fail" >&2
  fi
fi
# The official MCP conformance suite and the Node >= 22 it needs (a binary from npm, used only
# to run the suite; the servers above run on the machine's node).
if [ ! -x "$dir/conformance/node_modules/.bin/conformance" ] ||
   [ ! -x "$dir/conformance/node_modules/.bin/node" ]; then
  if command -v npm >/dev/null 2>&1; then
    npm install --prefix "$dir/conformance" --no-audit --no-fund --loglevel=error \
      @modelcontextprotocol/conformance@0.1.16 node@22
  else
    echo "install-test-servers: npm not found; the conformance tests will fail" >&2
  fi
fi
# The suite's 2026-07-28 requirements (server scenarios of both eras) come with 0.2.0; the
# client scenarios stay on the 0.1 line above, whose scenarios they were written against.
if [ ! -f "$dir/conformance-next/node_modules/@modelcontextprotocol/conformance/dist/index.js" ] ||
   [ ! -x "$dir/conformance-next/node_modules/.bin/node" ]; then
  if command -v npm >/dev/null 2>&1; then
    mkdir -p "$dir/conformance-next"
    npm install --prefix "$dir/conformance-next" --no-audit --no-fund --loglevel=error --save-exact \
      @modelcontextprotocol/conformance@0.2.0-alpha.12 node@22
  else
    echo "install-test-servers: npm not found; the conformance tests will fail" >&2
  fi
fi
# Real agents for the end-to-end tests (tests/tests/agents.rs), pinned: each runs against a
# scripted model API on loopback (tests/support/model_api.py), never a real model.
if [ ! -x "$dir/agents/node_modules/.bin/claude" ] || [ ! -x "$dir/agents/node_modules/.bin/codex" ] ||
   [ ! -x "$dir/agents/node_modules/.bin/gemini" ]; then
  if command -v npm >/dev/null 2>&1; then
    mkdir -p "$dir/agents"
    npm install --prefix "$dir/agents" --no-audit --no-fund --loglevel=error --save-exact \
      @anthropic-ai/claude-code@2.1.332 @openai/codex@0.171.0 @google/gemini-cli@0.61.0
  else
    echo "install-test-servers: npm not found; the agent tests will fail" >&2
  fi
fi
# The official TypeScript SDK as a client, both generations (tests/support/ts_client.mjs).
if [ ! -f "$dir/tssdk/node_modules/@modelcontextprotocol/client/package.json" ] ||
   [ ! -f "$dir/tssdk/node_modules/@modelcontextprotocol/sdk/package.json" ]; then
  if command -v npm >/dev/null 2>&1; then
    mkdir -p "$dir/tssdk"
    npm install --prefix "$dir/tssdk" --no-audit --no-fund --loglevel=error --save-exact \
      @modelcontextprotocol/sdk@1.32.2 @modelcontextprotocol/client@2.4.0
  else
    echo "install-test-servers: npm not found; the TypeScript SDK tests will fail" >&2
  fi
fi
if [ ! -x "$dir/pysdk/bin/python" ] || ! "$dir/pysdk/bin/python" -c 'import mcp.client.client' 2>/dev/null; then
  python3 -m venv "$dir/pysdk"
  "$dir/pysdk/bin/pip" install --quiet --disable-pip-version-check 'mcp==2.3.0'
fi
if [ ! -x "$dir/venv/bin/mcp-server-time" ]; then
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check mcp-server-time
fi
echo "test servers ready in $dir"
