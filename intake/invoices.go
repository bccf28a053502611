package intake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Invoices: what seed-001 payments (and later payout lines and payment
// flows) pay. Balances are never written here: amount_paid moves only with
// the applications of payments, in the transaction of each payment's
// transition (store/invoice_line.go).

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
	Payers     []payeeRequest    `json:"payers"`
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
	Payers     []validPayee      `json:"payers,omitempty"` // several payers with their shares (omitted when none: old fingerprints stay)
	DueDate    string            `json:"due_date"`         // YYYY-MM-DD; empty for none
	Metadata   map[string]string `json:"metadata"`
}

type validPayee struct {
	ExternalID string `json:"external_id"`
	Amount     int64  `json:"amount"`
}

// valid checks every field and returns one error code per bad field.
func (req createInvoiceRequest) valid(lim limits) (validInvoice, map[string]string) {
	bad := map[string]string{}
	v := validInvoice{ExternalID: str(req.ExternalID), Payees: []validPayee{}, Metadata: map[string]string{}}
	if code := checkText(req.ExternalID, true, 255); code != "" {
		bad["external_id"] = "external_id_" + code
	}
	cur := currencyCode(req.Currency)
	badCurrency := false
	if code := checkCurrency(cur); code != "" {
		bad["currency"], badCurrency = code, true
	}
	switch {
	case !badCurrency:
		if minor, code := parseAmount(req.AmountDue, cur, lim.maxAmount, false); code != "" {
			bad["amount_due"] = amountCode("amount_due", code)
		} else {
			v.AmountDue = payment.Money{Minor: minor, Currency: cur}
		}
	case req.AmountDue.absent():
		bad["amount_due"] = "amount_due_required"
	}
	if req.Payer != nil {
		v.Payer = str(req.Payer.ExternalID)
		if code := checkText(req.Payer.ExternalID, true, 255); code != "" {
			bad["payer"] = "payer_external_id_" + code
		}
	}
	if req.Payers != nil {
		payers, code := validParties("payers", req.Payers, cur, badCurrency, lim.maxAmount)
		switch {
		case code != "":
			bad["payers"] = code
		case req.Payer != nil:
			bad["payers"] = "payers_and_payer"
		case len(payers) == 0:
			bad["payers"] = "payers_empty"
		default:
			v.Payers = payers
			if _, ok := bad["amount_due"]; !ok && !badCurrency {
				var sum int64 // at most maxPayees × maxAmount: no overflow
				for _, p := range payers {
					sum += p.Amount
				}
				if sum != v.AmountDue.Minor {
					bad["payers"] = "payers_sum_not_amount_due"
				}
			}
		}
	}
	if code := v.validPayees(req.Payees, cur, badCurrency, lim.maxAmount); code != "" {
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
	payees, code := validParties("payees", ps, cur, badCurrency, maxAmount)
	v.Payees = append(v.Payees, payees...)
	return code
}

// validParties checks a list of payees or payers (field) and returns them
// sorted by external id, or the error code of the first bad one.
func validParties(field string, ps []payeeRequest, cur string, badCurrency bool, maxAmount int64) ([]validPayee, string) {
	if len(ps) > maxPayees {
		return nil, field + "_too_many"
	}
	out := []validPayee{}
	seen := map[string]bool{}
	for _, p := range ps {
		if code := checkText(p.ExternalID, true, 255); code != "" {
			return nil, field + "_external_id_" + code
		}
		if seen[*p.ExternalID] {
			return nil, field + "_duplicate_external_id"
		}
		seen[*p.ExternalID] = true
		if badCurrency {
			// no exponent to parse with; only a missing amount can be told
			if p.Amount.absent() {
				return nil, field + "_amount_required"
			}
			continue
		}
		minor, code := parseAmount(p.Amount, cur, maxAmount, false)
		if code != "" {
			return nil, amountCode(field+"_amount", code)
		}
		out = append(out, validPayee{ExternalID: *p.ExternalID, Amount: minor})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ExternalID < out[j].ExternalID })
	return out, ""
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

// handleCreateInvoice records an invoice with its payer and payees. Its
// external_id is a business key, unique per tenant forever: an identical
// repeat gets the invoice back (200, Idempotent-Replayed: true), another
// request under the same external_id is refused.
func (s *Server) handleCreateInvoice(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/invoices"
	p := principal(r.Context())
	v, err := decodeValid(s, w, r, &createInvoiceRequest{})
	if err != nil {
		return err
	}
	fp := fingerprint(route, v)
	rw := &replayWriter{ResponseWriter: w}
	return s.idempotent(rw, r, route, fp, func(ctx context.Context, tx *store.Store) (int, any, error) {
		ni := store.NewInvoice{TenantID: p.TenantID, ExternalID: v.ExternalID, Currency: v.AmountDue.Currency,
			AmountDue: v.AmountDue.Minor, PayerExternalID: v.Payer, Metadata: v.Metadata, Fingerprint: fp}
		for _, pe := range v.Payers {
			ni.Payers = append(ni.Payers, store.NewPayee{ExternalID: pe.ExternalID, Amount: pe.Amount})
		}
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
	}, s.countReplay(rw, route))
}

func (s *Server) handleGetInvoice(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("ref")
	if !validRef(ref) {
		return errNotFound
	}
	inv, err := s.store.GetInvoice(r.Context(), principal(r.Context()).TenantID, ref)
	return writeOne(w, inv, err, toInvoiceResponse)
}

func (s *Server) handleListInvoices(w http.ResponseWriter, r *http.Request) error {
	p := principal(r.Context())
	q := parseListQuery(r)
	f := store.InvoiceFilter{TenantID: p.TenantID, Limit: q.limit, StartingAfter: q.after}
	if st := q.Get("status"); st != "" {
		if !invoiceStatuses[st] {
			q.bad["status"] = "status_invalid"
		}
		f.Status = st
	}
	return writeList(w, r, q, func(ctx context.Context, id string) (bool, error) {
		return s.store.InvoiceExists(ctx, p.TenantID, id)
	}, func(ctx context.Context) ([]payment.Invoice, bool, error) {
		return s.store.ListInvoices(ctx, f)
	}, toInvoiceResponse)
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
	Payers          []payeeResponse   `json:"payers"`
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
	amount := func(minor int64) json.Number { return major(minor, inv.Currency) }
	out := invoiceResponse{ID: inv.ID, ExternalID: inv.ExternalID, InvoiceNumber: inv.InvoiceNumber, Currency: inv.Currency,
		AmountDue: amount(inv.AmountDue), AmountPaid: amount(inv.AmountPaid), AmountRemaining: amount(max(inv.AmountRemaining(), 0)),
		Status: inv.Status, Payees: make([]payeeResponse, 0, len(inv.Payees)), Payers: make([]payeeResponse, 0, len(inv.Payers)), Metadata: inv.Metadata, CreatedAt: ts(inv.CreatedAt)}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	if inv.Payer != nil {
		out.Payer = &userRefResponse{ID: inv.Payer.ID, ExternalID: inv.Payer.ExternalID}
	}
	for _, pe := range inv.Payees {
		out.Payees = append(out.Payees, payeeResponse{ID: pe.User.ID, ExternalID: pe.User.ExternalID, Amount: amount(pe.Amount)})
	}
	for _, pe := range inv.Payers {
		out.Payers = append(out.Payers, payeeResponse{ID: pe.User.ID, ExternalID: pe.User.ExternalID, Amount: amount(pe.Amount)})
	}
	if inv.DueDate != nil {
		d := inv.DueDate.Format(time.DateOnly)
		out.DueDate = &d
	}
	return out
}
