package sandbox

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

func usd(minor int64) payment.Money { return payment.Money{Minor: minor, Currency: "USD"} }

// listAll walks every page of q and fails on a page larger than the limit
// or a walk that does not end.
func listAll(t *testing.T, gw connector.Gateway, q connector.ListQuery) ([]connector.LedgerEntry, int) {
	t.Helper()
	var all []connector.LedgerEntry
	pages := 0
	for {
		page, err := gw.List(context.Background(), q)
		if err != nil {
			t.Fatalf("List(%+v): %v", q, err)
		}
		pages++
		if q.Limit > 0 && len(page.Entries) > q.Limit {
			t.Fatalf("page %d has %d entries, limit %d", pages, len(page.Entries), q.Limit)
		}
		all = append(all, page.Entries...)
		if page.Next == "" {
			return all, pages
		}
		if pages > 10000 {
			t.Fatal("List never ends")
		}
		q.Cursor = page.Next
	}
}

// TestList: what a window holds, entry by entry, over both transports.
func TestList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			e := tr.new(t, Config{SettleDelay: time.Hour, ReturnDelay: time.Hour})
			visa := card("pay_list_visa", 1, CardVisa)
			a := must(t)(e.gw.Charge(ctx, visa))
			// nanoseconds must survive the wire: windows are exact
			e.clock.Advance(time.Second + 123456789)
			t1 := e.clock.Now()
			must(t)(e.gw.Charge(ctx, card("pay_list_declined", 1, CardDeclined)))
			voided := card("pay_list_voided", 1, Card3DS)
			must(t)(e.gw.Charge(ctx, voided))
			must(t)(e.gw.Void(ctx, voided.IdempotencyKey))
			ach := bank("pay_list_ach", 1, payment.MethodACH, BankAccountReturnedR01)
			sent := must(t)(e.gw.Charge(ctx, ach))
			e.clock.Advance(time.Second)
			t2 := e.clock.Now()
			refund := connector.RefundRequest{IdempotencyKey: "re_list", PaymentID: visa.PaymentID,
				GatewayReference: a.Reference, Amount: usd(500)}
			re := must(t)(e.gw.Refund(ctx, refund))
			if got := must(t)(e.gw.Refund(ctx, connector.RefundRequest{IdempotencyKey: "re_list_too_much",
				PaymentID: visa.PaymentID, GatewayReference: a.Reference, Amount: usd(5000)})); got.Status != connector.StatusDeclined {
				t.Fatalf("refund beyond the charge = %+v", got)
			}
			e.clock.Advance(time.Second)
			t3 := e.clock.Now()
			tds := card("pay_list_3ds", 1, Card3DS)
			pending := must(t)(e.gw.Charge(ctx, tds))
			if err := e.complete(pending.Reference, true); err != nil {
				t.Fatal(err)
			}

			want := []connector.LedgerEntry{
				{Kind: connector.EntryCharge, Reference: a.Reference, IdempotencyKey: visa.IdempotencyKey, PaymentID: visa.PaymentID,
					Amount: visa.Amount, Status: connector.StatusSucceeded, CreatedAt: t0},
				{Kind: connector.EntryCharge, Reference: sent.Reference, IdempotencyKey: ach.IdempotencyKey, PaymentID: ach.PaymentID,
					Amount: ach.Amount, Status: connector.StatusSent, CreatedAt: t1},
				{Kind: connector.EntryRefund, Reference: re.Reference, IdempotencyKey: refund.IdempotencyKey, PaymentID: visa.PaymentID,
					ChargeReference: a.Reference, Amount: usd(500), Status: connector.StatusSucceeded, CreatedAt: t2},
				{Kind: connector.EntryCharge, Reference: pending.Reference, IdempotencyKey: tds.IdempotencyKey, PaymentID: tds.PaymentID,
					Amount: tds.Amount, Status: connector.StatusSucceeded, CreatedAt: t3},
			}
			page, err := e.gw.List(ctx, connector.ListQuery{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(connector.ListPage{Entries: want}, page); diff != "" {
				t.Errorf("List of everything (-want +got):\n%s", diff)
			}
			for _, w := range []struct {
				name     string
				from, to time.Time
				want     []connector.LedgerEntry
			}{
				{"from is inclusive, to exclusive", t1, t3, want[1:3]},
				{"to at an entry leaves it out", t0, t1, want[:1]},
				{"one nanosecond more takes it in", t0, t1.Add(1), want[:2]},
				{"from only", t2, time.Time{}, want[2:]},
				{"to only", time.Time{}, t2, want[:2]},
				{"empty window", t3, t3, nil},
				{"before anything", t0.Add(-time.Hour), t0, nil},
			} {
				got, _ := listAll(t, e.gw, connector.ListQuery{From: w.from, To: w.to})
				if diff := cmp.Diff(w.want, got); diff != "" {
					t.Errorf("%s [%v, %v) (-want +got):\n%s", w.name, w.from, w.to, diff)
				}
			}
			got, pages := listAll(t, e.gw, connector.ListQuery{Limit: 1})
			if diff := cmp.Diff(want, got); diff != "" || pages != 4 {
				t.Errorf("pages of 1: %d pages (-want +got):\n%s", pages, diff)
			}

			// a bank payment's entry follows its rail; when it was created does not move
			e.clock.Set(t1.Add(time.Hour))
			want[1].Status = connector.StatusSettled
			if got, _ := listAll(t, e.gw, connector.ListQuery{}); !cmp.Equal(want, got) {
				t.Errorf("once settled (-want +got):\n%s", cmp.Diff(want, got))
			}
			e.clock.Set(t1.Add(2 * time.Hour))
			want[1].Status = connector.StatusReturned
			if got, _ := listAll(t, e.gw, connector.ListQuery{}); !cmp.Equal(want, got) {
				t.Errorf("once returned (-want +got):\n%s", cmp.Diff(want, got))
			}
		})
	}
}

// TestListPagination: pages of any size add up to the whole, in order, with
// entries that share a creation time ordered by reference, and a walk that
// goes on while new entries are booked neither repeats nor skips one.
func TestListPagination(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			e := tr.new(t, Config{})
			// booked in-process (fast), listed through the transport
			book := func(prefix string, n int) {
				t.Helper()
				for i := range n {
					req := card(fmt.Sprintf("pay_%s_%d", prefix, i), 1, CardVisa)
					res := must(t)(e.sb.Charge(ctx, req))
					if i%3 == 0 {
						must(t)(e.sb.Refund(ctx, connector.RefundRequest{IdempotencyKey: "re_" + req.PaymentID,
							PaymentID: req.PaymentID, GatewayReference: res.Reference, Amount: usd(100)}))
					}
				}
			}
			book("same_instant", 30) // 30 charges and 10 refunds at t0
			e.clock.Advance(time.Second)
			book("later", 30)

			full, pages := listAll(t, e.gw, connector.ListQuery{Limit: connector.MaxListLimit})
			if len(full) != 80 || pages != 1 {
				t.Fatalf("List: %d entries in %d pages, want 80 in 1", len(full), pages)
			}
			for i := 1; i < len(full); i++ {
				if compareKey(full[i-1].CreatedAt, full[i-1].Reference, full[i].CreatedAt, full[i].Reference) >= 0 {
					t.Fatalf("entries %d and %d out of (created, reference) order: %+v, %+v", i-1, i, full[i-1], full[i])
				}
			}
			for _, limit := range []int{1, 7, 40, 79, 80, 81} {
				got, pages := listAll(t, e.gw, connector.ListQuery{Limit: limit})
				if diff := cmp.Diff(full, got); diff != "" {
					t.Errorf("pages of %d (-whole +paged):\n%s", limit, diff)
				}
				if want := (80 + limit - 1) / limit; pages != want {
					t.Errorf("pages of %d: %d pages, want %d", limit, pages, want)
				}
			}

			// a walk during which more is booked
			first, err := e.gw.List(ctx, connector.ListQuery{Limit: 25})
			if err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Second)
			book("during_the_walk", 6) // 6 charges, 2 refunds
			rest, _ := listAll(t, e.gw, connector.ListQuery{Limit: 25, Cursor: first.Next})
			walked := append(first.Entries, rest...)
			now, _ := listAll(t, e.gw, connector.ListQuery{})
			if len(now) != 88 {
				t.Fatalf("List after the new bookings: %d entries, want 88", len(now))
			}
			if diff := cmp.Diff(now, walked); diff != "" {
				t.Errorf("walk across new bookings (-whole +walked):\n%s", diff)
			}

			// the limit's default and cap
			e.clock.Advance(time.Second)
			book("many", 1020)
			page, err := e.gw.List(ctx, connector.ListQuery{})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Entries) != connector.DefaultListLimit || page.Next == "" {
				t.Errorf("List with limit 0: %d entries, next %q; want %d and more", len(page.Entries), page.Next, connector.DefaultListLimit)
			}
			page, err = e.gw.List(ctx, connector.ListQuery{Limit: 5000})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Entries) != connector.MaxListLimit || page.Next == "" {
				t.Errorf("List with limit 5000: %d entries, next %q; want %d and more", len(page.Entries), page.Next, connector.MaxListLimit)
			}
			if !slices.EqualFunc(now, page.Entries[:len(now)], func(a, b connector.LedgerEntry) bool { return cmp.Equal(a, b) }) {
				t.Error("the first entries moved when more were booked later")
			}
		})
	}
}

// TestListRefusesBadQueries: a query List cannot serve is refused before
// anything is done, the same way over both transports.
func TestListRefusesBadQueries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			e := tr.new(t, Config{})
			must(t)(e.gw.Charge(ctx, card("pay_q", 1, CardVisa)))
			for _, c := range []struct {
				q    connector.ListQuery
				code string
			}{
				{connector.ListQuery{Cursor: "not a cursor!"}, "invalid_cursor"},
				{connector.ListQuery{Cursor: "djE"}, "invalid_cursor"},                     // "v1"
				{connector.ListQuery{Cursor: "djEueC5jaF8x"}, "invalid_cursor"},            // "v1.x.ch_1"
				{connector.ListQuery{From: t0.Add(time.Second), To: t0}, "invalid_window"}, // ends before it starts
				{connector.ListQuery{Limit: -1}, "invalid_limit"},
			} {
				_, err := e.gw.List(ctx, c.q)
				e.checkGatewayError(t, fmt.Sprintf("List(%+v)", c.q), err, payment.FailureTransient, c.code, c.code, false)
			}
		})
	}
}
