package intake

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// GET /v1/payments answers two conventions from one filter.
//
//   - The seed-001 vendor's (its official client's listPayments): limit
//     (1–1000, default 50) and offset (0–Config.ListMaxOffset, default
//     10,000; deeper is 422 offset_too_deep), answered as
//     {items, pagination: {total, limit, offset, total_exact, has_more}}.
//   - payd's cursor, for walking a large table to its end: a query with a
//     starting_after parameter (empty for the first page) pages with limit
//     (1–100, default 20) after that payment, answered as payd's every list
//     {object: "list", data, has_more}.
//
// The shape is chosen by the presence of starting_after alone: a request
// without it is the vendor's client's (which sends no parameter when given
// none). Both take the same filters and order.
//
// pagination.total counts the matching payments, reading at most
// ListMaxOffset+limit+1 of them: when the page is the last one it is
// offset+len(items), exact with no count; otherwise a count that stops
// there. total_exact is false when it stopped: total is then a floor, and
// the rows past it are reachable only by the cursor. An exact count over a
// million payments reads a million index entries on every request.

// DefaultListMaxOffset is Config.ListMaxOffset's default.
const DefaultListMaxOffset = 10_000

const (
	offsetDefaultLimit = 50   // the vendor's default page
	offsetMaxLimit     = 1000 // the vendor's largest page
	maxPaymentIDs      = 1000 // payment_ids in one filter
)

type offsetListResponse struct {
	Items      any        `json:"items"`
	Pagination pagination `json:"pagination"`
}

type pagination struct {
	Total      int  `json:"total"`
	Limit      int  `json:"limit"`
	Offset     int  `json:"offset"`
	TotalExact bool `json:"total_exact"`
	HasMore    bool `json:"has_more"`
}

// statusEntity is the vendor's status filter: an object's lifecycle
// (published, deleted, archived), not a payment's. Every listed payment is
// published; a deleted payment (DELETE /v1/payments/{id}) is never listed,
// so deleted and archived are refused.
var statusEntity = map[string]bool{"published": true, "deleted": false, "archived": false}

// vendorOnly are filter values of the vendor's API that payd never records:
// a filter on one is valid and matches nothing.
var vendorOnly = map[string]map[string]bool{
	"payment_status":      {"INITIATED": true, "OVERPAID": true, "VOIDED": true},
	"payment_method_type": {"PAYMENT_LINK": true},
	"destination_type":    {"AUTH": true},
}

func (s *Server) handleListPayments(w http.ResponseWriter, r *http.Request) error {
	p := principal(r.Context())
	vals := r.URL.Query()
	_, cursor := vals["starting_after"]
	f := store.ListFilter{TenantID: p.TenantID, Surface: surfacePayments}
	var q listQuery // the cursor convention's limit and starting_after
	var bad map[string]string
	if cursor {
		q = parseListQuery(r)
		f.Limit, f.StartingAfter, bad = q.limit, q.after, q.bad
		// a cursor page skips nothing: offset 0 is no skip, any other is
		// a request of the other convention
		if o := vals.Get("offset"); o != "" && o != "0" {
			bad["offset"] = "offset_with_starting_after"
		}
	} else {
		bad = map[string]string{}
		f.Limit, f.Offset = offsetPage(vals, s.cfg.ListMaxOffset, bad)
	}
	paymentFilter(vals, s.cfg.NotifyGateway, &f, bad)
	if len(bad) > 0 {
		e := validation(bad)
		if bad["offset"] == "offset_too_deep" {
			e.Message += fmt.Sprintf(" (offset paging stops at %d: page further with starting_after, "+
				"the id of the last payment seen)", s.cfg.ListMaxOffset)
		}
		return e
	}
	if cursor {
		return writeList(w, r, q, func(ctx context.Context, id string) (bool, error) {
			return s.store.PaymentExists(ctx, p.TenantID, id)
		}, func(ctx context.Context) ([]payment.Payment, bool, error) {
			return s.store.ListPayments(ctx, f)
		}, toPaymentResponse)
	}
	items, more, err := s.store.ListPayments(r.Context(), f)
	if err != nil {
		return err
	}
	pg := pagination{Total: f.Offset + len(items), Limit: f.Limit, Offset: f.Offset, TotalExact: true, HasMore: more}
	if more || (len(items) == 0 && f.Offset > 0) {
		upTo := s.cfg.ListMaxOffset + f.Limit + 1
		n, err := s.store.CountPayments(r.Context(), f, upTo)
		if err != nil {
			return err
		}
		pg.Total, pg.TotalExact = n, n < upTo
		// the page and the count are two statements: a payment removed
		// between them never makes total less than the page shows
		if len(items) > 0 {
			least := f.Offset + len(items)
			if more {
				least++
			}
			pg.Total = max(pg.Total, least)
		}
	}
	out := make([]paymentResponse, len(items))
	for i, it := range items {
		out[i] = toPaymentResponse(it)
	}
	writeJSON(w, http.StatusOK, offsetListResponse{Items: out, Pagination: pg})
	return nil
}

// offsetPage reads the vendor's limit and offset.
func offsetPage(vals url.Values, maxOffset int, bad map[string]string) (limit, offset int) {
	limit = offsetDefaultLimit
	if l := vals.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > offsetMaxLimit {
			bad["limit"] = "limit_invalid"
		}
		limit = n
	}
	if o := vals.Get("offset"); o != "" {
		n, err := strconv.Atoi(o)
		switch {
		case err != nil && !allDigits(o), n < 0:
			bad["offset"] = "offset_invalid"
		case err != nil || n > maxOffset:
			// a number, past what offset paging reaches
			bad["offset"] = "offset_too_deep"
		}
		offset = n
	}
	return limit, offset
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// paymentFilter reads every filter of the vendor's ListPaymentsRequest and
// payd's status into f, with one error code per bad parameter.
func paymentFilter(vals url.Values, gateway string, f *store.ListFilter, bad map[string]string) {
	text := func(name string) string {
		v := vals.Get(name)
		if code := checkText(&v, false, 255); code != "" {
			bad[name] = name + "_" + code
		}
		return v
	}
	// status: payd's seed-001 payment words, or the vendor's entity status
	var statuses []payment.Status
	restrict := func(ss []payment.Status) {
		if statuses == nil {
			statuses = ss
			return
		}
		statuses = slices.DeleteFunc(statuses, func(s payment.Status) bool { return !slices.Contains(ss, s) })
		if len(statuses) == 0 {
			f.None = true
		}
	}
	if st := vals.Get("status"); st != "" {
		switch published, entity := statusEntity[st]; {
		case entity && !published:
			bad["status"] = "status_unsupported"
		case entity:
		default:
			ss := payment.PaymentsStatusesNamed(st)
			if len(ss) == 0 {
				bad["status"] = "status_invalid"
			}
			restrict(ss)
		}
	}
	if st := vals.Get("payment_status"); st != "" {
		ss := payment.PaymentsStatusesNamed(st)
		switch {
		case vendorOnly["payment_status"][st]:
			f.None = true
		case len(ss) == 0:
			bad["payment_status"] = "payment_status_invalid"
		}
		restrict(ss)
	}
	f.Statuses = statuses
	if m := vals.Get("payment_method_type"); m != "" {
		pm, ok := paymentMethods[m]
		switch {
		case vendorOnly["payment_method_type"][m]:
			f.None = true
		case !ok:
			bad["payment_method_type"] = "payment_method_type_invalid"
		}
		f.Methods = []payment.Method{pm}
	}
	if dt := vals.Get("destination_type"); dt != "" {
		switch {
		case vendorOnly["destination_type"][dt]:
			f.None = true
		case dt != "INVOICE":
			bad["destination_type"] = "destination_type_invalid"
		}
		f.DestinationType = dt
	}
	f.DestinationID = text("destination_id")
	if c, ok := vals["currency"]; ok && c[0] != "" {
		cur := currencyCode(&c[0])
		if code := checkCurrency(cur); code != "" {
			bad["currency"] = code
		}
		f.Currency = cur
	}
	for _, v := range vals["payment_ids"] {
		// the vendor's client joins them with commas; repeated keys work too
		for id := range strings.SplitSeq(v, ",") {
			if id == "" || !validID(id) {
				bad["payment_ids"] = "payment_ids_invalid"
				continue
			}
			f.IDs = append(f.IDs, id)
		}
	}
	if len(f.IDs) > maxPaymentIDs {
		bad["payment_ids"] = "payment_ids_too_many"
	}
	f.CreatedFrom = timeParam(vals, "start_time", bad)
	f.CreatedTo = timeParam(vals, "end_time", bad)
	if f.CreatedFrom != nil && f.CreatedTo != nil && f.CreatedTo.Before(*f.CreatedFrom) {
		bad["end_time"] = "end_time_before_start_time"
	}
	if so := vals.Get("sort"); so != "" && so != "created_at" {
		bad["sort"] = "sort_unsupported"
	}
	switch vals.Get("order") {
	case "", "desc":
	case "asc":
		f.Ascending = true
	default:
		bad["order"] = "order_invalid"
	}
	// expand: every payment already carries its attempts, the one thing
	// the vendor expands on a payment; accepted and checked, nothing to do.
	text("expand")
	f.GatewayReference = text("gateway_payment_id")
	// payd records no gateway tracking id (the vendor's checkout session):
	// a filter on one matches nothing.
	if text("gateway_tracking_id") != "" {
		f.None = true
	}
	// One gateway per deployment: it moved the money of every CARD and ACH
	// payment; OFFLINE and CREDITS went through none.
	if g := text("payment_gateway"); g != "" {
		if !strings.EqualFold(g, gateway) {
			f.None = true
		}
		gw := []payment.Method{payment.MethodCard, payment.MethodACH}
		if f.Methods != nil {
			gw = slices.DeleteFunc(gw, func(m payment.Method) bool { return !slices.Contains(f.Methods, m) })
		}
		if len(gw) == 0 {
			f.None = true
		}
		f.Methods = gw
	}
}

// timeParam reads an RFC 3339 time.
func timeParam(vals url.Values, name string, bad map[string]string) *time.Time {
	v := vals.Get(name)
	if v == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		bad[name] = name + "_invalid"
		return nil
	}
	t = t.UTC()
	return &t
}
