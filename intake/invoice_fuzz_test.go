package intake

import (
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/payd/payd/payment"
)

const validInvoiceBody = `{"external_id":"INV-1","currency":"USD","amount_due":"100.00","payer":{"external_id":"c1"},` +
	`"payees":[{"external_id":"p2","amount":30},{"external_id":"p1","amount":"20.50"}],"due_date":"2026-12-31","metadata":{"a":"b"}}`

var invoiceSeeds = []decodeSeed{
	{"valid", validInvoiceBody, 0, ""},
	{"minimal", `{"external_id":"i","currency":"JPY","amount_due":1500}`, 0, ""},
	{"BHD", `{"external_id":"i","currency":"BHD","amount_due":"1.234","payees":[{"external_id":"p","amount":"1.234"}]}`, 0, ""},
	{"null payer and payees", `{"external_id":"i","currency":"USD","amount_due":1,"payer":null,"payees":null,"due_date":null}`, 0, ""},
	{"max", `{"external_id":"i","currency":"USD","amount_due":"1000000000000.00"}`, 0, ""},
	{"above max", `{"external_id":"i","currency":"USD","amount_due":"1000000000000.01"}`, 422, "amount_due_too_large"},
	{"overflow", `{"external_id":"i","currency":"USD","amount_due":"92233720368547758.08"}`, 422, "amount_due_out_of_range"},
	{"exponent", `{"external_id":"i","currency":"USD","amount_due":1e2}`, 422, "amount_due_exponent_not_allowed"},
	{"zero", `{"external_id":"i","currency":"USD","amount_due":0}`, 422, "amount_due_must_be_positive"},
	{"payees sum", `{"external_id":"i","currency":"USD","amount_due":1,"payees":[{"external_id":"p","amount":"1.01"}]}`, 422, "payees_exceed_amount_due"},
	{"payees duplicate", `{"external_id":"i","currency":"USD","amount_due":9,"payees":[{"external_id":"p","amount":1},{"external_id":"p","amount":1}]}`, 422, "payees_duplicate_external_id"},
	{"payee case-variant member", `{"external_id":"i","currency":"USD","amount_due":9,"payees":[{"external_id":"p","Amount":1}]}`, 422, "unknown_field"},
	{"payer NUL", `{"external_id":"i","currency":"USD","amount_due":9,"payer":{"external_id":"a\u0000"}}`, 422, "string_contains_nul"},
	{"due date", `{"external_id":"i","currency":"USD","amount_due":9,"due_date":"2026-02-29"}`, 422, "due_date_invalid"},
	{"due date type", `{"external_id":"i","currency":"USD","amount_due":9,"due_date":[]}`, 422, "due_date_invalid_type"},
	{"RTL", `{"external_id":"i\u202e","currency":"USD","amount_due":9}`, 422, "external_id_invalid_characters"},
	{"duplicate key", `{"external_id":"i","external_id":"j","currency":"USD","amount_due":9}`, 400, "body_duplicate_key"},
	{"malformed", `{"external_id":`, 400, "body_malformed"},
	{"array", `[]`, 400, "body_not_object"},
	{"deep", `{"metadata":` + strings.Repeat(`{"a":`, 20) + `1` + strings.Repeat(`}`, 20) + `}`, 400, "body_too_deep"},
}

// decodeInvoice is what handleCreateInvoice does with a body before any I/O.
func decodeInvoice(body []byte, maxAmount int64) (validInvoice, error) {
	return checkBody(body, &createInvoiceRequest{}, limits{maxAmount: maxAmount})
}

func TestDecodeInvoiceSeeds(t *testing.T) {
	t.Parallel()
	for _, s := range invoiceSeeds {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeInvoice([]byte(s.body), fuzzMaxAmount)
			if s.status == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ae *apiError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T), want an *apiError", err, err)
			}
			if ae.Status != s.status || !contains(ae.Codes, s.code) {
				t.Errorf("got %d %v, want %d %s", ae.Status, ae.Codes, s.status, s.code)
			}
		})
	}
	// The normalized form, which the fingerprint covers.
	v, err := decodeInvoice([]byte(validInvoiceBody), fuzzMaxAmount)
	if err != nil {
		t.Fatal(err)
	}
	want := validInvoice{ExternalID: "INV-1", AmountDue: payment.Money{Minor: 10000, Currency: "USD"}, Payer: "c1",
		Payees: []validPayee{{"p1", 2050}, {"p2", 3000}}, DueDate: "2026-12-31", Metadata: map[string]string{"a": "b"}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("normalized = %+v, want %+v", v, want)
	}
	same, err := decodeInvoice([]byte(`{"metadata":{"a":"b"},"due_date":"2026-12-31","payees":[{"external_id":"p1","amount":20.5},`+
		`{"amount":"30.00","external_id":"p2"}],"payer":{"external_id":"c1"},"amount_due":100,"currency":"USD","external_id":"INV-1"}`), fuzzMaxAmount)
	if err != nil || string(fingerprint("r", same)) != string(fingerprint("r", v)) {
		t.Errorf("the same invoice written otherwise has another fingerprint (%v)", err)
	}
}

// FuzzDecodeInvoice: for any bytes, decoding and validating an invoice
// create body never panics, refuses only with a complete 4xx *apiError, and
// accepts only what the schema can hold: known members, a positive amount
// due within bounds, distinct payees sorted, each paid something, together
// no more than the amount due, and a real calendar date.
func FuzzDecodeInvoice(f *testing.F) {
	for _, s := range invoiceSeeds {
		f.Add([]byte(s.body))
	}
	known := jsonFields(reflect.TypeFor[createInvoiceRequest]())
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := decodeInvoice(body, fuzzMaxAmount)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T) is not an *apiError", err, err)
			}
			if ae.Status < 400 || ae.Status > 499 || len(ae.Codes) == 0 || ae.Message == "" || !utf8.ValidString(ae.Message) {
				t.Fatalf("refusal %+v is not a complete 4xx", ae)
			}
			if ae.Status == 422 && len(ae.Fields) == 0 {
				t.Fatalf("a 422 names no field: %+v", ae)
			}
			if _, err := json.Marshal(errorBody{ErrorCodes: ae.Codes, Message: ae.Message, Fields: ae.Fields}); err != nil {
				t.Fatalf("envelope does not encode: %v", err)
			}
			return
		}
		var members map[string]json.RawMessage
		if !utf8.Valid(body) || json.Unmarshal(body, &members) != nil {
			t.Fatalf("accepted a body that is not one JSON object: %q", body)
		}
		for k := range members {
			if _, ok := known[k]; !ok {
				t.Fatalf("accepted member %q", k)
			}
		}
		due := v.AmountDue
		if due.Minor <= 0 || due.Minor > fuzzMaxAmount || !payment.KnownCurrency(due.Currency) {
			t.Fatalf("accepted amount_due %+v", due)
		}
		if back, err := payment.ParseMajor(payment.FormatMajor(due.Minor, due.Currency), due.Currency); err != nil || back != due.Minor {
			t.Fatalf("amount_due %+v does not round-trip", due)
		}
		if len(v.Payees) > maxPayees || !sort.SliceIsSorted(v.Payees, func(i, j int) bool { return v.Payees[i].ExternalID < v.Payees[j].ExternalID }) {
			t.Fatalf("accepted payees %+v", v.Payees)
		}
		var sum int64
		for i, p := range v.Payees {
			if p.Amount <= 0 || (i > 0 && p.ExternalID == v.Payees[i-1].ExternalID) {
				t.Fatalf("accepted payee %+v", p)
			}
			sum += p.Amount
		}
		if sum > due.Minor {
			t.Fatalf("accepted payees summing %d over amount_due %d", sum, due.Minor)
		}
		ids := []string{v.ExternalID, v.Payer}
		for _, p := range v.Payees {
			ids = append(ids, p.ExternalID)
		}
		for i, s := range ids {
			if (i != 1 && s == "") || utf8.RuneCountInString(s) > 255 || strings.ContainsRune(s, 0) || strings.ContainsRune(s, '\u202e') || !utf8.ValidString(s) {
				t.Fatalf("accepted external id %q", s)
			}
		}
		if v.DueDate != "" {
			if d, err := time.Parse(time.DateOnly, v.DueDate); err != nil || d.Format(time.DateOnly) != v.DueDate || d.Year() < 1900 {
				t.Fatalf("accepted due_date %q", v.DueDate)
			}
		}
		for k, val := range v.Metadata {
			if strings.ContainsRune(k, 0) || strings.ContainsRune(val, 0) {
				t.Fatalf("accepted NUL in metadata %q=%q", k, val)
			}
		}
		if fp := fingerprint("POST /v1/invoices", v); len(fp) != 32 {
			t.Fatalf("fingerprint length %d", len(fp))
		}
	})
}
