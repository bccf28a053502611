package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Sync of a payout from its source system. The accounts-payable system
// that makes a payment pushes it (POST /v1/payouts, keyed by
// external_payment_id) and pushes it again as it changes. A push identical
// to the last one recorded is a replay; a later push updates the payout
// (status forward along the lifecycle, lines, references, times the source
// had not given yet), audited; a push that contradicts the record is 422
// with one payout_conflict_<what> code per contradicting field
// (docs/payouts.md, "Sync").

// followUp is the step a payout waits for after a create or a sync.
type followUp struct {
	step payment.Step
	at   time.Time
	seq  int
}

// sourceTimes are the lifecycle times a source gives that, once given, are
// facts: a later push may repeat them, never change them.
var sourceTimes = []struct {
	name string
	get  func(*payoutFields) *time.Time
}{
	{"submitted_at", func(f *payoutFields) *time.Time { return f.SubmittedAt }},
	{"sent_at", func(f *payoutFields) *time.Time { return f.SentAt }},
	{"settled_at", func(f *payoutFields) *time.Time { return f.SettledAt }},
	{"returned_at", func(f *payoutFields) *time.Time { return f.ReturnedAt }},
	{"check_mailed_at", func(f *payoutFields) *time.Time { return f.CheckMailedAt }},
	{"check_cleared_at", func(f *payoutFields) *time.Time { return f.CheckClearedAt }},
}

// beneficiaryFields are who the payout pays: a push naming anyone else is
// another payment, not a change of this one.
var beneficiaryFields = []struct {
	name string
	get  func(*payoutFields) string
}{
	{"beneficiary_name", func(f *payoutFields) string { return f.BeneficiaryName }},
	{"beneficiary_bank_name", func(f *payoutFields) string { return f.BeneficiaryBankName }},
	{"beneficiary_bank_country", func(f *payoutFields) string { return f.BeneficiaryBankCountry }},
	{"beneficiary_swift_bic", func(f *payoutFields) string { return f.BeneficiarySwiftBIC }},
	{"beneficiary_iban", func(f *payoutFields) string { return f.BeneficiaryIBAN }},
	{"beneficiary_account", func(f *payoutFields) string { return f.BeneficiaryAccount }},
	{"beneficiary_routing", func(f *payoutFields) string { return f.BeneficiaryRouting }},
}

// payoutConflicts compares a push with the recorded payout: one
// payout_conflict_<what> code per field that contradicts it. The status is
// checked by the store under the row lock (SyncPayout).
func payoutConflicts(po payment.Payout, old *payoutFields, v validPayout) map[string]string {
	bad := map[string]string{}
	if v.Method != po.Payment.Method {
		bad["method"] = "payout_conflict_method"
	}
	switch {
	case v.Amount.Currency != po.Payment.Amount.Currency:
		bad["currency"] = "payout_conflict_currency"
	case v.Amount.Minor != po.Payment.Amount.Minor:
		bad["total_amount"] = "payout_conflict_amount"
	}
	for _, b := range beneficiaryFields {
		if b.get(old) != b.get(&v.Fields) {
			bad[b.name] = "payout_conflict_beneficiary"
		}
	}
	for _, t := range sourceTimes {
		was, now := t.get(old), t.get(&v.Fields)
		if was != nil && now != nil && !was.Equal(*now) {
			bad[t.name] = "payout_conflict_" + t.name
		}
	}
	return bad
}

// mergeDetails lays the fields of a push over the recorded ones: a field
// the push leaves out keeps its recorded value.
func mergeDetails(recorded json.RawMessage, push payoutFields) (json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if len(recorded) > 0 {
		if err := json.Unmarshal(recorded, &m); err != nil {
			return nil, fmt.Errorf("recorded details: %w", err)
		}
	}
	b, err := json.Marshal(push)
	if err != nil {
		return nil, err
	}
	var over map[string]json.RawMessage
	if err := json.Unmarshal(b, &over); err != nil {
		return nil, err
	}
	for k, v := range over {
		m[k] = v
	}
	return json.Marshal(m)
}

// syncPayout records a later push of payout id (its external_payment_id's
// advisory lock held by this transaction): the checks above, then
// store.SyncPayout. It returns the payout as it now is, the last change
// made and the step sequence after it.
func syncPayout(ctx context.Context, tx *store.Store, v validPayout, fp []byte, id, actor, tenantID string) (payment.Payout, store.Change, int, error) {
	po, err := tx.GetPayout(ctx, tenantID, id)
	if err != nil {
		return payment.Payout{}, store.Change{}, 0, err
	}
	var old payoutFields
	if err := json.Unmarshal(po.Details.Details, &old); err != nil {
		return payment.Payout{}, store.Change{}, 0, fmt.Errorf("recorded details of %s: %w", id, err)
	}
	if bad := payoutConflicts(po, &old, v); len(bad) > 0 {
		return payment.Payout{}, store.Change{}, 0, validation(bad)
	}
	details, err := mergeDetails(po.Details.Details, v.Fields)
	if err != nil {
		return payment.Payout{}, store.Change{}, 0, err
	}
	ps := store.PayoutSync{TenantID: tenantID, PaymentID: id, Source: v.ExternalSource, Fingerprint: fp, Details: details,
		SentAt: v.Fields.SentAt, SettledAt: v.Fields.SettledAt, ReturnedAt: v.Fields.ReturnedAt,
		ExpectedSettlementAt: v.Fields.ExpectedSettlementAt, HasLines: v.Lines != nil, Lines: paymentLines(v.Lines),
		Replace: v.ReplaceLines, Actor: actor}
	if v.statusGiven {
		ps.Status = v.Status
		if (v.Status == payment.PayoutPaid || v.Status == payment.PayoutSettled) && ps.SettledAt == nil {
			// the seed: PAID or SETTLED without settled_at is settled now
			// (kept when payd or the source recorded one before)
			if po.Payment.SettledAt == nil {
				ps.SettledAt = &v.at
			}
		}
	}
	last, seq, err := tx.SyncPayout(ctx, ps)
	var ce *payment.PayoutConflictError
	switch {
	case errors.As(err, &ce):
		e := validation(map[string]string{ce.Field: ce.Code})
		e.Message = ce.Message
		return payment.Payout{}, store.Change{}, 0, e
	case err != nil:
		return payment.Payout{}, store.Change{}, 0, linesError(err, v.Lines)
	}
	po, err = tx.GetPayout(ctx, tenantID, id)
	return po, last, seq, err
}
