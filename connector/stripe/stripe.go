package stripe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	stripego "github.com/stripe/stripe-go/v82"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// Metadata keys payd puts on every PaymentIntent and Refund it creates.
const (
	MetaAttemptKey = "payd_attempt_key"
	MetaPaymentID  = "payd_payment_id"
	MetaRefundID   = "payd_refund_id"
)

// KeyWindow is how long Stripe keeps an idempotency key: a request under it
// within that time answers the first one's result; after it, it is a new
// request.
const KeyWindow = 24 * time.Hour

// DefaultReplayWindow is how long after an attempt started an inquiry may
// still replay its create: an hour inside Stripe's 24 h, so that no clock
// skew makes a replay land on an expired key.
const DefaultReplayWindow = KeyWindow - time.Hour

// Config configures a Connector.
type Config struct {
	APIKey string // secret: only ever in the Authorization header
	// APIBase is Stripe's API origin; "" is https://api.stripe.com. Tests
	// point it at stripe-mock or a local fake.
	APIBase    string
	HTTPClient *http.Client // nil: a client with no timeout of its own (payd's context bounds each call)
	// ReturnURL is where a 3-D Secure redirect comes back to; "" lets
	// Stripe answer requires_action without a redirect_to_url (use_stripe_sdk).
	ReturnURL string
	// WebhookSecrets verify Stripe-Signature (whsec_…); two during rotation.
	WebhookSecrets   []string
	WebhookTolerance time.Duration // 0: 5 minutes
	ReplayWindow     time.Duration // 0: DefaultReplayWindow
	Now              func() time.Time
}

// Connector is the Stripe gateway.
type Connector struct {
	sc      *stripego.Client
	cfg     Config
	replay  time.Duration
	now     func() time.Time
	secrets []string
}

var (
	_ connector.Gateway            = (*Connector)(nil)
	_ connector.AttemptGateway     = (*Connector)(nil)
	_ connector.CapabilityReporter = (*Connector)(nil)
	_ connector.NotificationParser = (*Connector)(nil)
)

// ErrNoAPIKey: a Connector needs STRIPE_API_KEY.
var ErrNoAPIKey = errors.New("stripe: an API key is required")

// New builds a Connector.
func New(cfg Config) (*Connector, error) {
	if cfg.APIKey == "" {
		return nil, ErrNoAPIKey
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	var noRetries int64 // payd retries, inquires and times out itself
	bc := &stripego.BackendConfig{HTTPClient: hc, MaxNetworkRetries: &noRetries,
		LeveledLogger: &stripego.LeveledLogger{Level: stripego.LevelNull}}
	if cfg.APIBase != "" {
		base := strings.TrimRight(cfg.APIBase, "/")
		bc.URL = &base
	}
	backends := &stripego.Backends{
		API:     stripego.GetBackendWithConfig(stripego.APIBackend, bc),
		Connect: stripego.GetBackendWithConfig(stripego.ConnectBackend, bc),
		Uploads: stripego.GetBackendWithConfig(stripego.UploadsBackend, bc),
	}
	c := &Connector{sc: stripego.NewClient(cfg.APIKey, stripego.WithBackends(backends)), cfg: cfg,
		replay: cfg.ReplayWindow, now: cfg.Now}
	if c.replay <= 0 || c.replay >= KeyWindow {
		c.replay = DefaultReplayWindow
	}
	if c.now == nil {
		c.now = time.Now
	}
	for _, s := range cfg.WebhookSecrets {
		if s != "" {
			c.secrets = append(c.secrets, s)
		}
	}
	return c, nil
}

// Capabilities implements connector.CapabilityReporter: Stripe fences no
// key, and a key acts for 24 hours.
func (c *Connector) Capabilities() connector.Capabilities {
	return connector.Capabilities{FencesKeys: false, KeyWindow: KeyWindow}
}

// Charge implements connector.Gateway: a PaymentIntent created and
// confirmed in one request under the attempt's key.
func (c *Connector) Charge(ctx context.Context, req connector.ChargeRequest) (connector.Result, error) {
	if req.Method != payment.MethodCard {
		// payd's bank rails are not mapped to Stripe: nothing is sent
		return connector.Result{Status: connector.StatusDeclined, FailureClass: payment.FailureHardDecline,
			Code: "payment_method_unsupported", Message: "the Stripe connector charges cards only"}, nil
	}
	pi, err := c.sc.V1PaymentIntents.Create(ctx, c.createParams(ctx, req))
	if err != nil {
		return c.failure(err)
	}
	return intentResult(pi)
}

// createParams is the one create request of an attempt: Charge and an
// inquiry's replay send exactly the same (Stripe refuses a key reused
// with other parameters).
func (c *Connector) createParams(ctx context.Context, req connector.ChargeRequest) *stripego.PaymentIntentCreateParams {
	p := &stripego.PaymentIntentCreateParams{
		Amount:             stripego.Int64(req.Amount.Minor),
		Currency:           stripego.String(strings.ToLower(req.Amount.Currency)),
		PaymentMethod:      stripego.String(req.PaymentMethodID),
		PaymentMethodTypes: []*string{stripego.String("card")},
		Confirm:            stripego.Bool(true),
		CaptureMethod:      stripego.String(string(stripego.PaymentIntentCaptureMethodAutomatic)),
	}
	if c.cfg.ReturnURL != "" {
		p.ReturnURL = stripego.String(c.cfg.ReturnURL)
	}
	p.Context = ctx
	p.SetIdempotencyKey(req.IdempotencyKey)
	p.AddMetadata(MetaAttemptKey, req.IdempotencyKey)
	p.AddMetadata(MetaPaymentID, req.PaymentID)
	return p
}

// Inquire implements connector.Gateway with the key alone: the search
// only (no reference, no request to replay). See InquireAttempt.
func (c *Connector) Inquire(ctx context.Context, idempotencyKey string) (connector.Result, error) {
	return c.InquireAttempt(ctx, connector.Attempt{IdempotencyKey: idempotencyKey})
}

// InquireAttempt implements connector.AttemptGateway:
//  1. the recorded reference: retrieve that PaymentIntent;
//  2. none recorded (the response was lost): search by metadata
//     payd_attempt_key; found, its status answers;
//  3. not found (never created, or not yet in the search index, which lags
//     by up to a minute): within ReplayWindow of the attempt's start, the
//     create is replayed, same Idempotency-Key, same parameters. Stripe
//     answers a request it has seen with its first result (the same
//     PaymentIntent), and runs one it never saw exactly once: the attempt's
//     one charge, now. Never a second PaymentIntent for the attempt.
//  4. past ReplayWindow, nothing is replayed. Until the key's 24 h are
//     over, "not found" is an unknown outcome (asked again later). After
//     them it is StatusNotFound, and final: the search index has long
//     caught up, payd's own calls under the key ended within its gateway
//     timeout, payd sends nothing under that key again (a new attempt has
//     a new key) and Stripe would treat any request under it as new, so
//     nothing can ever charge for this attempt. payd then follows its
//     retry policy with a new attempt, which is safe: the old one is
//     confirmed uncharged. The engine checks the same rule
//     (connector.NotFoundFinal).
func (c *Connector) InquireAttempt(ctx context.Context, a connector.Attempt) (connector.Result, error) {
	pi, err := c.find(ctx, a)
	if err != nil {
		return c.failure(err)
	}
	if pi != nil {
		return intentResult(pi)
	}
	age := c.age(a)
	switch {
	case a.Charge.IdempotencyKey == a.IdempotencyKey && a.IdempotencyKey != "" && age < c.replay:
		return c.Charge(ctx, a.Charge)
	case age >= KeyWindow:
		return connector.Result{Status: connector.StatusNotFound, Message: "no PaymentIntent for the key, whose 24 h are over"}, nil
	}
	return connector.Result{}, &connector.Error{Class: payment.FailureUnknown, Code: "not_found_unfenced", MaybeProcessed: true,
		Err: fmt.Errorf("stripe: no PaymentIntent found for attempt %s yet, and its key may still act", a.IdempotencyKey)}
}

// age is how long ago the attempt started; unknown counts as new.
func (c *Connector) age(a connector.Attempt) time.Duration {
	if a.StartedAt.IsZero() {
		return 0
	}
	return c.now().Sub(a.StartedAt)
}

// find answers the attempt's PaymentIntent: by reference, else by search;
// nil when the search finds none.
func (c *Connector) find(ctx context.Context, a connector.Attempt) (*stripego.PaymentIntent, error) {
	if strings.HasPrefix(a.Reference, "pi_") {
		pi, err := c.sc.V1PaymentIntents.Retrieve(ctx, a.Reference, &stripego.PaymentIntentRetrieveParams{})
		if err != nil {
			return nil, err
		}
		// a reference of another attempt must never answer for this one
		if k := pi.Metadata[MetaAttemptKey]; k == "" || k == a.IdempotencyKey {
			return pi, nil
		}
	}
	return c.search(ctx, a.IdempotencyKey)
}

// search finds the PaymentIntent whose metadata names the attempt key.
func (c *Connector) search(ctx context.Context, key string) (*stripego.PaymentIntent, error) {
	q := fmt.Sprintf("metadata['%s']:'%s'", MetaAttemptKey, strings.ReplaceAll(key, "'", `\'`))
	params := &stripego.PaymentIntentSearchParams{SearchParams: stripego.SearchParams{Query: q, Limit: stripego.Int64(10)}}
	var found *stripego.PaymentIntent
	for pi, err := range c.sc.V1PaymentIntents.Search(ctx, params) {
		if err != nil {
			return nil, err
		}
		if pi.Metadata[MetaAttemptKey] != key {
			continue // the search is a query language: trust only an exact match
		}
		if found != nil && found.ID != pi.ID {
			return nil, &connector.Error{Class: payment.FailureUnknown, Code: "duplicate_intents", MaybeProcessed: true,
				Err: fmt.Errorf("stripe: two PaymentIntents (%s, %s) for attempt %s", found.ID, pi.ID, key)}
		}
		found = pi
	}
	return found, nil
}

// Void implements connector.Gateway with the key alone (search). See
// VoidAttempt.
func (c *Connector) Void(ctx context.Context, idempotencyKey string) (connector.Result, error) {
	return c.VoidAttempt(ctx, connector.Attempt{IdempotencyKey: idempotencyKey})
}

// VoidAttempt implements connector.AttemptGateway: the attempt's
// PaymentIntent (by reference, else by search) is canceled unless it
// already ended. A void never creates one: none found within the key's
// 24 h is an unknown outcome (the engine tries again, and a charge that
// lands later is found and refunded); after them, StatusNotFound.
func (c *Connector) VoidAttempt(ctx context.Context, a connector.Attempt) (connector.Result, error) {
	pi, err := c.find(ctx, a)
	if err != nil {
		return c.failure(err)
	}
	if pi == nil {
		if c.age(a) >= KeyWindow {
			return connector.Result{Status: connector.StatusNotFound}, nil
		}
		return connector.Result{}, &connector.Error{Class: payment.FailureUnknown, Code: "not_found_unfenced", MaybeProcessed: true,
			Err: fmt.Errorf("stripe: no PaymentIntent found to void for attempt %s yet", a.IdempotencyKey)}
	}
	switch pi.Status {
	case stripego.PaymentIntentStatusSucceeded:
		return connector.Result{Status: connector.StatusSucceeded, Reference: pi.ID}, nil
	case stripego.PaymentIntentStatusCanceled:
		return connector.Result{Status: connector.StatusVoided, Reference: pi.ID}, nil
	case stripego.PaymentIntentStatusProcessing:
		return connector.Result{}, &connector.Error{Class: payment.FailureUnknown, Code: "processing", MaybeProcessed: true,
			Err: fmt.Errorf("stripe: PaymentIntent %s is processing", pi.ID)}
	}
	p := &stripego.PaymentIntentCancelParams{CancellationReason: stripego.String("abandoned")}
	p.Context = ctx
	p.SetIdempotencyKey("void:" + a.IdempotencyKey)
	canceled, err := c.sc.V1PaymentIntents.Cancel(ctx, pi.ID, p)
	if err != nil {
		var se *stripego.Error
		if errors.As(err, &se) && se.PaymentIntent != nil && se.PaymentIntent.Status == stripego.PaymentIntentStatusSucceeded {
			// the customer completed the action first: charged
			return connector.Result{Status: connector.StatusSucceeded, Reference: se.PaymentIntent.ID}, nil
		}
		return c.failure(err)
	}
	switch canceled.Status {
	case stripego.PaymentIntentStatusCanceled:
		return connector.Result{Status: connector.StatusVoided, Reference: canceled.ID}, nil
	case stripego.PaymentIntentStatusSucceeded:
		return connector.Result{Status: connector.StatusSucceeded, Reference: canceled.ID}, nil
	}
	return connector.Result{}, &connector.Error{Class: payment.FailureUnknown, Code: "unexpected_status", MaybeProcessed: true,
		Err: fmt.Errorf("stripe: cancel of %s answered %s", canceled.ID, canceled.Status)}
}

// Settlement implements connector.Gateway: cards settle at once, so a
// succeeded PaymentIntent is settled (payd never has a SENT Stripe charge).
func (c *Connector) Settlement(ctx context.Context, reference string) (connector.Result, error) {
	pi, err := c.sc.V1PaymentIntents.Retrieve(ctx, reference, &stripego.PaymentIntentRetrieveParams{})
	if err != nil {
		return c.failure(err)
	}
	if pi.Status != stripego.PaymentIntentStatusSucceeded {
		return intentResult(pi)
	}
	at := time.Unix(pi.Created, 0).UTC()
	return connector.Result{Status: connector.StatusSettled, Reference: pi.ID, SettledAt: at}, nil
}

// Refund implements connector.Gateway: a Refund of the PaymentIntent,
// under the refund id as Idempotency-Key.
func (c *Connector) Refund(ctx context.Context, req connector.RefundRequest) (connector.Result, error) {
	p := &stripego.RefundCreateParams{PaymentIntent: stripego.String(req.GatewayReference),
		Amount: stripego.Int64(req.Amount.Minor)}
	p.Context = ctx
	p.SetIdempotencyKey(req.IdempotencyKey)
	p.AddMetadata(MetaRefundID, req.IdempotencyKey)
	p.AddMetadata(MetaPaymentID, req.PaymentID)
	r, err := c.sc.V1Refunds.Create(ctx, p)
	if err != nil {
		return c.failure(err)
	}
	switch r.Status {
	case stripego.RefundStatusSucceeded, stripego.RefundStatusPending:
		// pending: accepted, the money is on its way back (cards)
		return connector.Result{Status: connector.StatusSucceeded, Reference: r.ID}, nil
	case stripego.RefundStatusFailed, stripego.RefundStatusCanceled:
		return connector.Result{Status: connector.StatusDeclined, Reference: r.ID, FailureClass: payment.FailureHardDecline,
			Code: "refund_" + string(r.Status), Message: string(r.FailureReason)}, nil
	}
	return connector.Result{}, &connector.Error{Class: payment.FailureUnknown, Code: "unexpected_status", MaybeProcessed: true,
		Err: fmt.Errorf("stripe: refund %s answered %q", r.ID, r.Status)}
}

// intentResult maps a PaymentIntent to payd's Result.
func intentResult(pi *stripego.PaymentIntent) (connector.Result, error) {
	switch pi.Status {
	case stripego.PaymentIntentStatusSucceeded:
		return connector.Result{Status: connector.StatusSucceeded, Reference: pi.ID}, nil
	case stripego.PaymentIntentStatusRequiresAction:
		r := connector.Result{Status: connector.StatusRequiresAction, Reference: pi.ID}
		if na := pi.NextAction; na != nil && na.RedirectToURL != nil {
			r.ActionURL = na.RedirectToURL.URL
		}
		return r, nil
	case stripego.PaymentIntentStatusRequiresPaymentMethod:
		// confirmed and declined: the last error says why
		class, code, msg := payment.FailureHardDecline, "card_declined", ""
		if e := pi.LastPaymentError; e != nil {
			class, code = ClassifyDecline(string(e.DeclineCode), string(e.Code))
			msg = e.Msg
		}
		return connector.Result{Status: connector.StatusDeclined, Reference: pi.ID, FailureClass: class, Code: code, Message: msg}, nil
	case stripego.PaymentIntentStatusCanceled:
		return connector.Result{Status: connector.StatusDeclined, Reference: pi.ID, FailureClass: payment.FailureHardDecline,
			Code: "canceled", Message: "the PaymentIntent was canceled"}, nil
	}
	// processing, requires_capture, requires_confirmation: not an outcome
	// payd can record yet; asked again
	return connector.Result{}, &connector.Error{Class: payment.FailureUnknown, Code: "intent_" + string(pi.Status), MaybeProcessed: true,
		Err: fmt.Errorf("stripe: PaymentIntent %s is %s", pi.ID, pi.Status)}
}

// failure maps an error of the client: a card error is a decline (data),
// the rest a *connector.Error saying whether Stripe may have acted.
func (c *Connector) failure(err error) (connector.Result, error) {
	var se *stripego.Error
	if !errors.As(err, &se) {
		var op *net.OpError
		maybe := !(errors.As(err, &op) && op.Op == "dial")
		return connector.Result{}, &connector.Error{Class: payment.FailureTransient, Code: "network", MaybeProcessed: maybe, Err: err}
	}
	ref := ""
	if se.PaymentIntent != nil {
		ref = se.PaymentIntent.ID
	}
	msg := c.redact(se.Msg)
	wrap := fmt.Errorf("stripe: %s %s: %s", se.Type, se.Code, msg) // no request, no key
	switch {
	case se.Type == stripego.ErrorTypeCard:
		class, code := ClassifyDecline(string(se.DeclineCode), string(se.Code))
		return connector.Result{Status: connector.StatusDeclined, Reference: ref, FailureClass: class, Code: code, Message: msg}, nil
	case se.HTTPStatusCode == http.StatusTooManyRequests && se.Code == stripego.ErrorCodeLockTimeout:
		// another request under the same key is running: it may charge
		return connector.Result{}, &connector.Error{Class: payment.FailureUnknown, Code: string(se.Code), MaybeProcessed: true, Err: wrap}
	case se.HTTPStatusCode == http.StatusTooManyRequests:
		return connector.Result{}, &connector.Error{Class: payment.FailureRateLimited, Code: "rate_limited", MaybeProcessed: false,
			RetryAfter: time.Second, Err: wrap}
	case se.Type == stripego.ErrorTypeIdempotency || se.HTTPStatusCode == http.StatusConflict:
		return connector.Result{}, &connector.Error{Class: payment.FailureUnknown, Code: "idempotency_error", MaybeProcessed: true, Err: wrap}
	case se.HTTPStatusCode == http.StatusUnauthorized || se.HTTPStatusCode == http.StatusForbidden:
		// refused before anything was done: a configuration problem
		return connector.Result{}, &connector.Error{Class: payment.FailureTransient, Code: "authentication_error", MaybeProcessed: false, Err: wrap}
	case se.HTTPStatusCode >= 500 || se.HTTPStatusCode == 0:
		return connector.Result{}, &connector.Error{Class: payment.FailureTransient, Code: "api_error", MaybeProcessed: true, Err: wrap}
	case se.HTTPStatusCode == http.StatusNotFound || se.Type == stripego.ErrorTypeInvalidRequest:
		// Stripe refused the request as invalid: nothing was charged
		code := string(se.Code)
		if code == "" {
			code = "invalid_request"
		}
		return connector.Result{Status: connector.StatusDeclined, Reference: ref, FailureClass: payment.FailureHardDecline,
			Code: code, Message: msg}, nil
	}
	return connector.Result{}, &connector.Error{Class: payment.FailureUnknown, Code: "stripe_" + strconv.Itoa(se.HTTPStatusCode),
		MaybeProcessed: true, Err: wrap}
}

// List implements connector.Gateway: the succeeded PaymentIntents and the
// Refunds created in [From, To), read from Stripe page by page (newest
// first there) and answered oldest first, a page at a time. The cursor is
// the last entry's "<unix nanos>|<reference>"; each page reads the window
// again, so a window should be a closed one (reconciliation's are).
func (c *Connector) List(ctx context.Context, q connector.ListQuery) (connector.ListPage, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = connector.DefaultListLimit
	}
	limit = min(limit, connector.MaxListLimit)
	var after time.Time
	var afterRef string
	if q.Cursor != "" {
		ns, ref, ok := strings.Cut(q.Cursor, "|")
		n, err := strconv.ParseInt(ns, 10, 64)
		if !ok || err != nil || ref == "" {
			return connector.ListPage{}, fmt.Errorf("stripe: list cursor %q: malformed", q.Cursor)
		}
		after, afterRef = time.Unix(0, n).UTC(), ref
	}
	rng := &stripego.RangeQueryParams{}
	if !q.From.IsZero() {
		rng.GreaterThanOrEqual = q.From.Unix()
	}
	if !q.To.IsZero() {
		to := q.To.Unix()
		if q.To.After(time.Unix(to, 0)) {
			to++
		}
		rng.LesserThan = to
	}
	in := func(t time.Time) bool {
		return (q.From.IsZero() || !t.Before(q.From)) && (q.To.IsZero() || t.Before(q.To))
	}
	var all []connector.LedgerEntry
	pp := &stripego.PaymentIntentListParams{CreatedRange: rng}
	pp.Limit = stripego.Int64(100)
	pp.Context = ctx
	for pi, err := range c.sc.V1PaymentIntents.List(ctx, pp) {
		if err != nil {
			_, gerr := c.failure(err)
			return connector.ListPage{}, gerr
		}
		at := time.Unix(pi.Created, 0).UTC()
		if pi.Status != stripego.PaymentIntentStatusSucceeded || !in(at) {
			continue // only money that moved
		}
		amt := pi.AmountReceived
		if amt == 0 {
			amt = pi.Amount
		}
		all = append(all, connector.LedgerEntry{Kind: connector.EntryCharge, Reference: pi.ID,
			IdempotencyKey: pi.Metadata[MetaAttemptKey], PaymentID: pi.Metadata[MetaPaymentID],
			Amount: payment.Money{Minor: amt, Currency: strings.ToUpper(string(pi.Currency))},
			Status: connector.StatusSucceeded, CreatedAt: at})
	}
	rp := &stripego.RefundListParams{CreatedRange: rng}
	rp.Limit = stripego.Int64(100)
	rp.Context = ctx
	for r, err := range c.sc.V1Refunds.List(ctx, rp) {
		if err != nil {
			_, gerr := c.failure(err)
			return connector.ListPage{}, gerr
		}
		at := time.Unix(r.Created, 0).UTC()
		if !in(at) || r.Status == stripego.RefundStatusFailed || r.Status == stripego.RefundStatusCanceled {
			continue
		}
		charge := ""
		if r.PaymentIntent != nil {
			charge = r.PaymentIntent.ID
		}
		all = append(all, connector.LedgerEntry{Kind: connector.EntryRefund, Reference: r.ID,
			IdempotencyKey: r.Metadata[MetaRefundID], PaymentID: r.Metadata[MetaPaymentID], ChargeReference: charge,
			Amount: payment.Money{Minor: r.Amount, Currency: strings.ToUpper(string(r.Currency))},
			Status: connector.StatusSucceeded, CreatedAt: at})
	}
	sort.Slice(all, func(i, j int) bool {
		if !all[i].CreatedAt.Equal(all[j].CreatedAt) {
			return all[i].CreatedAt.Before(all[j].CreatedAt)
		}
		return all[i].Reference < all[j].Reference
	})
	start := 0
	if afterRef != "" {
		start = sort.Search(len(all), func(i int) bool {
			e := all[i]
			return e.CreatedAt.After(after) || (e.CreatedAt.Equal(after) && e.Reference > afterRef)
		})
	}
	end := min(start+limit, len(all))
	page := connector.ListPage{Entries: all[start:end]}
	if end < len(all) && end > start {
		last := all[end-1]
		page.Next = strconv.FormatInt(last.CreatedAt.UnixNano(), 10) + "|" + last.Reference
	}
	return page, nil
}

// redact removes the API key from a message Stripe (or a mock of it)
// answered: an error may end up in a log or an attempt row.
func (c *Connector) redact(msg string) string {
	if c.cfg.APIKey == "" {
		return msg
	}
	return strings.ReplaceAll(msg, c.cfg.APIKey, "[redacted]")
}
