package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Invoices: what seed-001 payments (and later payout lines and payment
// flows) pay. Balances are never written here: amount_paid moves only with
// the applications of payments, in the transaction of each payment's
// transition (store/application.go).

const (
	invoiceVoid = "VOID"
	// maxPayees bounds an invoice's payees (and the work of one create).
	maxPayees = 100
)

// invoiceStatuses is the status vocabulary of invoices, derived by the
// schema from the balances.
var invoiceStatuses = map[string]bool{"OPEN": true, "PARTIALLY_PAID": true, "PAID": true, invoiceVoid: true}

type userRefRequest struct {
	ExternalID *string `json:"external_id"`
}

type payeeRequest struct {
	ExternalID *string `json:"external_id"`
	Amount     decimal `json:"amount"`
}

type createInvoiceRequest struct {
	ExternalID *string           `json:"external_id"`
	Currency   *string           `json:"currency"`
	AmountDue  decimal           `json:"amount_due"`
	Payer      *userRefRequest   `json:"payer"`
	Payees     []payeeRequest    `json:"payees"`
	DueDate    *string           `json:"due_date"`
	Metadata   map[string]string `json:"metadata"`
}

// validInvoice is a create request that passed validation, normalized: it
// is also what the fingerprint covers, so "12.5" and "12.50", payees in any
// order and an absent or empty metadata are the same request.
type validInvoice struct {
	ExternalID string            `json:"external_id"`
	AmountDue  payment.Money     `json:"amount_due"`
	Payer      string            `json:"payer"` // external id; empty for none
	Payees     []validPayee      `json:"payees"`
	DueDate    string            `json:"due_date"` // YYYY-MM-DD; empty for none
	Metadata   map[string]string `json:"metadata"`
}

type validPayee struct {
	ExternalID string `json:"external_id"`
	Amount     int64  `json:"amount"`
}

// valid checks every field and returns one error code per bad field.
func (req createInvoiceRequest) valid(maxAmount int64) (validInvoice, map[string]string) {
	bad := map[string]string{}
	v := validInvoice{ExternalID: str(req.ExternalID), Payees: []validPayee{}, Metadata: map[string]string{}}
	if code := checkText(req.ExternalID, true, 255); code != "" {
		bad["external_id"] = "external_id_" + code
	}
	cur := str(req.Currency)
	switch {
	case req.Currency == nil || cur == "":
		bad["currency"] = "currency_required"
	case !isUpperAlpha3(cur):
		bad["currency"] = "currency_invalid"
	case !payment.KnownCurrency(cur):
		bad["currency"] = "currency_unknown"
	}
	_, badCurrency := bad["currency"]
	if !badCurrency {
		if minor, code := parseAmount(req.AmountDue, cur, maxAmount, false); code != "" {
			bad["amount_due"] = amountCode("amount_due", code)
		} else {
			v.AmountDue = payment.Money{Minor: minor, Currency: cur}
		}
	} else if !req.AmountDue.Set || req.AmountDue.IsNul {
		bad["amount_due"] = "amount_due_required"
	}
	if req.Payer != nil {
		v.Payer = str(req.Payer.ExternalID)
		if code := checkText(req.Payer.ExternalID, true, 255); code != "" {
			bad["payer"] = "payer_external_id_" + code
		}
	}
	if code := v.validPayees(req.Payees, cur, badCurrency, maxAmount); code != "" {
		bad["payees"] = code
	} else if _, ok := bad["amount_due"]; !ok && !badCurrency {
		var sum int64 // at most maxPayees × maxAmount: no overflow
		for _, p := range v.Payees {
			sum += p.Amount
		}
		if sum > v.AmountDue.Minor {
			bad["payees"] = "payees_exceed_amount_due"
		}
	}
	if req.DueDate != nil {
		d, ok := parseDate(*req.DueDate)
		if !ok {
			bad["due_date"] = "due_date_invalid"
		}
		v.DueDate = d
	}
	if code := checkMetadata(req.Metadata); code != "" {
		bad["metadata"] = code
	}
	for k, val := range req.Metadata {
		v.Metadata[k] = val
	}
	return v, bad
}

// validPayees checks the payees and records them sorted by external id. It
// returns the error code of the first bad payee.
func (v *validInvoice) validPayees(ps []payeeRequest, cur string, badCurrency bool, maxAmount int64) string {
	if len(ps) > maxPayees {
		return "payees_too_many"
	}
	seen := map[string]bool{}
	for _, p := range ps {
		if code := checkText(p.ExternalID, true, 255); code != "" {
			return "payees_external_id_" + code
		}
		if seen[*p.ExternalID] {
			return "payees_duplicate_external_id"
		}
		seen[*p.ExternalID] = true
		if badCurrency {
			// no exponent to parse with; only a missing amount can be told
			if !p.Amount.Set || p.Amount.IsNul {
				return "payees_amount_required"
			}
			continue
		}
		minor, code := parseAmount(p.Amount, cur, maxAmount, false)
		if code != "" {
			return amountCode("payees_amount", code)
		}
		v.Payees = append(v.Payees, validPayee{ExternalID: *p.ExternalID, Amount: minor})
	}
	sort.Slice(v.Payees, func(i, j int) bool { return v.Payees[i].ExternalID < v.Payees[j].ExternalID })
	return ""
}

// amountCode renames an amount error code for another field:
// amount_too_many_decimals of amount_due is amount_due_too_many_decimals.
func amountCode(field, code string) string {
	if rest, ok := strings.CutPrefix(code, "amount_"); ok {
		return field + "_" + rest
	}
	return field + "_invalid"
}

// parseDate accepts a calendar date written exactly YYYY-MM-DD, years 1900
// to 9999 (what every client and Postgres agree on).
func parseDate(s string) (string, bool) {
	if len(s) != len(time.DateOnly) {
		return "", false
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil || d.Year() < 1900 {
		return "", false
	}
	return d.Format(time.DateOnly), true
}

// decodeInvoice parses and validates a create body: any refusal is a 4xx
// *apiError.
func decodeInvoice(body []byte, maxAmount int64) (validInvoice, error) {
	var req createInvoiceRequest
	if err := decode(body, &req); err != nil {
		return validInvoice{}, err
	}
	v, bad := req.valid(maxAmount)
	if len(bad) > 0 {
		return v, validation(bad)
	}
	return v, nil
}

// handleCreateInvoice records an invoice with its payer and payees. Its
// external_id is a business key, unique per tenant forever: an identical
// repeat gets the invoice back (200, Idempotent-Replayed: true), another
// request under the same external_id is refused.
func (s *Server) handleCreateInvoice(w http.ResponseWriter, r *http.Request) {
	const route = "POST /v1/invoices"
	p := principal(r.Context())
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	v, err := decodeInvoice(body, s.cfg.MaxAmountMinor)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	fp := fingerprint(route, v)
	rw := &replayWriter{ResponseWriter: w}
	s.idempotent(rw, r, route, fp, func(ctx context.Context, tx *store.Store) (int, any, error) {
		ni := store.NewInvoice{TenantID: p.TenantID, ExternalID: v.ExternalID, Currency: v.AmountDue.Currency,
			AmountDue: v.AmountDue.Minor, PayerExternalID: v.Payer, Metadata: v.Metadata, Fingerprint: fp}
		for _, pe := range v.Payees {
			ni.Payees = append(ni.Payees, store.NewPayee{ExternalID: pe.ExternalID, Amount: pe.Amount})
		}
		if v.DueDate != "" {
			d, _ := time.Parse(time.DateOnly, v.DueDate)
			ni.DueDate = &d
		}
		inv, err := tx.CreateInvoice(ctx, ni)
		if errors.Is(err, payment.ErrConflict) {
			// The insert did nothing and the transaction goes on: a
			// concurrent create of the same external_id has committed.
			existing, err := tx.InvoiceByExternalID(ctx, p.TenantID, v.ExternalID)
			if err != nil {
				return 0, nil, err
			}
			switch {
			case existing.Fingerprint == nil:
				return 0, nil, errf(http.StatusConflict, typeConflict, "external_id_in_use",
					"an invoice with this external_id already exists and was not created by this API")
			case !bytes.Equal(existing.Fingerprint, fp):
				return 0, nil, errf(http.StatusUnprocessableEntity, typeValidation, "idempotency_key_reused",
					"an invoice with this external_id was already created with a different request body")
			}
			rw.replayed = true
			return http.StatusOK, toInvoiceResponse(existing), nil
		}
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, toInvoiceResponse(inv), nil
	}, func(context.Context, any) {
		if rw.replayed {
			s.metrics.IdempotentReplays.WithLabelValues(route).Inc()
		}
	})
}

// replayWriter marks a 2xx answer as a replay when the handler found the
// request's business key already recorded by the same request. The flag is
// set inside the transaction and read only when the answer is written, so a
// transaction that fails to commit never answers as a replay.
type replayWriter struct {
	http.ResponseWriter
	replayed bool
}

func (w *replayWriter) WriteHeader(code int) {
	if w.replayed && code >= 200 && code < 300 {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *replayWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *replayWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// validRef reports whether a path segment could name an object by id or
// external id. Routes with an {id} segment get validID (ids are short
// ASCII); external ids are up to 255 characters of any script, so invoices
// and users check the way their external ids were checked on create, which
// also keeps NUL and invalid UTF-8 (refused by Postgres) from a query.
func validRef(ref string) bool {
	return utf8.ValidString(ref) && checkText(&ref, true, 255) == ""
}

func (s *Server) handleGetInvoice(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("ref")
	if !validRef(ref) {
		s.writeError(w, r, errNotFound)
		return
	}
	inv, err := s.store.GetInvoice(r.Context(), principal(r.Context()).TenantID, ref)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toInvoiceResponse(inv))
}

func (s *Server) handleListInvoices(w http.ResponseWriter, r *http.Request) {
	p := principal(r.Context())
	limit, after, bad := parseListParams(r)
	f := store.InvoiceFilter{TenantID: p.TenantID, Limit: limit, StartingAfter: after}
	if st := r.URL.Query().Get("status"); st != "" {
		if !invoiceStatuses[st] {
			bad["status"] = "status_invalid"
		}
		f.Status = st
	}
	if len(bad) > 0 {
		s.writeError(w, r, validation(bad))
		return
	}
	if !s.cursorExists(w, r, after, func(ctx context.Context, id string) (bool, error) {
		return s.store.InvoiceExists(ctx, p.TenantID, id)
	}) {
		return
	}
	invs, more, err := s.store.ListInvoices(r.Context(), f)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]invoiceResponse, len(invs))
	for i, inv := range invs {
		out[i] = toInvoiceResponse(inv)
	}
	writeJSON(w, http.StatusOK, listResponse{Object: "list", Data: out, HasMore: more})
}

// invoiceResponse is the invoice object of GET, list and create. Amounts
// are JSON numbers in major units with the currency's decimals, as on the
// seed-001 payment.
type invoiceResponse struct {
	ID              string            `json:"id"`
	ExternalID      string            `json:"external_id"`
	InvoiceNumber   string            `json:"invoice_number"`
	Currency        string            `json:"currency"`
	AmountDue       json.Number       `json:"amount_due"`
	AmountPaid      json.Number       `json:"amount_paid"`
	AmountRemaining json.Number       `json:"amount_remaining"`
	Status          string            `json:"status"`
	Payer           *userRefResponse  `json:"payer"`
	Payees          []payeeResponse   `json:"payees"`
	DueDate         *string           `json:"due_date"`
	Metadata        map[string]string `json:"metadata"`
	CreatedAt       string            `json:"created_at"`
}

type userRefResponse struct {
	ID         string `json:"id"`
	ExternalID string `json:"external_id"`
}

type payeeResponse struct {
	ID         string      `json:"id"`
	ExternalID string      `json:"external_id"`
	Amount     json.Number `json:"amount"`
}

func toInvoiceResponse(inv payment.Invoice) invoiceResponse {
	major := func(minor int64) json.Number { return json.Number(payment.FormatMajor(minor, inv.Currency)) }
	out := invoiceResponse{ID: inv.ID, ExternalID: inv.ExternalID, InvoiceNumber: inv.InvoiceNumber, Currency: inv.Currency,
		AmountDue: major(inv.AmountDue), AmountPaid: major(inv.AmountPaid), AmountRemaining: major(max(inv.AmountRemaining(), 0)),
		Status: inv.Status, Payees: make([]payeeResponse, 0, len(inv.Payees)), Metadata: inv.Metadata, CreatedAt: ts(inv.CreatedAt)}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	if inv.Payer != nil {
		out.Payer = &userRefResponse{ID: inv.Payer.ID, ExternalID: inv.Payer.ExternalID}
	}
	for _, pe := range inv.Payees {
		out.Payees = append(out.Payees, payeeResponse{ID: pe.User.ID, ExternalID: pe.User.ExternalID, Amount: major(pe.Amount)})
	}
	if inv.DueDate != nil {
		d := inv.DueDate.Format(time.DateOnly)
		out.DueDate = &d
	}
	return out
}
