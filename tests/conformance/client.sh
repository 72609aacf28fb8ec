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
# A private key (client-credentials-jwt) goes in as PEM text, as `${VAR}` from a user's
# environment would. A client ID metadata document (basic-cimd) is the URL the suite expects
# mcpvisor to be known by.
case "${MCP_CONFORMANCE_SCENARIO:-}" in
  auth/pre-registration | auth/client-credentials-basic | auth/client-credentials-jwt | auth/basic-cimd)
    URL="$url" node -e '
      const c = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT || "{}");
      const scenario = process.env.MCP_CONFORMANCE_SCENARIO;
      let oauth;
      if (scenario === "auth/basic-cimd") {
        oauth = {client_metadata_url: "https://conformance-test.local/client-metadata.json"};
      } else if (scenario === "auth/client-credentials-jwt") {
        oauth = {grant: "client_credentials", client_id: c.client_id,
                 private_key: c.private_key_pem, signing_algorithm: c.signing_algorithm};
      } else {
        oauth = {grant: scenario === "auth/pre-registration" ? "authorization_code" : "client_credentials",
                 client_id: c.client_id, client_secret: c.client_secret};
      }
      process.stdout.write(JSON.stringify({mcpServers: {s: {url: process.env.URL, oauth}}}));
    ' >"$dir/mcp.json" ;;
esac
one_shot=(--config "$dir/mcp.json" --state-dir "$dir/state" --wait 10s)
# Sign in (the suite's authorization server redirects at once: following the printed URL with
# curl plays the browser); the tokens go to the state dir.
login() {
  "$bin" login s --config "$dir/mcp.json" --state-dir "$dir/state" --timeout 30s >"$dir/login.out" 2>&1 &
  local pid=$! at=""
  for _ in $(seq 1 300); do
    at="$(sed -n 's/^  \(http[^ ]*\)$/\1/p' "$dir/login.out" | head -1)"
    [ -n "$at" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$at" ]; then cat "$dir/login.out" >&2; wait "$pid" || true; exit 1; fi
  curl -s -o /dev/null -L --max-time 20 "$at"
  wait "$pid" || { cat "$dir/login.out" >&2; exit 1; }
}
case "${MCP_CONFORMANCE_SCENARIO:-}" in
  initialize) "$bin" tools "${one_shot[@]}" ;;
  tools_call) "$bin" call s__add_numbers --args '{"a": 2, "b": 3}' "${one_shot[@]}" ;;
  sse-retry) "$bin" call s__test_reconnection --timeout 10s "${one_shot[@]}" ;;
  elicitation-sep1034-client-defaults)
    "$bin" call s__test_client_elicitation_defaults --accept-defaults "${one_shot[@]}" ;;
  auth/client-credentials-basic | auth/client-credentials-jwt) "$bin" tools "${one_shot[@]}" ;;
  auth/scope-step-up)
    # Sign in, call a tool: the server wants more scope for calls (403 insufficient_scope);
    # the call fails saying so, and the next login asks for that scope; then the call works.
    login
    tool="$("$bin" tools --json "${one_shot[@]}" | node -e '
      let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
        const t = JSON.parse(s); process.stdout.write((t[0] && (t[0].name || t[0].tool)) || "");
      });')"
    [ -n "$tool" ] || { echo "client.sh: no tool listed" >&2; exit 1; }
    if ! "$bin" call "$tool" --args '{}' "${one_shot[@]}" 2>"$dir/call.err"; then
      cat "$dir/call.err" >&2
      grep -q "mcpvisor login" "$dir/call.err" || exit 1
      login
      "$bin" call "$tool" --args '{}' "${one_shot[@]}"
    fi ;;
  auth/*) login; "$bin" tools "${one_shot[@]}" ;;
  *) echo "client.sh: no client behaviour for scenario '${MCP_CONFORMANCE_SCENARIO:-}'" >&2; exit 2 ;;
esac
