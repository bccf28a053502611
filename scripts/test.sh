#!/usr/bin/env bash
# scripts/test.sh [go test packages/flags...]
#
# Starts private PostgreSQL + Redis instances (scripts/services.sh, name
# test-<pid>), runs `go test -race -count=1 -timeout 20m` against them
# (./... unless arguments are given) and tears the instances down on exit.
# The exit code is go test's.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

# Go may be installed at /usr/local/go without being on PATH (fresh machine, CI).
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	export PATH="$PATH:/usr/local/go/bin"
fi
command -v go >/dev/null 2>&1 || { echo "test.sh: go not found" >&2; exit 1; }
# -race needs cgo; an inherited CGO_ENABLED=0 would make every package fail.
if [[ "$(go env CGO_ENABLED)" != 1 ]] && command -v gcc >/dev/null 2>&1; then
	export CGO_ENABLED=1
fi

NAME="test-$$"
export PAYD_RUN_DIR="$REPO_ROOT/.run/$NAME"
export PAYD_OWNER_PID="$$"
SERVICES=(bash "$REPO_ROOT/scripts/services.sh")

GO_PID=""
teardown() {
	local rc=$?
	trap - EXIT INT TERM HUP
	if [[ -n "$GO_PID" ]] && kill -0 "$GO_PID" 2>/dev/null; then
		# go test runs in its own process group: stop it and its test binaries.
		kill -TERM -- "-$GO_PID" 2>/dev/null || true
		wait "$GO_PID" 2>/dev/null || true
	fi
	local out
	if ! out="$("${SERVICES[@]}" down "$NAME" 2>&1)"; then
		printf '%s\n' "$out" >&2
		echo "test.sh: teardown of $PAYD_RUN_DIR failed" >&2
		[[ $rc -ne 0 ]] || rc=1
	fi
	exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Instances left behind by test runs that were killed with SIGKILL.
"${SERVICES[@]}" prune || true

ENV_FILE="$("${SERVICES[@]}" up "$NAME")"
# shellcheck disable=SC1090
source "$ENV_FILE"

if [[ $# -eq 0 ]]; then
	set -- ./...
fi

# go test in its own session/process group (so teardown can stop every test
# binary), in the background so signals reach this script while it runs.
set +e
setsid go test -race -count=1 -timeout 20m "$@" </dev/null &
GO_PID=$!
wait "$GO_PID"
rc=$?
GO_PID=""
set -e
exit "$rc"
