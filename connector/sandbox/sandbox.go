package sandbox

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// Magic payment method ids (docs/surfaces.md, "The sandbox gateway"). Any
// other card token succeeds; any other all-digit bank account is sent and
// settles.
const (
	CardVisa               = "pm_card_visa"
	CardDeclined           = "pm_card_declined"
	CardInsufficientFunds  = "pm_card_insufficient_funds"
	Card3DS                = "pm_card_3ds"
	CardFlaky              = "pm_card_flaky"
	CardTimeoutAfterCharge = "pm_card_timeout_after_charge"
	// CardUnknown charges, then its answer is lost, and every later call
	// about its key (Charge, Inquire, Void) times out too, until
	// Faults.AnswerUnknown is set: a gateway that never says what happened.
	CardUnknown            = "pm_card_unknown"
	BankAccountSettles     = "123456789" // also as "ba_123456789"
	BankAccountReturnedR01 = "10001"     // 100XX settles, then is returned with RXX
	BankAccountInvalid     = "111111111" // any account starting 11111111 is refused
)

const (
	bankAccountInvalidStart = "11111111"
	bankAccountPrefix       = "ba_"
	flakyFailures           = 2 // pm_card_flaky tries that fail, per payment
)

// Defaults applied by New to a zero Config field.
const (
	DefaultSettleDelay = 2 * time.Second
	DefaultReturnDelay = 2 * time.Second
	DefaultPublicURL   = "http://127.0.0.1:8080/sandbox"
)

// Config tunes the sandbox. The zero value is a usable, fault-free sandbox.
type Config struct {
	// SettleDelay is the rail delay from SENT to settled. Zero means
	// DefaultSettleDelay; a negative value settles at once.
	SettleDelay time.Duration
	// PerRail settles each rail on its real schedule
	// (payment.ExpectedSettlement: ACH next business day, RTP seconds, …)
	// instead of after SettleDelay.
	PerRail bool
	// ReturnDelay is the delay from settled to returned for 100XX accounts.
	// Zero means DefaultReturnDelay; a negative value returns at settlement.
	ReturnDelay time.Duration
	// Latency is slept before every call is processed. A context that ends
	// during the sleep yields an unknown-outcome timeout and nothing happens.
	Latency time.Duration
	// FaultRate is the probability, drawn from a generator seeded with Seed,
	// that a call fails with a transient gateway_503 before it is processed.
	FaultRate float64
	Seed      int64
	// Now is the sandbox's clock; nil means time.Now. Times are kept in UTC.
	Now func() time.Time
	// PublicURL is where Handler is reachable by a browser; 3-D Secure
	// ActionURLs are built on it. Empty means DefaultPublicURL.
	PublicURL string
	// Notify makes the sandbox push signed notifications (notify.go); the
	// zero value pushes none.
	Notify NotifyConfig
}

// Sandbox is an in-process fake PSP and bank. It implements connector.Gateway
// and is safe for concurrent use.
type Sandbox struct {
	cfg Config

	mu       sync.Mutex
	rng      *rand.Rand
	charges  map[string]*chargeRecord // by idempotency key
	byRef    map[string]*chargeRecord // by Reference
	fenced   map[string]bool          // keys Inquire or Void answered StatusNotFound
	tries    map[string]int           // pm_card_flaky tries by payment id
	refunds  map[string]*refundRecord // by refund idempotency key
	tokens   map[string]*tokenRecord  // one-time payment tokens (tokenize.go)
	ledger   []*Charge                // in the order money moved
	refunded []*refundRecord          // succeeded refunds, in the order money moved back
	notify   *notifier                // nil: no notifications
	faults   Faults                   // injected faults; see SetFaults
}

var (
	_ connector.Gateway   = (*Sandbox)(nil)
	_ connector.Tokenizer = (*Sandbox)(nil)
)

// chargeRecord is the outcome of one idempotency key.
type chargeRecord struct {
	req    connector.ChargeRequest
	result connector.Result
	entry  *Charge // set once money moved
	// challenge is true for a pm_card_3ds charge, pending, completed or
	// voided.
	challenge bool
	// unanswered is true for a pm_card_unknown charge: no call about its
	// key is answered until Faults.AnswerUnknown.
	unanswered bool
	// bank rail payments only:
	bank       bool
	settleAt   time.Time
	returnCode string
}

type refundRecord struct {
	req    connector.RefundRequest
	result connector.Result
	at     time.Time // when it was processed
}

// errResponseLost marks a charge whose answer must be lost: in-process it is a
// timeout, over HTTP the server closes the connection without answering.
var errResponseLost = errors.New("sandbox: charged, then the response was lost")

// errUnanswered is every answer about a pm_card_unknown key until
// Faults.AnswerUnknown: lost like errResponseLost.
var errUnanswered = fmt.Errorf("sandbox: %s: no answer about this key: %w", CardUnknown, errResponseLost)

// ErrAuthenticationCanceled is CompleteAction on a challenge whose charge was
// voided: the customer can no longer authenticate it.
var ErrAuthenticationCanceled = fmt.Errorf("the authentication was canceled (charge voided): %w", payment.ErrInvalidState)

// unansweredError is what a caller sees of a call whose answer was lost.
func unansweredError(err error) *connector.Error {
	return &connector.Error{Class: payment.FailureUnknown, Code: "timeout", MaybeProcessed: true, Err: err}
}

// unansweredLocked says whether calls about rec must go unanswered now.
func (s *Sandbox) unansweredLocked(rec *chargeRecord) bool {
	return rec.unanswered && !s.faults.AnswerUnknown
}

// newReference returns a gateway reference with 128 random bits, so that no
// one can guess another charge's challenge page or reference.
func newReference(prefix string) string {
	b := make([]byte, 16)
	_, _ = crand.Read(b) // never fails (crypto/rand crashes the program instead)
	return prefix + hex.EncodeToString(b)
}

// New returns a sandbox with an empty ledger.
func New(cfg Config) *Sandbox {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.SettleDelay == 0:
		cfg.SettleDelay = DefaultSettleDelay
	case cfg.SettleDelay < 0:
		cfg.SettleDelay = 0
	}
	switch {
	case cfg.ReturnDelay == 0:
		cfg.ReturnDelay = DefaultReturnDelay
	case cfg.ReturnDelay < 0:
		cfg.ReturnDelay = 0
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = DefaultPublicURL
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	seed := uint64(cfg.Seed)
	var notify *notifier
	if cfg.Notify.URL != "" || cfg.Notify.Secret != "" {
		notify = newNotifier(cfg.Notify, func() time.Time { return cfg.Now().UTC() }, cfg.Seed)
	}
	return &Sandbox{
		notify:  notify,
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		charges: make(map[string]*chargeRecord),
		byRef:   make(map[string]*chargeRecord),
		fenced:  make(map[string]bool),
		tries:   make(map[string]int),
		refunds: make(map[string]*refundRecord),
		tokens:  make(map[string]*tokenRecord),
		faults: Faults{Latency: cfg.Latency, FaultRate: cfg.FaultRate, Notify: NotifyFaults{Copies: cfg.Notify.Copies,
			Order: cfg.Notify.Order, Delay: cfg.Notify.Delay, Batch: cfg.Notify.Batch}},
	}
}

func (s *Sandbox) now() time.Time { return s.cfg.Now().UTC() }

// arrive models the network and the gateway's front door: latency first, then
// a seeded transient fault. Both happen before processing, so an error from
// arrive means nothing was done, though a real client could not know that.
func (s *Sandbox) arrive(ctx context.Context) error {
	s.mu.Lock()
	f := s.faults
	delay := f.Latency
	if f.SlowRate > 0 && s.rng.Float64() < f.SlowRate {
		delay += f.SlowLatency
	}
	fault := f.FaultRate > 0 && s.rng.Float64() < f.FaultRate
	s.mu.Unlock()
	if err := sleepCtx(ctx, delay); err != nil {
		return err
	}
	if fault {
		return &connector.Error{Class: payment.FailureTransient, Code: "gateway_503", MaybeProcessed: true, Err: errInjected}
	}
	return nil
}

// Charge implements connector.Gateway. A key that already has an outcome
// answers with it (its current state, for a completed 3-D Secure challenge)
// and never books twice; the same key with a different request is declined
// idempotency_key_reused; a key fenced by Inquire or Void is declined
// idempotency_key_fenced, and a voided one idempotency_key_voided.
// Transient errors (pm_card_flaky, FaultRate) leave no outcome, so the key
// may be tried again.
func (s *Sandbox) Charge(ctx context.Context, req connector.ChargeRequest) (connector.Result, error) {
	if err := s.arrive(ctx); err != nil {
		return connector.Result{}, err
	}
	res, err := s.charge(req)
	return s.respond(ctx, res, err)
}

func (s *Sandbox) charge(req connector.ChargeRequest) (connector.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	if rec, ok := s.charges[req.IdempotencyKey]; ok {
		if rec.result.Status == connector.StatusVoided {
			res := declined(payment.FailureHardDecline, "idempotency_key_voided",
				"the charge with this idempotency key was voided; it can no longer charge")
			res.Reference = rec.result.Reference
			return res, nil
		}
		if !sameCharge(rec.req, req) {
			return declined(payment.FailureHardDecline, "idempotency_key_reused",
				"this idempotency key was used for a different charge"), nil
		}
		if s.unansweredLocked(rec) {
			return connector.Result{}, unansweredError(errUnanswered)
		}
		return rec.result, nil
	}
	if req.IdempotencyKey == "" {
		return declined(payment.FailureHardDecline, "idempotency_key_missing", "a charge needs an idempotency key"), nil
	}
	if s.fenced[req.IdempotencyKey] {
		return declined(payment.FailureHardDecline, "idempotency_key_fenced",
			"an inquiry found no charge for this key; it can no longer charge"), nil
	}
	if res, bad := validMoney(req.Amount, false); bad {
		s.charges[req.IdempotencyKey] = &chargeRecord{req: req, result: res}
		return res, nil
	}
	pm, ok := s.resolveLocked(req)
	if !ok {
		return s.recordLocked(req, declined(payment.FailureHardDecline, "token_invalid",
			"the payment token is unknown, of another method, or already used by another payment")), nil
	}
	if req.Method.BankRail() {
		if req.Amount.Minor == 0 {
			return s.recordLocked(req, declined(payment.FailureHardDecline, "invalid_amount",
				"a bank payment cannot verify an account with a zero amount")), nil
		}
		return s.submitBankLocked(req, pm), nil
	}
	return s.chargeCardLocked(req, pm)
}

// chargeCardLocked charges the card pm. A zero amount is a card
// verification: it authorizes and charges nothing, so it never books a
// ledger entry (a 3-D Secure challenge included), and a verified card
// answers succeeded.
func (s *Sandbox) chargeCardLocked(req connector.ChargeRequest, pm string) (connector.Result, error) {
	switch pm {
	case CardFlaky:
		s.tries[req.PaymentID]++
		if s.tries[req.PaymentID] <= flakyFailures {
			return connector.Result{}, &connector.Error{Class: payment.FailureTransient, Code: "gateway_503",
				MaybeProcessed: true, Err: errors.New("sandbox: pm_card_flaky is unavailable on this try")}
		}
	case CardDeclined:
		return s.recordLocked(req, declined(payment.FailureHardDecline, "card_declined", "the card was declined")), nil
	case CardInsufficientFunds:
		return s.recordLocked(req, declined(payment.FailureSoftDecline, "insufficient_funds", "the card has insufficient funds")), nil
	case Card3DS:
		rec := s.newRecordLocked(req)
		rec.challenge = true
		rec.result.Status = connector.StatusRequiresAction
		rec.result.ActionURL = s.cfg.PublicURL + "/challenge/" + url.PathEscape(rec.result.Reference)
		rec.result.Message = "the customer must complete a 3-D Secure challenge"
		return rec.result, nil
	}
	rec := s.newRecordLocked(req)
	rec.result.Status = connector.StatusSucceeded
	if req.Amount.Minor == 0 {
		rec.result.Message = "card verified"
		return rec.result, nil
	}
	s.bookLocked(rec)
	switch pm {
	case CardTimeoutAfterCharge:
		return connector.Result{}, unansweredError(errResponseLost)
	case CardUnknown:
		rec.unanswered = true
		return connector.Result{}, unansweredError(errUnanswered)
	}
	return rec.result, nil
}

func (s *Sandbox) submitBankLocked(req connector.ChargeRequest, pm string) connector.Result {
	account, ok := strings.CutPrefix(pm, bankAccountPrefix)
	if !ok {
		account = ibanDigits(pm)
	}
	if !allDigits(account) || strings.HasPrefix(account, bankAccountInvalidStart) {
		return s.recordLocked(req, declined(payment.FailureHardDecline, "account_invalid", "the bank account is invalid"))
	}
	rec := s.newRecordLocked(req)
	rec.bank = true
	rec.settleAt = s.now().Add(s.cfg.SettleDelay)
	if s.cfg.PerRail {
		rec.settleAt = payment.ExpectedSettlement(req.Method, s.now())
	}
	if len(account) == 5 && strings.HasPrefix(account, "100") {
		rec.returnCode = "R" + account[3:]
	}
	rec.result.Status = connector.StatusSent
	rec.result.SettleAt = rec.settleAt
	s.bookLocked(rec)
	return rec.result
}

// newRecordLocked stores a processed charge under its key with a fresh
// reference; the caller fills in the outcome.
func (s *Sandbox) newRecordLocked(req connector.ChargeRequest) *chargeRecord {
	rec := &chargeRecord{req: req, result: connector.Result{Reference: newReference("ch_")}}
	s.charges[req.IdempotencyKey] = rec
	s.byRef[rec.result.Reference] = rec
	return rec
}

// recordLocked stores a processed charge that moved no money.
func (s *Sandbox) recordLocked(req connector.ChargeRequest, res connector.Result) connector.Result {
	rec := s.newRecordLocked(req)
	res.Reference = rec.result.Reference
	rec.result = res
	if res.Status == connector.StatusDeclined {
		s.notifyDeclinedLocked(rec)
	}
	return res
}

// bookLocked writes the ledger entry: from here on money has moved.
func (s *Sandbox) bookLocked(rec *chargeRecord) {
	rec.entry = &Charge{
		Key:       rec.req.IdempotencyKey,
		PaymentID: rec.req.PaymentID,
		Reference: rec.result.Reference,
		Amount:    rec.req.Amount.Minor,
		Currency:  rec.req.Amount.Currency,
		Method:    rec.req.Method,
		At:        s.now(),
	}
	s.ledger = append(s.ledger, rec.entry)
	s.notifyBookedLocked(rec)
}

// CompleteAction finishes the 3-D Secure challenge of a pm_card_3ds charge:
// succeed charges it, otherwise it is declined authentication_failed.
// Completing it again with the same outcome is a no-op; an unknown reference
// wraps payment.ErrNotFound, a conflicting outcome payment.ErrInvalidState,
// and a charge voided meanwhile ErrAuthenticationCanceled (which wraps
// payment.ErrInvalidState too).
func (s *Sandbox) CompleteAction(reference string, succeed bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.byRef[reference]
	if !ok || !rec.challenge {
		return fmt.Errorf("sandbox: challenge %s: %w", reference, payment.ErrNotFound)
	}
	switch rec.result.Status {
	case connector.StatusRequiresAction:
	case connector.StatusVoided:
		return fmt.Errorf("sandbox: challenge %s: %w", reference, ErrAuthenticationCanceled)
	case connector.StatusSucceeded:
		if succeed {
			return nil
		}
		return fmt.Errorf("sandbox: challenge %s already succeeded: %w", reference, payment.ErrInvalidState)
	default:
		if !succeed {
			return nil
		}
		return fmt.Errorf("sandbox: challenge %s already failed: %w", reference, payment.ErrInvalidState)
	}
	if !succeed {
		rec.result = declined(payment.FailureHardDecline, "authentication_failed", "the customer failed 3-D Secure authentication")
		rec.result.Reference = reference
		s.notifyDeclinedLocked(rec)
		return nil
	}
	rec.result = connector.Result{Status: connector.StatusSucceeded, Reference: reference}
	if rec.req.Amount.Minor > 0 { // a verification charges nothing
		s.bookLocked(rec)
	}
	return nil
}

// Inquire implements connector.Gateway. A key with no outcome is fenced.
// A pm_card_unknown key times out until Faults.AnswerUnknown.
func (s *Sandbox) Inquire(ctx context.Context, idempotencyKey string) (connector.Result, error) {
	if err := s.arrive(ctx); err != nil {
		return connector.Result{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec, ok := s.charges[idempotencyKey]; ok {
		if s.unansweredLocked(rec) {
			return connector.Result{}, unansweredError(errUnanswered)
		}
		return rec.result, nil
	}
	s.fenced[idempotencyKey] = true
	return connector.Result{Status: connector.StatusNotFound,
		Message: "no charge with this idempotency key; the key is now fenced"}, nil
}

// Settlement implements connector.Gateway. A reference that is not a bank
// payment answers StatusNotFound.
func (s *Sandbox) Settlement(ctx context.Context, reference string) (connector.Result, error) {
	if err := s.arrive(ctx); err != nil {
		return connector.Result{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.byRef[reference]
	if !ok || rec.entry == nil || !rec.bank {
		return connector.Result{Status: connector.StatusNotFound, Reference: reference,
			Message: "no bank payment with this reference"}, nil
	}
	return s.railStatusLocked(rec), nil
}

// railStatusLocked is a bank payment's status at the sandbox's now.
func (s *Sandbox) railStatusLocked(rec *chargeRecord) connector.Result {
	now := s.now()
	ref := rec.result.Reference
	if now.Before(rec.settleAt) {
		return connector.Result{Status: connector.StatusSent, Reference: ref, SettleAt: rec.settleAt}
	}
	if rec.returnCode != "" {
		returnAt := rec.settleAt.Add(s.cfg.ReturnDelay)
		if !now.Before(returnAt) {
			return connector.Result{Status: connector.StatusReturned, Reference: ref, Code: rec.returnCode,
				Message:   "returned by the receiving bank",
				SettledAt: rec.settleAt, ReturnedAt: returnAt}
		}
	}
	return connector.Result{Status: connector.StatusSettled, Reference: ref, SettledAt: rec.settleAt}
}

// Refund implements connector.Gateway. Refunds of one charge never add up to
// more than it; a bank payment is refundable once settled and not returned.
func (s *Sandbox) Refund(ctx context.Context, req connector.RefundRequest) (connector.Result, error) {
	if err := s.arrive(ctx); err != nil {
		return connector.Result{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec, ok := s.refunds[req.IdempotencyKey]; ok {
		if rec.req != req {
			return declined(payment.FailureHardDecline, "idempotency_key_reused",
				"this idempotency key was used for a different refund"), nil
		}
		return rec.result, nil
	}
	if req.IdempotencyKey == "" {
		return declined(payment.FailureHardDecline, "idempotency_key_missing", "a refund needs an idempotency key"), nil
	}
	res := s.refundLocked(req)
	// A soft decline means "not yet" (an unsettled bank payment): the same
	// refund may succeed later, so it is not remembered.
	if res.Status == connector.StatusSucceeded || res.FailureClass != payment.FailureSoftDecline {
		rec := &refundRecord{req: req, result: res, at: s.now()}
		s.refunds[req.IdempotencyKey] = rec
		if res.Status == connector.StatusSucceeded {
			s.refunded = append(s.refunded, rec)
		}
	}
	return res, nil
}

func (s *Sandbox) refundLocked(req connector.RefundRequest) connector.Result {
	if res, bad := validMoney(req.Amount, true); bad {
		return res
	}
	rec, ok := s.byRef[req.GatewayReference]
	if !ok || rec.entry == nil || (req.PaymentID != "" && req.PaymentID != rec.req.PaymentID) {
		return declined(payment.FailureHardDecline, "charge_not_found", "no captured charge with this reference")
	}
	ch := rec.entry
	if req.Amount.Currency != ch.Currency {
		return declined(payment.FailureHardDecline, "currency_mismatch", "the refund currency differs from the charge's")
	}
	if rec.bank {
		switch s.railStatusLocked(rec).Status {
		case connector.StatusSent:
			return declined(payment.FailureSoftDecline, "charge_not_settled", "the bank payment has not settled yet")
		case connector.StatusReturned:
			return declined(payment.FailureHardDecline, "charge_returned", "the bank payment was returned")
		}
	}
	if req.Amount.Minor > ch.Amount-ch.Refunded {
		return declined(payment.FailureHardDecline, "refund_exceeds_charge", "the refund exceeds the unrefunded amount of the charge")
	}
	ch.Refunded += req.Amount.Minor
	return connector.Result{Status: connector.StatusSucceeded, Reference: newReference("re_")}
}

func declined(class payment.FailureClass, code, msg string) connector.Result {
	return connector.Result{Status: connector.StatusDeclined, FailureClass: class, Code: code, Message: msg}
}

// validMoney refuses what no gateway would accept. A zero charge is a card
// verification (payment sessions allow it); a zero refund is meaningless.
func validMoney(m payment.Money, positive bool) (connector.Result, bool) {
	if m.Minor < 0 || (positive && m.Minor == 0) {
		return declined(payment.FailureHardDecline, "invalid_amount", "the amount is out of range"), true
	}
	if len(m.Currency) != 3 || !isUpper(m.Currency) {
		return declined(payment.FailureHardDecline, "invalid_currency", "the currency must be an ISO 4217 code"), true
	}
	return connector.Result{}, false
}

func sameCharge(a, b connector.ChargeRequest) bool {
	return a.PaymentID == b.PaymentID && a.Amount == b.Amount && a.Method == b.Method &&
		a.PaymentMethodID == b.PaymentMethodID
}

// ibanDigits reads an IBAN (two letters, two check digits, then the
// national account number, as SEPA payouts send it) as the digits of its
// national part, so that the magic values work for IBANs too: DE89 3704 0044
// 0532 0130 00 is account 370400440532013000 and settles; GB29 NWBK 6016
// 1331 9268 19 is 60161331926819. Anything else is returned as it is.
func ibanDigits(s string) string {
	if len(s) < 5 || len(s) > 34 || !isUpper(s[:2]) || !allDigits(s[2:4]) {
		return s
	}
	var b strings.Builder
	for _, r := range s[4:] {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r < 'A' || r > 'Z':
			return s
		}
	}
	return b.String()
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func isUpper(s string) bool {
	for _, r := range s {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// Capabilities implements connector.CapabilityReporter: an inquiry or a
// void of a key the sandbox never saw fences it.
func (s *Sandbox) Capabilities() connector.Capabilities {
	return connector.Capabilities{FencesKeys: true}
}
