#!/usr/bin/env bash
# The MCP conformance suite's client under test: mcpvisor's own CLI, one-shot (an embedded
# supervisor with the scenario's server as its one service). The suite appends the server's
# URL as the last argument and names the scenario in MCP_CONFORMANCE_SCENARIO.
#   conformance client --command 'bash tests/conformance/client.sh' --scenario tools_call
set -euo pipefail
url="${*: -1}"
here="$(cd "$(dirname "$0")" && pwd)"
bin="${MCPVISOR_BIN:-$here/../../target/debug/mcpvisor}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
printf '{"mcpServers": {"s": {"url": "%s"}}}\n' "$url" >"$dir/mcp.json"
# Scenarios that give the client its OAuth client (MCP_CONFORMANCE_CONTEXT: client_id and
# client_secret) get it in the service's `oauth` section, as a user would write it.
case "${MCP_CONFORMANCE_SCENARIO:-}" in
  auth/pre-registration | auth/client-credentials-basic)
    grant=authorization_code
    [ "$MCP_CONFORMANCE_SCENARIO" = auth/client-credentials-basic ] && grant=client_credentials
    URL="$url" GRANT="$grant" node -e '
      const c = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT || "{}");
      const oauth = {grant: process.env.GRANT, client_id: c.client_id, client_secret: c.client_secret};
      process.stdout.write(JSON.stringify({mcpServers: {s: {url: process.env.URL, oauth}}}));
    ' >"$dir/mcp.json" ;;
esac
one_shot=(--config "$dir/mcp.json" --state-dir "$dir/state" --wait 10s)
case "${MCP_CONFORMANCE_SCENARIO:-}" in
  initialize) "$bin" tools "${one_shot[@]}" ;;
  tools_call) "$bin" call s__add_numbers --args '{"a": 2, "b": 3}' "${one_shot[@]}" ;;
  sse-retry) "$bin" call s__test_reconnection --timeout 10s "${one_shot[@]}" ;;
  auth/client-credentials-basic) "$bin" tools "${one_shot[@]}" ;;
  auth/*)
    # Sign in (the suite's authorization server redirects at once: following the printed URL
    # with curl plays the browser), then list tools one-shot with the stored tokens.
    "$bin" login s --config "$dir/mcp.json" --state-dir "$dir/state" --timeout 30s >"$dir/login.out" 2>&1 &
    login=$!
    url=""
    for _ in $(seq 1 300); do
      url="$(sed -n 's/^  \(http[^ ]*\)$/\1/p' "$dir/login.out" | head -1)"
      [ -n "$url" ] && break
      kill -0 "$login" 2>/dev/null || break
      sleep 0.1
    done
    if [ -z "$url" ]; then cat "$dir/login.out" >&2; wait "$login" || true; exit 1; fi
    curl -s -o /dev/null -L --max-time 20 "$url"
    wait "$login" || { cat "$dir/login.out" >&2; exit 1; }
    "$bin" tools "${one_shot[@]}" ;;
  *) echo "client.sh: no client behaviour for scenario '${MCP_CONFORMANCE_SCENARIO:-}'" >&2; exit 2 ;;
esac
