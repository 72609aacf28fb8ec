#!/usr/bin/env bash
# Installs the real MCP servers the integration tests run against, into .test-servers/ of the
# workspace (idempotent; nothing global): npm @modelcontextprotocol/server-everything and
# server-memory, PyPI mcp-server-time in a virtualenv.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/.test-servers"
mkdir -p "$dir"
if [ ! -f "$dir/node_modules/@modelcontextprotocol/server-everything/dist/index.js" ] ||
   [ ! -f "$dir/node_modules/@modelcontextprotocol/server-memory/dist/index.js" ]; then
  if command -v npm >/dev/null 2>&1; then
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
      @modelcontextprotocol/server-everything @modelcontextprotocol/server-memory
  else
    echo "install-test-servers: npm not found; tests needing node servers will fail" >&2
  fi
fi
if [ ! -x "$dir/venv/bin/mcp-server-time" ]; then
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check mcp-server-time
fi
echo "test servers ready in $dir"
