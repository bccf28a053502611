package sandbox

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// errBadQuery marks a List refused for its query (cursor, window, limit):
// nothing was done, and over HTTP it is a 400.
var errBadQuery = errors.New("sandbox: bad list query")

func badQuery(code, msg string) *connector.Error {
	return &connector.Error{Class: payment.FailureTransient, Code: code, MaybeProcessed: false,
		Err: fmt.Errorf("%w: %s", errBadQuery, msg)}
}

// List implements connector.Gateway: every ledger charge (card charges
// captured, bank payments sent, with their rail status now) and every
// refund that succeeded, created in [q.From, q.To), ordered by (CreatedAt,
// Reference). The cursor names the last entry of the previous page, so a
// page never repeats or skips an entry, even while new ones are booked. A
// malformed cursor, a window that ends before it starts or a negative limit
// is refused (Code invalid_cursor, invalid_window, invalid_limit; not
// processed). pm_card_unknown charges are listed like any other: the
// gateway's records know of them even while its API does not answer.
func (s *Sandbox) List(ctx context.Context, q connector.ListQuery) (connector.ListPage, error) {
	if err := s.arrive(ctx); err != nil {
		return connector.ListPage{}, err
	}
	after, err := parseCursor(q.Cursor)
	if err != nil {
		return connector.ListPage{}, badQuery("invalid_cursor", err.Error())
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		return connector.ListPage{}, badQuery("invalid_window", "to is before from")
	}
	limit := q.Limit
	switch {
	case limit < 0:
		return connector.ListPage{}, badQuery("invalid_limit", "limit must be ≥ 0")
	case limit == 0:
		limit = connector.DefaultListLimit
	case limit > connector.MaxListLimit:
		limit = connector.MaxListLimit
	}
	in := func(t time.Time, ref string) bool {
		return !t.Before(q.From) && (q.To.IsZero() || t.Before(q.To)) &&
			(after == nil || compareKey(t, ref, after.at, after.ref) > 0)
	}

	s.mu.Lock()
	var out []connector.LedgerEntry
	for _, c := range s.ledger {
		if !in(c.At, c.Reference) {
			continue
		}
		status := connector.StatusSucceeded
		if rec := s.byRef[c.Reference]; rec != nil && rec.bank {
			status = s.railStatusLocked(rec).Status
		}
		out = append(out, connector.LedgerEntry{Kind: connector.EntryCharge, Reference: c.Reference,
			IdempotencyKey: c.Key, PaymentID: c.PaymentID,
			Amount: payment.Money{Minor: c.Amount, Currency: c.Currency}, Status: status, CreatedAt: c.At})
	}
	for _, r := range s.refunded {
		if !in(r.at, r.result.Reference) {
			continue
		}
		out = append(out, connector.LedgerEntry{Kind: connector.EntryRefund, Reference: r.result.Reference,
			IdempotencyKey: r.req.IdempotencyKey, PaymentID: r.req.PaymentID, ChargeReference: r.req.GatewayReference,
			Amount: r.req.Amount, Status: r.result.Status, CreatedAt: r.at})
	}
	s.mu.Unlock()

	slices.SortFunc(out, func(a, b connector.LedgerEntry) int {
		return compareKey(a.CreatedAt, a.Reference, b.CreatedAt, b.Reference)
	})
	var page connector.ListPage
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		page.Next = formatCursor(last.CreatedAt, last.Reference)
	}
	page.Entries = out
	return page, nil
}

func compareKey(at time.Time, ref string, bt time.Time, bref string) int {
	if c := at.Compare(bt); c != 0 {
		return c
	}
	return cmp.Compare(ref, bref)
}

// A cursor is the (CreatedAt, Reference) of the last entry a page returned,
// opaque to callers: base64url of "v1.<unix nanoseconds>.<reference>".
type cursor struct {
	at  time.Time
	ref string
}

func formatCursor(at time.Time, ref string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("v1." + strconv.FormatInt(at.UnixNano(), 10) + "." + ref))
}

func parseCursor(s string) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("cursor is not one this gateway gave")
	}
	parts := strings.SplitN(string(raw), ".", 3)
	if len(parts) != 3 || parts[0] != "v1" || parts[2] == "" {
		return nil, errors.New("cursor is not one this gateway gave")
	}
	ns, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return nil, errors.New("cursor is not one this gateway gave")
	}
	return &cursor{at: time.Unix(0, ns).UTC(), ref: parts[2]}, nil
}
