#!/usr/bin/env bash
# scripts/demo.sh — `make demo`: payd end to end on private PostgreSQL + Redis.
#
# Builds bin/payd, starts private services (scripts/services.sh, name "demo"),
# runs `payd all` with second-scale sandbox and retry timings, creates one
# invoice per sandbox scenario and posts one payment against it through the
# public API, waits until each is final, prints what the API and the sandbox
# ledger say, compares each payment and invoice with its expected outcome
# (PASS/FAIL). Then payment sessions (seed 003): it creates one and prints
# its hosted payment page's URL, and submits another through the API with
# session_data sandbox:pm_card_visa and prints the outcome. Then a payment
# flow (seed 000): users with payin methods and payout accounts, an invoice
# with two payers and two payees, the flow polled until it settles, and its
# plan as `payd flows show` prints it (the tree, then --versions). Last it stops
# everything — or, with KEEP=1 (or --keep), keeps payd running, so that the
# page can be opened in a browser, until Ctrl-C. The exit code is non-zero
# if any scenario fails. Needs bash, Go, python3 and curl (curl is
# installed from Debian packages if missing, like the services).
#
#   make demo                 # run, report, stop
#   KEEP=1 make demo          # … and keep payd (and the page) up until Ctrl-C
#   DEMO_PORT=8080 KEEP=1 make demo   # on a fixed port instead of a free one
set -euo pipefail

KEEP="${KEEP:-}"
for arg in "$@"; do
	case "$arg" in
	--keep) KEEP=1 ;;
	*)
		printf 'usage: %s [--keep]\n' "$0" >&2
		exit 2
		;;
	esac
done
[[ "$KEEP" == 0 ]] && KEEP=""

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

NAME=demo
unset PAYD_RUN_DIR PAYD_RUN_NAME || true # the instance lives in .run/demo
RUN_DIR="$REPO_ROOT/.run/$NAME"
TIMEOUT=60 # seconds for every payment to reach its final state

log() { printf 'demo: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

for tool in go python3; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
if ! command -v curl >/dev/null 2>&1; then
	log "curl missing; installing it from Debian packages"
	sudo=()
	[[ "$(id -u)" -eq 0 ]] || sudo=(sudo -n)
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 </dev/null
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends curl ca-certificates >&2 </dev/null
fi

# ---------------------------------------------------------------- lifecycle

PAYD_PID=""
WORK=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	if [[ -n "$PAYD_PID" ]] && kill -0 "$PAYD_PID" 2>/dev/null; then
		kill -TERM "$PAYD_PID" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$PAYD_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$PAYD_PID" 2>/dev/null || true
		wait "$PAYD_PID" 2>/dev/null || true
	fi
	if [[ $rc -ne 0 && -s "$RUN_DIR/payd.log" ]]; then
		cp "$RUN_DIR/payd.log" "$REPO_ROOT/.run/demo-payd.log" 2>/dev/null || true
		log "--- tail of payd.log (kept in .run/demo-payd.log)"
		tail -20 "$RUN_DIR/payd.log" >&2 || true
	fi
	[[ -n "$WORK" ]] && rm -rf -- "$WORK"
	bash "$REPO_ROOT/scripts/services.sh" down "$NAME" 2>/dev/null || log "could not stop the demo services"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

log "building bin/payd"
go build -o bin/payd ./cmd/payd

log "starting private PostgreSQL and Redis ($RUN_DIR)"
ENV_FILE="$(bash scripts/services.sh up "$NAME")"
# shellcheck disable=SC1090
source "$ENV_FILE"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/payd-demo.XXXXXX")"

read -r PORT ADMIN_PORT < <(python3 -c '
import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')
PORT="${DEMO_PORT:-$PORT}"
export PAYD_ADDR="127.0.0.1:$PORT"
# where a browser reaches payd: the hosted payment page's links are built on it
export PAYD_PUBLIC_URL="http://$PAYD_ADDR"
export PAYD_ADMIN_ADDR="127.0.0.1:$ADMIN_PORT"
export PAYD_ADMIN_PASSWORD
PAYD_ADMIN_PASSWORD="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
export PAYD_SANDBOX_SETTLE_DELAY=2s PAYD_SANDBOX_RETURN_DELAY=2s PAYD_RETRY_UNIT=100ms
export PAYD_SETTLE_POLL=500ms PAYD_RETURN_WINDOW=6s PAYD_SHUTDOWN_TIMEOUT=5s
unset PAYD_SANDBOX_URL || true # the in-process sandbox, whose ledger payd all serves on the admin port at /sandbox/ledger
BASE="http://$PAYD_ADDR"

bin/payd migrate
KEY="$(bin/payd keys create --tenant demo | tail -n 1)"
[[ "$KEY" == sk_* ]] || die "keys create did not print a key"

log "starting payd all on $PAYD_ADDR (admin $PAYD_ADMIN_ADDR), log in $RUN_DIR/payd.log"
bin/payd all >"$RUN_DIR/payd.log" 2>&1 &
PAYD_PID=$!
for i in $(seq 1 200); do
	kill -0 "$PAYD_PID" 2>/dev/null || die "payd exited during start-up"
	curl -fsS -o /dev/null "$BASE/readyz" 2>/dev/null && break
	((i < 200)) || die "payd not ready after 20 s"
	sleep 0.1
done

# ---------------------------------------------------------------- payments

# scenario | payment_method_type | payment_method_id | process_payment | expected canonical status
SCENARIOS=(
	"card visa|CARD|pm_card_visa|true|SUCCEEDED"
	"card declined|CARD|pm_card_declined|true|FAILED"
	"card flaky|CARD|pm_card_flaky|true|SUCCEEDED"
	"card timeout after charge|CARD|pm_card_timeout_after_charge|true|SUCCEEDED"
	"ACH settles|ACH|ba_123456789|true|SUCCEEDED"
	"ACH returned R01|ACH|ba_10001|true|RETURNED"
	"offline, recorded paid without a gateway|OFFLINE||true|SUCCEEDED"
	"card recorded (process_payment=false), then processed|CARD|pm_card_visa|false|SUCCEEDED"
)
RUN_ID="$(python3 -c 'import secrets; print(secrets.token_hex(4))')"

api() { # METHOD PATH [BODY_FILE] [IDEMPOTENCY_KEY] → body on stdout; fails on a non-2xx
	local args=(-sS --max-time 10 -w '\n%{http_code}' -X "$1" -H "x-api-key: $KEY") out
	[[ -n "${3:-}" ]] && args+=(-H 'Content-Type: application/json' --data-binary "@$3")
	[[ -n "${4:-}" ]] && args+=(-H "Idempotency-Key: $4")
	out="$(curl "${args[@]}" "$BASE$2")" || return 1
	printf '%s\n' "${out%$'\n'*}"
	[[ "${out##*$'\n'}" == 2?? ]]
}

IDS=()
for i in "${!SCENARIOS[@]}"; do
	IFS='|' read -r name method pm process _ <<<"${SCENARIOS[$i]}"
	# the invoice the payment pays: due exactly the payment's amount
	python3 - "demo-inv-$RUN_ID-$i" "$name" >"$WORK/inv.$i.json" <<'EOF'
import json, sys
inv, name = sys.argv[1:]
print(json.dumps({"external_id": inv, "currency": "USD", "amount_due": "12.50", "payer": {"external_id": "demo-payer"},
                  "metadata": {"scenario": name}}))
EOF
	api POST /v1/invoices "$WORK/inv.$i.json" "demo-inv-$RUN_ID-$i" >"$WORK/invoice_created.$i.json" ||
		die "POST /v1/invoices ($name) failed: $(cat "$WORK/invoice_created.$i.json")"
	python3 - "$method" "$pm" "$process" "demo-inv-$RUN_ID-$i" >"$WORK/req.$i.json" <<'EOF'
import json, sys
method, pm, process, inv = sys.argv[1:]
body = {"amount": "12.50", "currency": "USD", "destination_id": inv, "destination_type": "INVOICE",
        "payment_method_type": method, "process_payment": process == "true"}
if pm:
    body["payment_method_id"] = pm
print(json.dumps(body))
EOF
	api POST /v1/payments "$WORK/req.$i.json" "demo-$RUN_ID-$i" >"$WORK/created.$i.json" ||
		die "POST /v1/payments ($name) failed: $(cat "$WORK/created.$i.json")"
	id="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/created.$i.json")"
	IDS+=("$id")
	log "posted $name: $id"
	if [[ "$process" == false ]]; then
		# recorded PENDING, nothing moved: processing is a second call
		api POST "/v1/payments/$id/process" "" "demo-$RUN_ID-$i-process" >"$WORK/processed.$i.json" ||
			die "POST /v1/payments/$id/process ($name) failed: $(cat "$WORK/processed.$i.json")"
		log "processed $name: $id"
	fi
done

# A payment is final when it reached its expected status, or a status it
# cannot leave on its own (so a wrong outcome does not wait for the timeout).
all_final() {
	python3 - "$WORK" "${#IDS[@]}" "${SCENARIOS[@]}" <<'EOF'
import json, sys
work, n, scen = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
absorbing = {"FAILED", "CANCELED", "RETURNED", "REFUNDED", "REQUIRES_REVIEW"}
for i in range(n):
    want = scen[i].split("|")[4]
    try:
        got = json.load(open(f"{work}/timeline.{i}.json"))["status"]
    except Exception:
        sys.exit(1)
    if got != want and got not in absorbing:
        sys.exit(1)
EOF
}

log "waiting up to ${TIMEOUT}s for every payment to be final"
deadline=$((SECONDS + TIMEOUT))
while :; do
	for i in "${!IDS[@]}"; do
		api GET "/v1/payments/${IDS[$i]}" >"$WORK/payment.$i.json" || true
		api GET "/v1/payments/${IDS[$i]}/timeline" >"$WORK/timeline.$i.json" || true
	done
	all_final && break
	if ((SECONDS >= deadline)); then
		log "not every payment is final after ${TIMEOUT}s; reporting what there is"
		break
	fi
	sleep 0.5
done

# An invoice moves in the same transaction as its payment: final payment, final balance.
for i in "${!IDS[@]}"; do
	api GET "/v1/invoices/demo-inv-$RUN_ID-$i" >"$WORK/invoice.$i.json" || true
done
# The sandbox's ledger is an operator route: on the admin port, behind its
# basic auth (the password goes to curl on stdin, not on its command line).
printf 'user = "admin:%s"\n' "$PAYD_ADMIN_PASSWORD" |
	curl -sS --max-time 10 -K - "http://$PAYD_ADMIN_ADDR/sandbox/ledger" >"$WORK/ledger.json" ||
	echo '{"charges": []}' >"$WORK/ledger.json"
# Inquiries are counted on the attempt rows; the API shows their effect, the
# database their number.
for i in "${!IDS[@]}"; do
	"$PAYD_PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$PAYD_PG_PORT" -U postgres -d payd -v ON_ERROR_STOP=1 \
		-c "SELECT COALESCE(sum(inquiry_count), 0) FROM payment_attempts WHERE payment_id = '${IDS[$i]}'" \
		</dev/null >"$WORK/inquiries.$i" 2>/dev/null || echo "?" >"$WORK/inquiries.$i"
done

# ---------------------------------------------------------------- payout

# One ACH payout (seed 002) whose lines pay two invoices at once.
log "posting an ACH payout of 100.00 that pays two invoices (60.00 and 40.00)"
for pair in "a|60.00" "b|40.00"; do
	IFS='|' read -r tag due <<<"$pair"
	printf '{"external_id":"demo-po-inv-%s-%s","currency":"USD","amount_due":"%s"}' "$RUN_ID" "$tag" "$due" >"$WORK/poinv.$tag.json"
	api POST /v1/invoices "$WORK/poinv.$tag.json" "demo-po-inv-$RUN_ID-$tag" >"$WORK/poinv_created.$tag.json" ||
		die "POST /v1/invoices (payout $tag) failed: $(cat "$WORK/poinv_created.$tag.json")"
done
python3 - "$RUN_ID" "$WORK" >"$WORK/payout_req.json" <<'EOF'
import json, sys
run, work = sys.argv[1:]
inv = {t: json.load(open(f"{work}/poinv_created.{t}.json"))["id"] for t in ("a", "b")}
print(json.dumps({"external_payment_id": f"demo-po-{run}", "external_source": "demo", "method": "ACH",
                  "total_amount": "100.00", "currency": "usd", "beneficiary_name": "Demo Supplier LLC",
                  "beneficiary_account": "123456789", "beneficiary_routing": "021000021",
                  "beneficiary_bank_country": "US", "remittance_memo": "invoices a and b",
                  "lines": [{"invoice_token": inv["a"], "applied_amount": "60.00"},
                            {"invoice_token": inv["b"], "applied_amount": "40.00"}]}))
EOF
api POST /v1/payouts "$WORK/payout_req.json" "demo-po-$RUN_ID" >"$WORK/payout_created.json" ||
	die "POST /v1/payouts failed: $(cat "$WORK/payout_created.json")"
PO_ID="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/payout_created.json")"
deadline=$((SECONDS + TIMEOUT))
while :; do
	api GET "/v1/payouts/$PO_ID" >"$WORK/payout.json" || true
	st="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("status",""))' "$WORK/payout.json" 2>/dev/null || true)"
	[[ "$st" == SETTLED || "$st" == FAILED || "$st" == RETURNED || "$st" == CANCELED ]] && break
	((SECONDS < deadline)) || break
	sleep 0.5
done
for tag in a b; do
	api GET "/v1/invoices/demo-po-inv-$RUN_ID-$tag" >"$WORK/poinv.$tag.final.json" || true
done

# ---------------------------------------------------------------- payment sessions

# Seed 003: a session for a customer in a browser (its hosted page's URL is
# printed), and one a merchant's server submits itself with the sandbox's
# documented test value of a card that succeeds.
session_req() { # REFERENCE → the create request on stdout
	python3 - "$1" <<'EOF'
import json, sys
ref = sys.argv[1]
print(json.dumps({"amount": 1250, "currency": "USD", "reference": ref, "display_name": "payd demo shop",
                  "description": "Demo order", "locale": "en-GB",
                  "billing": {"address": {"address_line1": "1 Demo Street", "city": "London", "zip": "N1 1AA", "country": "GB"}},
                  "items": [{"name": "Demo widget", "quantity": 1, "unit_price": 1250}],
                  "success_url": "https://example.com/demo/success", "failure_url": "https://example.com/demo/failure"}))
EOF
}
log "creating a payment session for the hosted page"
session_req "demo-page-$RUN_ID" >"$WORK/ps_page_req.json"
api POST /v1/payment-sessions "$WORK/ps_page_req.json" "demo-ps-page-$RUN_ID" >"$WORK/ps_page.json" ||
	die "POST /v1/payment-sessions failed: $(cat "$WORK/ps_page.json")"
# The hosted page's link (_links.redirect.href) with the session secret in
# its fragment, where the page reads it (/pay/{token}#<secret>): a browser
# never sends a fragment to the server, so the secret stays out of logs.
PAGE_URL="$(python3 - "$WORK/ps_page.json" <<'EOF'
import json, sys, urllib.parse
ps = json.load(open(sys.argv[1]))
href, secret = ps["_links"]["redirect"]["href"], ps.get("payment_session_secret", "")
print(href if "#" in href or not secret else href + "#" + urllib.parse.quote(secret, safe=""))
EOF
)"
# the page answers while payd runs (without the fragment, as a browser asks)
PAGE_CODE="$(curl -sS --max-time 10 -o "$WORK/page.html" -w '%{http_code}' "${PAGE_URL%%#*}" || true)"

log "creating a payment session and submitting it through the API (session_data sandbox:pm_card_visa)"
session_req "demo-api-$RUN_ID" >"$WORK/ps_api_req.json"
api POST /v1/payment-sessions "$WORK/ps_api_req.json" "demo-ps-api-$RUN_ID" >"$WORK/ps_api.json" ||
	die "POST /v1/payment-sessions failed: $(cat "$WORK/ps_api.json")"
PS_ID="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$WORK/ps_api.json")"
printf '{"session_data": "sandbox:pm_card_visa", "amount": 1250}' >"$WORK/ps_submit_req.json"
SUBMIT_CODE="$(curl -sS --max-time 15 -o "$WORK/ps_submit.json" -w '%{http_code}' -X POST -H "x-api-key: $KEY" \
	-H 'Content-Type: application/json' -H "Idempotency-Key: demo-ps-submit-$RUN_ID" \
	--data-binary "@$WORK/ps_submit_req.json" "$BASE/v1/payment-sessions/$PS_ID/submit" || true)"
deadline=$((SECONDS + TIMEOUT))
while :; do
	api GET "/v1/payment-sessions/$PS_ID" >"$WORK/ps_api_final.json" || true
	st="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("status",""))' "$WORK/ps_api_final.json" 2>/dev/null || true)"
	[[ "$st" == COMPLETED || "$st" == FAILED || "$st" == EXPIRED ]] && break
	((SECONDS < deadline)) || break
	sleep 0.5
done
PS_PAY="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("id",""))' "$WORK/ps_submit.json" 2>/dev/null || true)"
if [[ -n "$PS_PAY" ]]; then
	api GET "/v1/payments/$PS_PAY/timeline" >"$WORK/ps_timeline.json" || true
fi
printf 'user = "admin:%s"\n' "$PAYD_ADMIN_PASSWORD" |
	curl -sS --max-time 10 -K - "http://$PAYD_ADMIN_ADDR/sandbox/ledger" >"$WORK/ledger_after_sessions.json" ||
	echo '{"charges": []}' >"$WORK/ledger_after_sessions.json"

# ---------------------------------------------------------------- payment flow

# Seed 000: one invoice of 100.00 settled through a payment flow. Two payers
# (alice 60.00 by card, bob 40.00 by ACH debit) pay in; once both payins have
# settled, two payees (carol 55.00, dave 35.00, by ACH) are paid out; the
# platform keeps 10.00. The operator command `payd flows show` prints the
# final plan as a tree, and with --versions how it got there.
log "creating a payment flow: payers alice (card 60.00) and bob (ACH 40.00), payees carol (55.00) and dave (35.00)"
flow_user() { # EXTERNAL_ID KIND(payer-card|payer-ach|payee) → a POST /v1/users body
	python3 - "$1" "$2" <<'EOF'
import json, sys
ext, kind = sys.argv[1:]
body = {"external_id": ext, "name": ext.split("-")[0].title()}
if kind == "payer-card":
    body["payin_method"] = {"payment_method_type": "CARD", "payment_method_id": "pm_card_visa"}
elif kind == "payer-ach":
    body["payin_method"] = {"payment_method_type": "ACH", "payment_method_id": "ba_123456789"}
else:
    body["payout_account"] = {"method": "ACH", "beneficiary_name": body["name"] + " Payee LLC",
                              "beneficiary_account": "123456789", "beneficiary_routing": "021000021",
                              "beneficiary_bank_country": "US"}
print(json.dumps(body))
EOF
}
for pair in "alice|payer-card" "bob|payer-ach" "carol|payee" "dave|payee"; do
	IFS='|' read -r who kind <<<"$pair"
	flow_user "$who-$RUN_ID" "$kind" >"$WORK/flow_user.$who.json"
	api POST /v1/users "$WORK/flow_user.$who.json" "demo-flow-user-$RUN_ID-$who" >"$WORK/flow_user_created.$who.json" ||
		die "POST /v1/users ($who) failed: $(cat "$WORK/flow_user_created.$who.json")"
done
python3 - "$RUN_ID" >"$WORK/flow_inv.json" <<'EOF'
import json, sys
run = sys.argv[1]
print(json.dumps({"external_id": f"demo-flow-inv-{run}", "currency": "USD", "amount_due": "100.00",
                  "payers": [{"external_id": f"alice-{run}", "amount": "60.00"}, {"external_id": f"bob-{run}", "amount": "40.00"}],
                  "payees": [{"external_id": f"carol-{run}", "amount": "55.00"}, {"external_id": f"dave-{run}", "amount": "35.00"}],
                  "metadata": {"scenario": "payment flow"}}))
EOF
api POST /v1/invoices "$WORK/flow_inv.json" "demo-flow-inv-$RUN_ID" >"$WORK/flow_inv_created.json" ||
	die "POST /v1/invoices (flow) failed: $(cat "$WORK/flow_inv_created.json")"
python3 - "$RUN_ID" "$WORK" >"$WORK/flow_req.json" <<'EOF'
import json, sys
run, work = sys.argv[1:]
inv = json.load(open(f"{work}/flow_inv_created.json"))["id"]
print(json.dumps({"external_id": f"demo-flow-{run}", "invoice": {"id": inv}, "type": "single_invoice_settlement"}))
EOF
api POST /v1/payment-flows "$WORK/flow_req.json" "demo-flow-$RUN_ID" >"$WORK/flow_created.json" ||
	die "POST /v1/payment-flows failed: $(cat "$WORK/flow_created.json")"
FLOW_ID="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"]["id"])' "$WORK/flow_created.json")"
log "posted payment flow $FLOW_ID; waiting up to ${TIMEOUT}s for it to settle (or fail)"
deadline=$((SECONDS + TIMEOUT))
while :; do
	api GET "/v1/payment-flows/$FLOW_ID" >"$WORK/flow.json" || true
	st="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"].get("status",""))' "$WORK/flow.json" 2>/dev/null || true)"
	[[ "$st" == settled || "$st" == failed || "$st" == canceled ]] && break
	if ((SECONDS >= deadline)); then
		log "payment flow $FLOW_ID is still ${st:-unknown} after ${TIMEOUT}s; reporting what there is"
		break
	fi
	sleep 0.5
done
# The operator's view, from the database (the demo's environment, as for
# `payd keys create` above).
bin/payd flows show "$FLOW_ID" >"$WORK/flow_show.txt" 2>&1 || echo "(payd flows show exited $?)" >>"$WORK/flow_show.txt"
bin/payd flows show "$FLOW_ID" --versions >"$WORK/flow_versions.txt" 2>&1 ||
	echo "(payd flows show --versions exited $?)" >>"$WORK/flow_versions.txt"
api GET "/v1/invoices/demo-flow-inv-$RUN_ID" >"$WORK/flow_inv_final.json" || true

# ---------------------------------------------------------------- report

REPORT_RC=0
python3 - "$WORK" "${#IDS[@]}" "${SCENARIOS[@]}" <<'EOF' || REPORT_RC=$?
import json, sys
work, n, scen = sys.argv[1], int(sys.argv[2]), sys.argv[3:]

def load(name):
    try:
        # decimals as written (12.50, not 12.5)
        return json.load(open(f"{work}/{name}"), parse_float=str)
    except Exception:
        return {}

charges = load("ledger.json").get("charges", [])
rows, failed = [], 0
for i in range(n):
    name, method, pm, process, want = scen[i].split("|")
    p, t = load(f"payment.{i}.json"), load(f"timeline.{i}.json")
    pid = p.get("id") or load(f"created.{i}.json").get("id", "?")
    atts = p.get("attempts") or []
    canon = t.get("status", "?")
    seed = p.get("payment_status", "?")
    reasons = [e.get("reason", "") for e in t.get("events", [])]
    ncharges = sum(1 for c in charges if c.get("payment_id") == pid)
    inquiries = open(f"{work}/inquiries.{i}").read().strip() or "0"
    codes = [a.get("error_code") or "" for a in atts]
    notes, ok = [], canon == want
    if pm == "pm_card_declined":
        ok = ok and "card_declined" in codes
    if pm == "pm_card_flaky":
        ok = ok and len(atts) == 3 and [a["status"] for a in atts] == ["FAILED", "FAILED", "SUCCEEDED"]
        notes.append(f"attempt codes {','.join(c or '-' for c in codes)}")
    if pm == "pm_card_timeout_after_charge":
        found = [r for r in reasons if "found by inquiry" in r]
        ok = ok and ncharges == 1
        notes.append(f"inquiries {inquiries}; sandbox charges {ncharges}; reason \"{found[-1] if found else '-'}\"")
    elif method in ("CARD", "ACH"):
        notes.append(f"sandbox charges {ncharges}")
    if pm == "ba_10001":
        notes.append("return " + (next((r for r in reasons if "returned" in r), "-")))
    if method in ("OFFLINE", "CREDITS"):
        ok = ok and len(atts) == 0 and ncharges == 0
        notes.append(f"no gateway call (charges {ncharges})")
    if process == "false":
        # created PENDING with nothing moved, then POST /v1/payments/{id}/process
        c, pr = load(f"created.{i}.json"), load(f"processed.{i}.json")
        ok = ok and c.get("payment_status") == "PENDING" and not c.get("attempts") and pr.get("id") == pid and ncharges == 1
        notes.append(f"created {c.get('payment_status', '?')}, processed by POST /process (charges {ncharges})")
    # a payment that succeeded paid its invoice; a failed or returned one gave it back
    inv = load(f"invoice.{i}.json")
    want_inv = "PAID" if want == "SUCCEEDED" else "OPEN"
    inv_txt = f"{inv.get('status', '?')} {inv.get('amount_paid', '?')}/{inv.get('amount_due', '?')}"
    ok = ok and inv.get("status") == want_inv
    failed += not ok
    rows.append([name, pid, seed, canon, str(len(atts)), ",".join(a.get("status", "?") for a in atts) or "-",
                 p.get("error_message") or "-", inv_txt, "; ".join(notes) or "-",
                 "PASS" if ok else f"FAIL (want {want}, invoice {want_inv})"])

head = ["scenario", "payment id", "seed status", "canonical", "attempts", "attempt statuses", "error_message", "invoice",
        "notes", "result"]
w = [max(len(r[k]) for r in rows + [head]) for k in range(len(head))]
line = lambda r: "  ".join(c.ljust(w[k]) for k, c in enumerate(r)).rstrip()
print(line(head))
print(line(["-" * x for x in w]))
for r in rows:
    print(line(r))
print()
print(f"sandbox ledger: {len(charges)} charges in all, double charged: {load('ledger.json').get('double_charged', '?')}")
print(f"{n - failed}/{n} scenarios PASS" + ("" if failed == 0 else f", {failed} FAIL"))
sys.exit(1 if failed else 0)
EOF

python3 - "$WORK" <<'EOF' || REPORT_RC=$?
import json, sys
work = sys.argv[1]
load = lambda n: json.load(open(f"{work}/{n}"), parse_float=str)
po = load("payout.json")
print()
print(f"payout {po.get('id')}: {po.get('method')} {po.get('total_amount')} {po.get('currency')} -> {po.get('status')}, "
      f"sent_at {po.get('sent_at')}, settled_at {po.get('settled_at')}")
ok = po.get("status") == "SETTLED"
for tag in ("a", "b"):
    inv = load(f"poinv.{tag}.final.json")
    print(f"  invoice {inv.get('external_id')}: {inv.get('status')}, paid {inv.get('amount_paid')} of "
          f"{inv.get('amount_due')}, remaining {inv.get('amount_remaining')}")
    ok = ok and inv.get("status") == "PAID"
print("payout paying two invoices: " + ("PASS" if ok else "FAIL (want SETTLED and both invoices PAID)"))
sys.exit(0 if ok else 1)
EOF

python3 - "$WORK" "$SUBMIT_CODE" "$PAGE_CODE" "$PAGE_URL" <<'EOF' || REPORT_RC=$?
import json, sys
work, submit_code, page_code, page_url = sys.argv[1:]
def load(n):
    try:
        return json.load(open(f"{work}/{n}"))
    except Exception:
        return {}
page, sub, fin, tl = (load(n) for n in ("ps_page.json", "ps_submit.json", "ps_api_final.json", "ps_timeline.json"))
charges = [c for c in load("ledger_after_sessions.json").get("charges", []) if c.get("payment_id") == sub.get("id")]
print()
print(f"payment session {page.get('id')} for the hosted page: {page.get('status')}, {page.get('amount')} {page.get('currency')} "
      f"(minor units), expires_on {page.get('expires_on')}; GET of the page: HTTP {page_code}")
print(f"  hosted payment page: {page_url}")
if page_code == "404":
    print("  (this build serves no page at /pay/{token}: the hosted page's HTML, CSS and JS come with the paypage branch)")
print(f"payment session {fin.get('id')} submitted through the API with session_data sandbox:pm_card_visa: "
      f"HTTP {submit_code} {json.dumps(sub, separators=(',', ':'))}")
print(f"  session now {fin.get('status')}, payment_id {fin.get('payment_id')}; payment {tl.get('status', '?')}, sandbox charges {len(charges)}")
ok = (page_code == "200" and submit_code in ("201", "202") and fin.get("status") == "COMPLETED"
      and tl.get("status") == "SUCCEEDED" and len(charges) == 1)
print("payment sessions (the page answers; the API submit completes with one charge): " + ("PASS" if ok else "FAIL"))
sys.exit(0 if ok else 1)
EOF

python3 - "$WORK" <<'EOF' || REPORT_RC=$?
import json, sys
work = sys.argv[1]
def load(n):
    try:
        return json.load(open(f"{work}/{n}"), parse_float=str)
    except Exception:
        return {}
def text(n):
    try:
        return open(f"{work}/{n}").read().rstrip()
    except Exception:
        return ""
f = load("flow.json").get("data", {})
plan = f.get("payment_plan", {})
amounts = plan.get("amounts", {})
inv = load("flow_inv_final.json")
show, versions = text("flow_show.txt"), text("flow_versions.txt")
print()
print(f"payment flow {f.get('id')} ({f.get('type')}) settling invoice {f.get('invoice', {}).get('external_id')}: "
      f"{f.get('status')}, plan version {plan.get('version')}; invoice {inv.get('status')} {inv.get('amount_paid')}/{inv.get('amount_due')}")
print(f"\n$ payd flows show {f.get('id')}\n{show}")
# --versions prints the same tree first: show only what it adds
history = versions[versions.find("history ("):] if "history (" in versions else versions
print(f"\n$ payd flows show {f.get('id')} --versions    (the same tree, then:)\n{history}\n")
ok = (f.get("status") == "settled" and amounts.get("collected") == "10000" and amounts.get("paid_out") == "9000"
      and amounts.get("platform_remainder") == "1000" and amounts.get("shortfall") == "0"
      and all(b.get("status") == "settled" for b in plan.get("batches", []))
      and "└─ payout" in show and "history (" in versions)
print("payment flow (2 payins, then 2 payouts; the platform keeps 10.00): " +
      ("PASS" if ok else "FAIL (want settled: 100.00 collected, 90.00 paid out, 10.00 remainder, no shortfall)"))
sys.exit(0 if ok else 1)
EOF

if [[ -n "$KEEP" ]]; then
	printf '\npayd keeps running at %s (API key %s).\n' "$BASE" "$KEY"
	printf 'Open the hosted payment page in a browser (pm_card_visa succeeds, pm_card_3ds asks for a challenge, pm_card_declined is declined):\n  %s\n' "$PAGE_URL"
	printf 'Another session: curl -s %s/v1/payment-sessions -H "x-api-key: %s" -d @%s\n' "$BASE" "$KEY" "$WORK/ps_page_req.json"
	printf 'Ctrl-C stops payd and removes the demo services.\n'
	trap 'exit "$REPORT_RC"' INT TERM HUP
	wait "$PAYD_PID" || die "payd exited"
fi
exit "$REPORT_RC"
