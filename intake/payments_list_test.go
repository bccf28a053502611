package intake_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/payd/payd/intake"
	"github.com/payd/payd/internal/testenv"
)

// listFixture: tenant A's 12 payments with known created_at (a minute
// apart, oldest first), methods, currencies, destinations and statuses;
// tenant B's one payment, which A's lists must never show. The deepest
// offset is 9, so that the tests reach it with a dozen payments.
type listFixture struct {
	h      *testenv.Harness
	ids    []string // oldest first
	base   time.Time
	failed []string // canceled: seed 001's FAILED
	ach    []string
	eur    []string
	other  string // tenant B's
}

const testMaxOffset = 9

func newListFixture(t *testing.T) *listFixture {
	t.Helper()
	h := testenv.Start(t, testenv.Options{NoWorker: true, Intake: intake.Config{ListMaxOffset: testMaxOffset}})
	fx := &listFixture{h: h, base: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	invoice(t, h, h.KeyA, "inv_eur", "EUR", maxUSD)
	invoice(t, h, h.KeyB, "inv_1", "USD", maxUSD)
	for i := range 12 {
		var r testenv.Response
		switch {
		case i%4 == 1:
			r = h.Do("POST", "/v1/payments", h.KeyA, paymentBodyTo(testenv.TestInvoice, `"1.00"`, "USD", "ACH", "ba_10001"), nil)
		case i%4 == 2:
			r = h.Do("POST", "/v1/payments", h.KeyA, paymentBodyTo("inv_eur", `"1.00"`, "EUR", "CARD", "pm_card_visa"), nil)
		default:
			r = h.Do("POST", "/v1/payments", h.KeyA, paymentBodyTo(testenv.TestInvoice, `"1.00"`, "USD", "CARD", "pm_card_visa"), nil)
		}
		id := jsonObj(t, r, http.StatusCreated)["id"].(string)
		fx.ids = append(fx.ids, id)
		switch i % 4 {
		case 1:
			fx.ach = append(fx.ach, id)
		case 2:
			fx.eur = append(fx.eur, id)
		}
		if _, err := h.Store.DB().Exec(`UPDATE payments SET created_at = $2 WHERE id = $1`, id, fx.base.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{3, 7} {
		jsonObj(t, h.Do("POST", "/v1/payments/"+fx.ids[i]+"/cancel", h.KeyA, nil, nil), http.StatusOK)
		fx.failed = append(fx.failed, fx.ids[i])
	}
	if _, err := h.Store.DB().Exec(`UPDATE payments SET gateway_reference = 'ch_listed' WHERE id = $1`, fx.ids[5]); err != nil {
		t.Fatal(err)
	}
	fx.other = jsonObj(t, h.Do("POST", "/v1/payments", h.KeyB, paymentBody(`"1.00"`, "USD", "CARD", "pm_card_visa"), nil), http.StatusCreated)["id"].(string)
	return fx
}

// newest is ids newest first.
func newest(ids []string) []string {
	out := slices.Clone(ids)
	slices.Reverse(out)
	return out
}

// pageInfo is the vendor's pagination (and payd's two fields).
type pageInfo struct {
	Total, Limit, Offset int
	TotalExact, HasMore  bool
}

type offsetPage struct {
	ids []string
	pageInfo
}

// offsetList GETs /v1/payments?query as A: the vendor's shape.
func (fx *listFixture) offsetList(t *testing.T, query string) offsetPage {
	t.Helper()
	r := fx.h.Do("GET", "/v1/payments?"+query, fx.h.KeyA, nil, nil)
	var body struct {
		Object     *string
		Items      []struct{ ID string }
		Pagination struct {
			Total, Limit, Offset int
			TotalExact           bool `json:"total_exact"`
			HasMore              bool `json:"has_more"`
		}
	}
	if r.Status != http.StatusOK {
		t.Fatalf("%s: %d %s", query, r.Status, r.Body)
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || body.Object != nil {
		t.Fatalf("%s: not the vendor's shape (%v): %s", query, err, r.Body)
	}
	p := offsetPage{pageInfo: pageInfo(body.Pagination)}
	for _, it := range body.Items {
		p.ids = append(p.ids, it.ID)
	}
	return p
}

// TestListPaymentsOffset: the vendor's convention — defaults, a walk by
// offset in both orders that sees every payment once, total and has_more.
func TestListPaymentsOffset(t *testing.T) {
	t.Parallel()
	fx := newListFixture(t)
	p := fx.offsetList(t, "")
	diff(t, "default page", newest(fx.ids), p.ids)
	diff(t, "default pagination", pageInfo{Total: 12, Limit: 50, TotalExact: true}, p.pageInfo)

	for _, order := range []string{"desc", "asc"} {
		t.Run("walk "+order, func(t *testing.T) {
			want := newest(fx.ids)
			if order == "asc" {
				want = fx.ids
			}
			var walked []string
			for off := 0; ; off += 3 {
				if off > testMaxOffset {
					t.Fatalf("walked past the offset cap: %v", walked)
				}
				p := fx.offsetList(t, fmt.Sprintf("limit=3&offset=%d&sort=created_at&order=%s", off, order))
				if p.Total != 12 || !p.TotalExact || p.Limit != 3 || p.Offset != off {
					t.Errorf("offset %d: pagination %+v", off, p)
				}
				walked = append(walked, p.ids...)
				if p.HasMore != (off+3 < 12) {
					t.Errorf("offset %d: has_more %v", off, p.HasMore)
				}
				if !p.HasMore {
					break
				}
			}
			diff(t, "walked ("+order+")", want, walked)
		})
	}
	t.Run("past the end", func(t *testing.T) {
		p := fx.offsetList(t, "offset=9&limit=50")
		diff(t, "last three", newest(fx.ids)[9:], p.ids)
		if p.Total != 12 || !p.TotalExact || p.HasMore {
			t.Errorf("pagination %+v", p)
		}
		p = fx.offsetList(t, "offset=9&payment_status=FAILED")
		if len(p.ids) != 0 || p.Total != 2 || !p.TotalExact {
			t.Errorf("an offset past the filter's two: %+v", p)
		}
	})
	t.Run("deep offset", func(t *testing.T) {
		r := fx.h.Do("GET", "/v1/payments?offset=10", fx.h.KeyA, nil, nil)
		e := checkEnvelope(t, r, http.StatusUnprocessableEntity, "offset_too_deep")
		if e.Fields["offset"] != "offset_too_deep" || !strings.Contains(e.Message, "starting_after") {
			t.Errorf("fields = %v, message %q", e.Fields, e.Message)
		}
		checkEnvelope(t, fx.h.Do("GET", "/v1/payments?offset=99999999999999999999", fx.h.KeyA, nil, nil),
			http.StatusUnprocessableEntity, "offset_too_deep")
		// the cursor reaches what offsets do not
		m := jsonObj(t, fx.h.Do("GET", "/v1/payments?limit=5&starting_after="+newest(fx.ids)[9], fx.h.KeyA, nil, nil), http.StatusOK)
		if d := m["data"].([]any); len(d) != 2 {
			t.Errorf("after the tenth: %d", len(d))
		}
	})
	t.Run("total stops counting", func(t *testing.T) {
		// limit 1: offsets reach 10 payments, the count stops at 11
		p := fx.offsetList(t, "limit=1")
		if p.Total != testMaxOffset+1+1 || p.TotalExact || !p.HasMore || len(p.ids) != 1 {
			t.Errorf("pagination %+v", p)
		}
		// a filter that matches few is counted exactly
		p = fx.offsetList(t, "limit=1&payment_method_type=ACH")
		if p.Total != 3 || !p.TotalExact || !p.HasMore {
			t.Errorf("ACH: %+v", p)
		}
	})
}

// TestListPaymentsFilters: each filter of the vendor's ListPaymentsRequest,
// in the vendor's shape and with payd's cursor.
func TestListPaymentsFilters(t *testing.T) {
	t.Parallel()
	fx := newListFixture(t)
	at := func(i int) string {
		return url.QueryEscape(fx.base.Add(time.Duration(i) * time.Minute).Format(time.RFC3339))
	}
	all := newest(fx.ids)
	pick := func(idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, fx.ids[i])
		}
		return newest(out)
	}
	notFailed := slices.DeleteFunc(slices.Clone(all), func(id string) bool { return slices.Contains(fx.failed, id) })
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"payment_status=FAILED", newest(fx.failed)},
		{"payment_status=PENDING", notFailed},
		{"payment_status=SUCCEEDED", nil},
		{"payment_status=VOIDED", nil}, // the vendor's; payd never shows it
		{"status=FAILED", newest(fx.failed)},
		{"status=published", all},
		{"status=FAILED&payment_status=PENDING", nil},
		{"payment_method_type=ACH", newest(fx.ach)},
		{"payment_method_type=CARD&currency=EUR", newest(fx.eur)},
		{"payment_method_type=PAYMENT_LINK", nil},
		{"destination_type=INVOICE", all},
		{"destination_type=AUTH", nil},
		{"destination_id=inv_eur", newest(fx.eur)},
		{"destination_id=nothing", nil},
		{"currency=eur", newest(fx.eur)},
		{"currency=GBP", nil},
		{"payment_ids=" + fx.ids[0] + "," + fx.ids[4] + "," + fx.other, pick(0, 4)},
		{"payment_ids=" + fx.ids[0] + "&payment_ids=" + fx.ids[4], pick(0, 4)},
		// exactly as @flexprice/sdk 2.0.1 sends an array (explode: false, the comma percent-encoded)
		{"payment_ids=" + fx.ids[0] + "%2C" + fx.ids[4] + "&limit=10&offset=0&order=desc&sort=created_at&status=published", pick(0, 4)},
		{"start_time=" + at(9), pick(9, 10, 11)},
		{"end_time=" + at(2), pick(0, 1, 2)},
		{"start_time=" + at(3) + "&end_time=" + at(5), pick(3, 4, 5)},
		{"start_time=" + url.QueryEscape("2026-03-01T13:03:30+01:00"), pick(4, 5, 6, 7, 8, 9, 10, 11)},
		{"gateway_payment_id=ch_listed", pick(5)},
		{"gateway_tracking_id=cs_any", nil},
		{"payment_gateway=SANDBOX", all},
		{"payment_gateway=sandbox&payment_method_type=OFFLINE", nil},
		{"payment_gateway=stripe", nil},
		{"expand=attempts", all},
		{"sort=created_at&order=asc&payment_method_type=ACH", fx.ach},
	} {
		t.Run(c.query, func(t *testing.T) {
			p := fx.offsetList(t, c.query)
			diff(t, "items", c.want, p.ids)
			if p.Total != len(c.want) || !p.TotalExact {
				t.Errorf("total %d exact %v, want %d", p.Total, p.TotalExact, len(c.want))
			}
			// the same filter with payd's cursor
			m := jsonObj(t, fx.h.Do("GET", "/v1/payments?starting_after=&"+c.query, fx.h.KeyA, nil, nil), http.StatusOK)
			var got []string
			for _, d := range m["data"].([]any) {
				got = append(got, d.(map[string]any)["id"].(string))
			}
			diff(t, "cursor data", c.want, got)
		})
	}
}

// TestListPaymentsCursor: starting_after chooses payd's list, which walks
// every payment once with a filter and in both orders; offset is refused
// beside it.
func TestListPaymentsCursor(t *testing.T) {
	t.Parallel()
	fx := newListFixture(t)
	walk := func(query string) []string {
		var out []string
		after := ""
		for range 20 {
			m := jsonObj(t, fx.h.Do("GET", "/v1/payments?limit=2&starting_after="+after+query, fx.h.KeyA, nil, nil), http.StatusOK)
			if m["object"] != "list" {
				t.Fatalf("object = %v", m["object"])
			}
			d := m["data"].([]any)
			for _, it := range d {
				out = append(out, it.(map[string]any)["id"].(string))
			}
			if m["has_more"] != true {
				return out
			}
			after = out[len(out)-1]
		}
		t.Fatalf("no end: %v", out)
		return nil
	}
	diff(t, "newest first", newest(fx.ids), walk(""))
	diff(t, "oldest first", fx.ids, walk("&order=asc"))
	notFailed := slices.DeleteFunc(newest(fx.ids), func(id string) bool { return slices.Contains(fx.failed, id) })
	diff(t, "PENDING", notFailed, walk("&payment_status=PENDING"))
	checkEnvelope(t, fx.h.Do("GET", "/v1/payments?starting_after=&offset=2", fx.h.KeyA, nil, nil),
		http.StatusUnprocessableEntity, "offset_with_starting_after")
	checkEnvelope(t, fx.h.Do("GET", "/v1/payments?starting_after="+fx.other, fx.h.KeyA, nil, nil),
		http.StatusUnprocessableEntity, "starting_after_not_found")
}

// TestListPaymentsTenant: each tenant lists, counts and filters its own
// payments only, whatever it names.
func TestListPaymentsTenant(t *testing.T) {
	t.Parallel()
	fx := newListFixture(t)
	h := fx.h
	for _, q := range []string{"", "payment_ids=" + fx.ids[0] + "," + fx.ids[1], "destination_id=" + testenv.TestInvoice,
		"limit=1&offset=3", "currency=USD"} {
		m := jsonObj(t, h.Do("GET", "/v1/payments?"+q, h.KeyB, nil, nil), http.StatusOK)
		var ids []string
		for _, it := range m["items"].([]any) {
			ids = append(ids, it.(map[string]any)["id"].(string))
		}
		for _, id := range ids {
			if id != fx.other {
				t.Errorf("%q: B lists %s", q, id)
			}
		}
		total := fmt.Sprint(m["pagination"].(map[string]any)["total"])
		if strings.Contains(q, "payment_ids") && (len(ids) != 0 || total != "0") {
			t.Errorf("%q: B sees A's ids: %s", q, ids)
		}
		if q == "" && total != "1" {
			t.Errorf("B's total = %s, want 1", total)
		}
	}
	p := fx.offsetList(t, "payment_ids="+fx.other)
	if len(p.ids) != 0 || p.Total != 0 {
		t.Errorf("A sees B's payment: %+v", p)
	}
}

// TestListPaymentsBadInput: every bad parameter is a 422 naming it, in the
// error envelope; several at once name each.
func TestListPaymentsBadInput(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	for _, c := range []struct{ query, field, code string }{
		{"limit=0", "limit", "limit_invalid"},
		{"limit=1001", "limit", "limit_invalid"},
		{"limit=ten", "limit", "limit_invalid"},
		{"starting_after=&limit=101", "limit", "limit_invalid"},
		{"offset=-1", "offset", "offset_invalid"},
		{"offset=1e3", "offset", "offset_invalid"},
		{"offset=10001", "offset", "offset_too_deep"},
		{"starting_after=&offset=1", "offset", "offset_with_starting_after"},
		{"status=deleted", "status", "status_unsupported"},
		{"status=archived", "status", "status_unsupported"},
		{"status=Published", "status", "status_invalid"},
		{"payment_status=failed", "payment_status", "payment_status_invalid"},
		{"payment_status=CANCELED", "payment_status", "payment_status_invalid"},
		{"payment_method_type=WIRE", "payment_method_type", "payment_method_type_invalid"},
		{"payment_method_type=card", "payment_method_type", "payment_method_type_invalid"},
		{"destination_type=invoice", "destination_type", "destination_type_invalid"},
		{"destination_id=" + strings.Repeat("x", 256), "destination_id", "destination_id_too_long"},
		{"destination_id=a%00b", "destination_id", "destination_id_invalid_characters"},
		{"currency=US", "currency", "currency_invalid"},
		{"currency=ZZZ", "currency", "currency_unknown"},
		{"payment_ids=pay_a,,pay_b", "payment_ids", "payment_ids_invalid"},
		{"payment_ids=" + strings.Repeat("x", 101), "payment_ids", "payment_ids_invalid"},
		{"payment_ids=pay_%FF", "payment_ids", "payment_ids_invalid"},
		{"payment_ids=" + strings.Repeat("p,", 1000) + "p", "payment_ids", "payment_ids_too_many"},
		{"start_time=2026-03-01", "start_time", "start_time_invalid"},
		{"end_time=yesterday", "end_time", "end_time_invalid"},
		{"start_time=2026-03-02T00:00:00Z&end_time=2026-03-01T00:00:00Z", "end_time", "end_time_before_start_time"},
		{"sort=amount", "sort", "sort_unsupported"},
		{"order=ASC", "order", "order_invalid"},
		{"expand=" + strings.Repeat("e", 256), "expand", "expand_too_long"},
		{"gateway_payment_id=%01", "gateway_payment_id", "gateway_payment_id_invalid_characters"},
		{"payment_gateway=" + strings.Repeat("g", 256), "payment_gateway", "payment_gateway_too_long"},
	} {
		t.Run(c.query, func(t *testing.T) {
			t.Parallel()
			e := checkEnvelope(t, h.Do("GET", "/v1/payments?"+c.query, h.KeyA, nil, nil), http.StatusUnprocessableEntity, c.code)
			if e.Fields[c.field] != c.code {
				t.Errorf("fields = %v, want %s: %s", e.Fields, c.field, c.code)
			}
		})
	}
	e := checkEnvelope(t, h.Do("GET", "/v1/payments?limit=0&offset=-2&order=up&currency=1", h.KeyA, nil, nil),
		http.StatusUnprocessableEntity, "limit_invalid")
	diff(t, "every bad field", map[string]string{"limit": "limit_invalid", "offset": "offset_invalid",
		"order": "order_invalid", "currency": "currency_invalid"}, e.Fields)
}
