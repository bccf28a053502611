package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/payment"
)

// DefaultClientTimeout bounds every call of a Client built with a nil
// *http.Client.
const DefaultClientTimeout = 30 * time.Second

const maxResponse = 4 << 20

// Client is a connector.Gateway that talks to a sandbox Handler over HTTP and
// translates what the network does into *connector.Error:
//
//	no connection made (dial refused, DNS)     transient, MaybeProcessed false
//	timeout after connecting                   unknown, MaybeProcessed true
//	reset, EOF, response lost                  unknown, MaybeProcessed true
//	503 with error_type "unavailable"          transient, MaybeProcessed false (refused before processing)
//	other 503                                  transient, MaybeProcessed true
//	other 5xx, unreadable 2xx                  unknown, MaybeProcessed true
//	429                                        rate_limited, MaybeProcessed false, RetryAfter
//	other 4xx (refused before processing)      transient, MaybeProcessed false
type Client struct {
	base string
	hc   *http.Client
}

var (
	_ connector.Gateway   = (*Client)(nil)
	_ connector.Tokenizer = (*Client)(nil)
)

// NewClient returns a gateway backed by the sandbox Handler mounted at
// baseURL (for `payd sandbox`, "http://host:port/sandbox"). A nil hc means a
// client with DefaultClientTimeout. The dynamic type is *Client, whose Ledger
// and CompleteAction a checker may use.
func NewClient(baseURL string, hc *http.Client) connector.Gateway {
	if hc == nil {
		hc = &http.Client{Timeout: DefaultClientTimeout}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: hc}
}

// Charge implements connector.Gateway.
func (c *Client) Charge(ctx context.Context, req connector.ChargeRequest) (connector.Result, error) {
	return c.result(ctx, http.MethodPost, "/charges", chargeBodyOf(req))
}

// Tokenize implements connector.Tokenizer. A 422 session_data_invalid is
// connector.ErrSessionDataInvalid.
func (c *Client) Tokenize(ctx context.Context, req connector.TokenizeRequest) (connector.Token, error) {
	var out tokenBody
	err := c.do(ctx, http.MethodPost, "/tokens", tokenizeBody{SessionData: req.SessionData, SessionID: req.SessionID,
		Amount: req.Amount.Minor, Currency: req.Amount.Currency}, &out)
	if ge := (*connector.Error)(nil); errors.As(err, &ge) && ge.Code == "session_data_invalid" {
		return connector.Token{}, fmt.Errorf("sandbox: tokenize: %w", connector.ErrSessionDataInvalid)
	}
	if err != nil {
		return connector.Token{}, err
	}
	return connector.Token{Token: out.Token, Method: out.Method, Type: out.Type}, nil
}

// Inquire implements connector.Gateway.
func (c *Client) Inquire(ctx context.Context, idempotencyKey string) (connector.Result, error) {
	return c.result(ctx, http.MethodGet, "/charges/"+url.PathEscape(idempotencyKey), nil)
}

// Settlement implements connector.Gateway.
func (c *Client) Settlement(ctx context.Context, reference string) (connector.Result, error) {
	return c.result(ctx, http.MethodGet, "/settlements/"+url.PathEscape(reference), nil)
}

// Refund implements connector.Gateway.
func (c *Client) Refund(ctx context.Context, req connector.RefundRequest) (connector.Result, error) {
	return c.result(ctx, http.MethodPost, "/refunds", refundBodyOf(req))
}

// Void implements connector.Gateway.
func (c *Client) Void(ctx context.Context, idempotencyKey string) (connector.Result, error) {
	return c.result(ctx, http.MethodPost, "/charges/"+url.PathEscape(idempotencyKey)+"/void", nil)
}

// List implements connector.Gateway.
func (c *Client) List(ctx context.Context, q connector.ListQuery) (connector.ListPage, error) {
	v := url.Values{}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/entries"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var body listBody
	if err := c.do(ctx, http.MethodGet, path, nil, &body); err != nil {
		return connector.ListPage{}, err
	}
	page := connector.ListPage{Next: body.Next, Entries: make([]connector.LedgerEntry, 0, len(body.Entries))}
	for _, e := range body.Entries {
		page.Entries = append(page.Entries, e.entry())
	}
	return page, nil
}

// Ledger reads the remote sandbox's ledger; see (*Sandbox).Ledger and the
// package-level DoubleCharged.
func (c *Client) Ledger(ctx context.Context) ([]Charge, error) {
	var body ledgerBody
	if err := c.do(ctx, http.MethodGet, "/ledger", nil, &body); err != nil {
		return nil, fmt.Errorf("sandbox ledger: %w", err)
	}
	return body.Charges, nil
}

// CompleteAction completes a remote 3-D Secure challenge, as the customer's
// browser would; see (*Sandbox).CompleteAction.
func (c *Client) CompleteAction(ctx context.Context, reference string, succeed bool) error {
	result := "fail"
	if succeed {
		result = "succeed"
	}
	path := "/challenge/" + url.PathEscape(reference) + "?result=" + result
	err := c.do(ctx, http.MethodPost, path, nil, nil)
	var ge *connector.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ge) && ge.Code == "challenge_not_found":
		return fmt.Errorf("sandbox: challenge %s: %w", reference, payment.ErrNotFound)
	case errors.As(err, &ge) && ge.Code == "challenge_completed":
		return fmt.Errorf("sandbox: challenge %s: %w", reference, payment.ErrInvalidState)
	case errors.As(err, &ge) && ge.Code == "challenge_canceled":
		return fmt.Errorf("sandbox: challenge %s: %w", reference, ErrAuthenticationCanceled)
	}
	return fmt.Errorf("sandbox: challenge %s: %w", reference, err)
}

func (c *Client) result(ctx context.Context, method, path string, body any) (connector.Result, error) {
	var out resultBody
	if err := c.do(ctx, method, path, body, &out); err != nil {
		return connector.Result{}, err
	}
	if out.Status == "" {
		return connector.Result{}, &connector.Error{Class: payment.FailureUnknown, Code: "bad_response",
			MaybeProcessed: true, Err: errors.New("sandbox: response without a status")}
	}
	return out.result(), nil
}

// do sends one request and decodes a 2xx JSON answer into out. Every failure
// is a *connector.Error.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rdr io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return &connector.Error{Class: payment.FailureTransient, Code: "bad_request", Err: err}
		}
		rdr = bytes.NewReader(b)
	}
	// Whether a connection was ever made decides whether the request can have
	// reached the sandbox at all.
	var connected atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { connected.Store(true) },
	})
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rdr)
	if err != nil {
		return &connector.Error{Class: payment.FailureTransient, Code: "bad_request", Err: err}
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return transportError(err, connected.Load())
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		// The status line arrived but the body did not: as good as lost.
		return transportError(err, true)
	}
	if resp.StatusCode/100 == 2 {
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return &connector.Error{Class: payment.FailureUnknown, Code: "bad_response", MaybeProcessed: true,
				Err: fmt.Errorf("sandbox: decode %s %s: %w", method, path, err)}
		}
		return nil
	}
	return statusError(resp, data)
}

// transportError classifies a request that got no response.
func transportError(err error, connected bool) *connector.Error {
	var op *net.OpError
	var dns *net.DNSError
	if !connected || (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &dns) {
		return &connector.Error{Class: payment.FailureTransient, Code: "connection_failed", MaybeProcessed: false, Err: err}
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &connector.Error{Class: payment.FailureUnknown, Code: "timeout", MaybeProcessed: true, Err: err}
	}
	return &connector.Error{Class: payment.FailureUnknown, Code: "connection_lost", MaybeProcessed: true, Err: err}
}

// statusError classifies a non-2xx answer.
func statusError(resp *http.Response, data []byte) *connector.Error {
	var eb errorBody
	_ = json.Unmarshal(data, &eb)
	code := "http_" + strconv.Itoa(resp.StatusCode)
	if len(eb.ErrorCodes) > 0 && eb.ErrorCodes[0] != "" {
		code = eb.ErrorCodes[0]
	}
	msg := eb.Message
	if msg == "" {
		msg = strings.TrimSpace(string(data))
	}
	err := fmt.Errorf("sandbox: %s: %s", resp.Status, msg)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return &connector.Error{Class: payment.FailureRateLimited, Code: code, MaybeProcessed: false,
			RetryAfter: retryAfter(resp.Header.Get("Retry-After")), Err: err}
	case resp.StatusCode == http.StatusServiceUnavailable:
		ge := &connector.Error{Class: payment.FailureTransient, Code: code, MaybeProcessed: eb.ErrorType != errorTypeUnavailable, Err: err}
		if v := resp.Header.Get("Retry-After"); v != "" {
			ge.RetryAfter = retryAfter(v)
		}
		return ge
	case resp.StatusCode >= 500:
		return &connector.Error{Class: payment.FailureUnknown, Code: code, MaybeProcessed: true, Err: err}
	default:
		// The sandbox refused the request before processing it (bad body,
		// wrong path): nothing happened.
		return &connector.Error{Class: payment.FailureTransient, Code: code, MaybeProcessed: false, Err: err}
	}
}

// retryAfter parses Retry-After (seconds or an HTTP date); 1s when absent.
func retryAfter(v string) time.Duration {
	if v == "" {
		return time.Second
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
		return 0
	}
	return time.Second
}

// Capabilities implements connector.CapabilityReporter: the sandbox behind
// the client fences keys.
func (c *Client) Capabilities() connector.Capabilities {
	return connector.Capabilities{FencesKeys: true}
}
