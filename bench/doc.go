// Package bench is payd's load driver and benchmark harness
// (docs/BENCHMARKS.md). cmd/paydbench wires it; nothing else imports it.
//
// It creates invoices big enough for the run and posts seed-001 payments
// against them — a mix of payment methods and outcomes (-mix), currencies
// (-currencies) and amounts (-amounts), at full speed (-n, -c) or at a
// target rate (-rate, -duration) — to a running payd (-addr, -key) or to
// payd processes it starts (--spawn), waits until every accepted payment is
// final, and checks correctness whatever the speed: nothing lost, every
// payment in its expected status, exactly one sandbox charge, of the
// payment's amount and currency, per charged payment (invariants I1 and
// I2). A failed check fails the run. With -sessions it then creates and
// submits payment sessions (seed 003, session_data sandbox:pm_card_visa)
// on the same payd and puts sessions completed/s beside card payments
// completed/s (session.go). With -flows it then creates payment flows (seed
// 000: payers by card, payees by ACH), waits until each is settled, reports
// flows settled/s, time to settled and, with --spawn, what flow:recompute
// cost from payd's own /metrics, and checks every flow's money and charges
// (flow.go).
//
// With --spawn it also measures what payd costs (CPU seconds and peak RSS of
// each payd process, asynq tasks per payment, Redis bytes per queued task),
// baselines on the same Postgres and Redis (raw durable inserts, raw asynq
// no-op tasks), a database already holding -seed-payments rows, and the
// drain of a -backlog posted while no worker runs.
//
// The files follow a run: options.go (flags), scenario.go (what is posted:
// classes, currencies, amounts, invoices), run.go (one run from flags to
// report), spawn.go and process.go (payd as child processes), load.go
// (posting), observe.go (waiting for final payments, the sandbox ledger,
// asynq's counters), baseline.go and seed.go (raw baselines and seeding),
// report.go, series.go and chart.go (figures, checks, the text report, the
// PNG), session.go (-sessions), flow.go (-flows).
//
// bench is a tool beside payd, not part of it: it sits in layer 2 with
// intake and processor and imports neither; it uses store (tenants, keys,
// payment statuses), jobs (payd's task shapes, for the Redis baseline) and
// the sandbox's ledger type. Its own SQL (seeding, the raw-insert baseline)
// goes through database/sql with the "postgres" driver that store
// registers: it never imports sqlx or lib/pq. Only cmd/paydbench imports
// bench, so the payd binary links neither it nor its chart libraries
// (internal/archtest checks both).
package bench
