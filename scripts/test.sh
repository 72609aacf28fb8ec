#!/usr/bin/env bash
# The test command: installs the real test servers (once), then runs the whole workspace suite.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/install-test-servers.sh"
cd "$root"
# The CLI tests drive the real `mcpvisor` binary: build it from this tree first.
cargo build -p mcpvisor-cli --bin mcpvisor
# --no-fail-fast: one failing test binary must not hide the results of the others.
cargo test --workspace --no-fail-fast "$@"
