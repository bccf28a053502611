package intake

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/payd/payd/payment"
)

// The request bodies of payment sessions (seed 003): every request field of
// the vendor's published payment-sessions API, decoded strictly. Amounts are
// integer minor units (DESIGN.md §3). Objects the sandbox does not act on
// (shipping, recipient, processing, instruction, sender,
// payment_method_configuration) must be JSON objects and are kept and
// echoed as sent.

// rawObject is a member that must be a JSON object (or null), kept as sent.
type rawObject struct {
	raw json.RawMessage
	bad bool
}

func (o *rawObject) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
	case len(b) > 0 && b[0] == '{':
		o.raw = append(json.RawMessage(nil), b...)
	default:
		o.bad = true
	}
	return nil
}

func (o rawObject) MarshalJSON() ([]byte, error) {
	if len(o.raw) == 0 {
		return []byte("null"), nil
	}
	return o.raw, nil
}

func (o rawObject) IsZero() bool { return len(o.raw) == 0 }

type sessionAddress struct {
	AddressLine1 *string `json:"address_line1,omitempty"`
	AddressLine2 *string `json:"address_line2,omitempty"`
	City         *string `json:"city,omitempty"`
	State        *string `json:"state,omitempty"`
	Zip          *string `json:"zip,omitempty"`
	Country      *string `json:"country,omitempty"`
}

type sessionPhone struct {
	CountryCode *string `json:"country_code,omitempty"`
	Number      *string `json:"number,omitempty"`
}

type sessionBilling struct {
	Address *sessionAddress `json:"address,omitempty"`
	Phone   *sessionPhone   `json:"phone,omitempty"`
}

type sessionCustomer struct {
	ID        *string       `json:"id,omitempty"`
	Email     *string       `json:"email,omitempty"`
	Name      *string       `json:"name,omitempty"`
	Phone     *sessionPhone `json:"phone,omitempty"`
	TaxNumber *string       `json:"tax_number,omitempty"`
	Summary   rawObject     `json:"summary,omitzero"`
}

type sessionDescriptor struct {
	Name      *string `json:"name,omitempty"`
	City      *string `json:"city,omitempty"`
	Reference *string `json:"reference,omitempty"`
}

// sessionItem is a line item (the response's products).
type sessionItem struct {
	Type           *string `json:"type,omitempty"`
	Name           *string `json:"name,omitempty"`
	Quantity       *int64  `json:"quantity,omitempty"`
	UnitPrice      *int64  `json:"unit_price,omitempty"`
	Reference      *string `json:"reference,omitempty"`
	CommodityCode  *string `json:"commodity_code,omitempty"`
	UnitOfMeasure  *string `json:"unit_of_measure,omitempty"`
	TotalAmount    *int64  `json:"total_amount,omitempty"`
	TaxAmount      *int64  `json:"tax_amount,omitempty"`
	DiscountAmount *int64  `json:"discount_amount,omitempty"`
	URL            *string `json:"url,omitempty"`
	ImageURL       *string `json:"image_url,omitempty"`
}

type sessionCommission struct {
	Amount     *int64       `json:"amount,omitempty"`
	Percentage *json.Number `json:"percentage,omitempty"`
}

type sessionAllocation struct {
	ID         *string            `json:"id,omitempty"`
	Amount     *int64             `json:"amount,omitempty"`
	Reference  *string            `json:"reference,omitempty"`
	Commission *sessionCommission `json:"commission,omitempty"`
}

type sessionRisk struct {
	Enabled *bool `json:"enabled,omitempty"`
}

type sessionRetry struct {
	MaxAttempts *int64 `json:"max_attempts,omitempty"`
}

type session3DS struct {
	Enabled            *bool   `json:"enabled,omitempty"`
	AttemptN3D         *bool   `json:"attempt_n3d,omitempty"`
	ChallengeIndicator *string `json:"challenge_indicator,omitempty"`
	Exemption          *string `json:"exemption,omitempty"`
	AllowUpgrade       *bool   `json:"allow_upgrade,omitempty"`
}

// createSessionRequest is POST /v1/payment-sessions. invoice_id is payd's
// own field: the invoice a successful payment settles (by id or external
// id), as seed 001 payments do.
type createSessionRequest struct {
	Amount                     decimal             `json:"amount"`
	Currency                   *string             `json:"currency,omitempty"`
	Billing                    *sessionBilling     `json:"billing,omitempty"`
	SuccessURL                 *string             `json:"success_url,omitempty"`
	FailureURL                 *string             `json:"failure_url,omitempty"`
	PaymentType                *string             `json:"payment_type,omitempty"`
	BillingDescriptor          *sessionDescriptor  `json:"billing_descriptor,omitempty"`
	Reference                  *string             `json:"reference,omitempty"`
	Description                *string             `json:"description,omitempty"`
	Customer                   *sessionCustomer    `json:"customer,omitempty"`
	Shipping                   rawObject           `json:"shipping,omitzero"`
	Recipient                  rawObject           `json:"recipient,omitzero"`
	Processing                 rawObject           `json:"processing,omitzero"`
	Instruction                rawObject           `json:"instruction,omitzero"`
	ProcessingChannelID        *string             `json:"processing_channel_id,omitempty"`
	ExpiresOn                  *string             `json:"expires_on,omitempty"`
	PaymentMethodConfiguration rawObject           `json:"payment_method_configuration,omitzero"`
	EnabledPaymentMethods      []string            `json:"enabled_payment_methods,omitempty"`
	DisabledPaymentMethods     []string            `json:"disabled_payment_methods,omitempty"`
	Items                      []sessionItem       `json:"items,omitempty"`
	AmountAllocations          []sessionAllocation `json:"amount_allocations,omitempty"`
	Risk                       *sessionRisk        `json:"risk,omitempty"`
	CustomerRetry              *sessionRetry       `json:"customer_retry,omitempty"`
	DisplayName                *string             `json:"display_name,omitempty"`
	Metadata                   map[string]any      `json:"metadata,omitempty"`
	Locale                     *string             `json:"locale,omitempty"`
	ThreeDS                    *session3DS         `json:"3ds,omitempty"`
	Sender                     rawObject           `json:"sender,omitzero"`
	Capture                    *bool               `json:"capture,omitempty"`
	CaptureOn                  *string             `json:"capture_on,omitempty"`
	InvoiceID                  *string             `json:"invoice_id,omitempty"`
}

// Session limits (DESIGN.md §5, seed 003).
const (
	maxSessionURL          = 1024
	maxSessionReference    = 50
	maxSessionDescription  = 100
	maxSessionDisplayName  = 255
	maxSessionMetadata     = 18
	maxSessionMetadataText = 255
	maxSessionItems        = 100
	maxSessionText         = 255
	maxIPAddress           = 45
	maxSessionData         = 1024
	// DefaultSessionLifetime is a session's life when expires_on is not given.
	DefaultSessionLifetime = time.Hour
	// MaxSessionLifetime bounds expires_on.
	MaxSessionLifetime = 30 * 24 * time.Hour
	// DefaultSessionRetries is customer_retry.max_attempts when not given:
	// how many payments a session may make (the first and its retries).
	DefaultSessionRetries = 5
	maxSessionRetries     = 10
)

var processingChannelID = regexp.MustCompile(`^(pc)_(\w{26})$`)

var localePattern = regexp.MustCompile(`^[a-z]{2,3}(-[A-Z]{2})?$`)

var sessionPaymentTypes = map[string]bool{"Regular": true, "Recurring": true, "MOTO": true, "Installment": true, "Unscheduled": true}

// vendorPaymentMethods are the payment method names the vendor's API
// knows; payd pays with those in sessionMethods only.
var vendorPaymentMethods = map[string]bool{"alipay_cn": true, "alipay_hk": true, "alma": true, "applepay": true,
	"bancontact": true, "benefit": true, "bizum": true, "card": true, "dana": true, "eps": true, "gcash": true,
	"googlepay": true, "ideal": true, "kakaopay": true, "klarna": true, "knet": true, "mbway": true, "mobilepay": true,
	"multibanco": true, "p24": true, "paypal": true, "qpay": true, "sepa": true, "stcpay": true, "tabby": true,
	"tamara": true, "tng": true, "truemoney": true, "twint": true, "vipps": true, "ach": true, "remember_me": true,
	"stored_card": true}

// sessionMethods are what a session can pay with, in display order.
var sessionMethods = []string{"card", "ach"}

// validSession is a create request that passed validation, normalized.
type validSession struct {
	Amount         payment.Money   `json:"amount"`
	Reference      string          `json:"reference"`
	Description    string          `json:"description"`
	DisplayName    string          `json:"display_name"`
	Locale         string          `json:"locale"`
	SuccessURL     string          `json:"success_url"`
	FailureURL     string          `json:"failure_url"`
	EnabledMethods []string        `json:"enabled_methods"`
	InvoiceRef     string          `json:"invoice_id"`
	ExpiresOn      *time.Time      `json:"expires_on"` // nil: DefaultSessionLifetime from now
	RetryLimit     int             `json:"retry_limit"`
	Request        json.RawMessage `json:"request"` // the request as stored and echoed
}

// parseMinor reads an integer amount in minor units (seed 003): a JSON
// number of digits only, 0 allowed, up to max. It returns the error code.
func parseMinor(d decimal, max int64) (int64, string) {
	switch {
	case d.absent():
		return 0, "amount_required"
	case d.Kind != 'n':
		return 0, "amount_invalid_type"
	case strings.HasPrefix(d.Raw, "-"):
		return 0, "amount_negative"
	case strings.ContainsAny(d.Raw, "eE"):
		return 0, "amount_invalid"
	case strings.Contains(d.Raw, "."):
		return 0, "amount_not_integer"
	}
	if len(d.Raw) > 19 {
		return 0, "amount_too_large"
	}
	var n int64
	for _, c := range d.Raw {
		if c < '0' || c > '9' {
			return 0, "amount_invalid"
		}
		n = n*10 + int64(c-'0')
		if n < 0 {
			return 0, "amount_too_large"
		}
	}
	if n > max {
		return 0, "amount_too_large"
	}
	return n, ""
}

// checkURL returns the error-code suffix of a redirect URL: required, at
// most 1024 characters, an absolute http(s) URL.
func checkURL(p *string) string {
	if p == nil || *p == "" {
		return "required"
	}
	if len(*p) > maxSessionURL {
		return "too_long"
	}
	u, err := url.Parse(*p)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || badChars(*p) || strings.ContainsAny(*p, " ") {
		return "invalid"
	}
	return ""
}

// checkLen is checkText for an optional member with its field name: "" or
// field_too_long / field_invalid_characters.
func checkLen(bad map[string]string, field string, p *string, max int) {
	if code := checkText(p, false, max); code != "" {
		bad[field] = field + "_" + code
	}
}

func checkItems(bad map[string]string, items []sessionItem, maxAmount int64) {
	if len(items) > maxSessionItems {
		bad["items"] = "items_too_many"
		return
	}
	for _, it := range items {
		switch {
		case it.Name == nil || *it.Name == "":
			bad["items"] = "items_name_required"
		case checkText(it.Name, true, maxSessionText) != "":
			bad["items"] = "items_name_invalid"
		case it.Quantity != nil && (*it.Quantity < 1 || *it.Quantity > 1_000_000):
			bad["items"] = "items_quantity_invalid"
		case badMinor(it.UnitPrice, maxAmount), badMinor(it.TotalAmount, maxAmount), badMinor(it.TaxAmount, maxAmount),
			badMinor(it.DiscountAmount, maxAmount):
			bad["items"] = "items_amount_invalid"
		case checkText(it.Reference, false, maxSessionText) != "", checkText(it.Type, false, 50) != "",
			checkText(it.CommodityCode, false, maxSessionText) != "", checkText(it.UnitOfMeasure, false, 50) != "",
			it.URL != nil && checkURL(it.URL) != "", it.ImageURL != nil && checkURL(it.ImageURL) != "":
			bad["items"] = "items_invalid"
		}
	}
}

func badMinor(p *int64, max int64) bool { return p != nil && (*p < 0 || *p > max) }

func (req createSessionRequest) valid(lim limits) (validSession, map[string]string) {
	bad := map[string]string{}
	v := validSession{Locale: "en-GB", RetryLimit: DefaultSessionRetries}
	cur := currencyCode(req.Currency)
	minor, code := parseMinor(req.Amount, lim.maxAmount)
	if code != "" {
		bad["amount"] = code
	}
	if code := checkCurrency(cur); code != "" {
		bad["currency"] = code
	}
	v.Amount = payment.Money{Minor: minor, Currency: cur}
	switch {
	case req.Billing == nil:
		bad["billing"] = "billing_required"
	case req.Billing.Address == nil || req.Billing.Address.Country == nil || *req.Billing.Address.Country == "":
		bad["billing"] = "billing_address_country_required"
	case !isUpperAlpha2(*req.Billing.Address.Country):
		bad["billing"] = "billing_address_country_invalid"
	default:
		a := req.Billing.Address
		for _, p := range []*string{a.AddressLine1, a.AddressLine2, a.City, a.State, a.Zip} {
			if checkText(p, false, 200) != "" {
				bad["billing"] = "billing_address_invalid"
			}
		}
		if ph := req.Billing.Phone; ph != nil && (checkText(ph.CountryCode, false, 7) != "" || checkText(ph.Number, false, 25) != "") {
			bad["billing"] = "billing_phone_invalid"
		}
	}
	if code := checkURL(req.SuccessURL); code != "" {
		bad["success_url"] = "success_url_" + code
	}
	v.SuccessURL = str(req.SuccessURL)
	if code := checkURL(req.FailureURL); code != "" {
		bad["failure_url"] = "failure_url_" + code
	}
	v.FailureURL = str(req.FailureURL)
	if req.PaymentType != nil && !sessionPaymentTypes[*req.PaymentType] {
		bad["payment_type"] = "payment_type_invalid"
	}
	if d := req.BillingDescriptor; d != nil {
		if checkText(d.Name, false, 25) != "" || checkText(d.City, false, 13) != "" || checkText(d.Reference, false, 50) != "" {
			bad["billing_descriptor"] = "billing_descriptor_invalid"
		}
	}
	checkLen(bad, "reference", req.Reference, maxSessionReference)
	v.Reference = str(req.Reference)
	checkLen(bad, "description", req.Description, maxSessionDescription)
	v.Description = str(req.Description)
	checkLen(bad, "display_name", req.DisplayName, maxSessionDisplayName)
	v.DisplayName = str(req.DisplayName)
	if c := req.Customer; c != nil {
		if checkText(c.ID, false, maxSessionText) != "" || checkText(c.Name, false, maxSessionText) != "" ||
			checkText(c.TaxNumber, false, 50) != "" || c.Summary.bad {
			bad["customer"] = "customer_invalid"
		}
		if c.Email != nil && (checkText(c.Email, false, maxSessionText) != "" || !strings.Contains(*c.Email, "@")) {
			bad["customer"] = "customer_email_invalid"
		}
	}
	for name, o := range map[string]rawObject{"shipping": req.Shipping, "recipient": req.Recipient, "processing": req.Processing,
		"instruction": req.Instruction, "payment_method_configuration": req.PaymentMethodConfiguration, "sender": req.Sender} {
		if o.bad {
			bad[name] = name + "_invalid_type"
		}
	}
	if p := req.ProcessingChannelID; p != nil && !processingChannelID.MatchString(*p) {
		bad["processing_channel_id"] = "processing_channel_id_invalid"
	}
	if p := req.ExpiresOn; p != nil {
		// only its form here: whether it is in the future is checked after
		// the Idempotency-Key's lookup (expiresOnRefusal), so that a create
		// replayed after its session's expiry still gets its stored answer
		if t, err := time.Parse(time.RFC3339Nano, *p); err != nil {
			bad["expires_on"] = "expires_on_invalid"
		} else {
			t = t.UTC().Truncate(time.Microsecond)
			v.ExpiresOn = &t
		}
	}
	enabled := map[string]bool{}
	for _, m := range sessionMethods {
		enabled[m] = true
	}
	if req.EnabledPaymentMethods != nil {
		clear(enabled)
		for _, m := range req.EnabledPaymentMethods {
			if !vendorPaymentMethods[m] {
				bad["enabled_payment_methods"] = "enabled_payment_methods_invalid"
			}
			enabled[m] = true
		}
	}
	for _, m := range req.DisabledPaymentMethods {
		if !vendorPaymentMethods[m] {
			bad["disabled_payment_methods"] = "disabled_payment_methods_invalid"
		}
		delete(enabled, m)
	}
	for _, m := range sessionMethods {
		if enabled[m] {
			v.EnabledMethods = append(v.EnabledMethods, m)
		}
	}
	if len(v.EnabledMethods) == 0 && bad["enabled_payment_methods"] == "" && bad["disabled_payment_methods"] == "" {
		bad["enabled_payment_methods"] = "payment_methods_none_supported"
	}
	checkItems(bad, req.Items, lim.maxAmount)
	if len(req.AmountAllocations) > 0 {
		var sum int64
		for _, a := range req.AmountAllocations {
			if a.Amount == nil || badMinor(a.Amount, lim.maxAmount) || checkText(a.ID, true, maxSessionText) != "" ||
				checkText(a.Reference, false, maxSessionText) != "" {
				bad["amount_allocations"] = "amount_allocations_invalid"
				break
			}
			sum += *a.Amount
		}
		if bad["amount_allocations"] == "" && bad["amount"] == "" && sum > minor {
			bad["amount_allocations"] = "amount_allocations_exceed_amount"
		}
	}
	if r := req.CustomerRetry; r != nil && r.MaxAttempts != nil {
		if *r.MaxAttempts < 1 || *r.MaxAttempts > maxSessionRetries {
			bad["customer_retry"] = "customer_retry_max_attempts_invalid"
		} else {
			v.RetryLimit = int(*r.MaxAttempts)
		}
	}
	if code := checkSessionMetadata(req.Metadata); code != "" {
		bad["metadata"] = code
	}
	if p := req.Locale; p != nil {
		if !localePattern.MatchString(*p) {
			bad["locale"] = "locale_invalid"
		} else {
			v.Locale = *p
		}
	}
	if t := req.ThreeDS; t != nil && (checkText(t.ChallengeIndicator, false, 50) != "" || checkText(t.Exemption, false, 50) != "") {
		bad["3ds"] = "3ds_invalid"
	}
	if req.Capture != nil && !*req.Capture {
		bad["capture"] = "capture_false_not_supported"
	}
	if req.CaptureOn != nil {
		bad["capture_on"] = "capture_on_not_supported"
	}
	if req.InvoiceID != nil {
		switch {
		case checkText(req.InvoiceID, true, 255) != "":
			bad["invoice_id"] = "invoice_id_invalid"
		case bad["amount"] == "" && minor == 0:
			bad["invoice_id"] = "invoice_id_requires_amount"
		}
		v.InvoiceRef = *req.InvoiceID
	}
	v.Request, _ = json.Marshal(req)
	return v, bad
}

// checkSessionMetadata: at most 18 fields, keys of 1 to 100 characters,
// values strings of at most 255 characters, numbers or booleans.
func checkSessionMetadata(m map[string]any) string {
	if len(m) > maxSessionMetadata {
		return "metadata_too_many_fields"
	}
	for k, v := range m {
		if k == "" || utf8.RuneCountInString(k) > 100 || badChars(k) {
			return "metadata_key_invalid"
		}
		switch x := v.(type) {
		case string:
			if utf8.RuneCountInString(x) > maxSessionMetadataText {
				return "metadata_value_too_long"
			}
		case json.Number, bool, nil:
			if n, ok := x.(json.Number); ok && len(n) > maxSessionMetadataText {
				return "metadata_value_too_long"
			}
		default:
			return "metadata_value_invalid"
		}
	}
	return ""
}

func isUpperAlpha2(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// submitSessionRequest is POST /v1/payment-sessions/{id}/submit and the
// hosted page's POST /pay/{token}/submit (which takes session_data only:
// the amount is the session's).
type submitSessionRequest struct {
	SessionData *string       `json:"session_data"`
	Amount      decimal       `json:"amount"`
	Reference   *string       `json:"reference"`
	Items       []sessionItem `json:"items"`
	ThreeDS     *session3DS   `json:"3ds"`
	IPAddress   *string       `json:"ip_address"`
	page        bool          // the hosted page's: amount is implied
}

// validSubmit is a submit that passed validation. SessionData is the
// secret: it is excluded from the JSON form (json:"-"), so it is never in a
// fingerprint, a stored answer or a log line.
type validSubmit struct {
	SessionData string `json:"-"`
	Amount      *int64 `json:"amount"`
	Reference   string `json:"reference"`
	IPAddress   string `json:"ip_address"`
	Items       int    `json:"items"`
}

func (req submitSessionRequest) valid(lim limits) (validSubmit, map[string]string) {
	bad := map[string]string{}
	var v validSubmit
	switch {
	case req.SessionData == nil || *req.SessionData == "":
		bad["session_data"] = "session_data_required"
	case len(*req.SessionData) > maxSessionData:
		bad["session_data"] = "session_data_too_long"
	default:
		v.SessionData = *req.SessionData
	}
	if req.page {
		if !req.Amount.absent() {
			n, code := parseMinor(req.Amount, lim.maxAmount)
			if code != "" {
				bad["amount"] = code
			}
			v.Amount = &n
		}
	} else {
		n, code := parseMinor(req.Amount, lim.maxAmount)
		if code != "" {
			bad["amount"] = code
		}
		v.Amount = &n
	}
	checkLen(bad, "reference", req.Reference, maxSessionReference)
	v.Reference = str(req.Reference)
	checkItems(bad, req.Items, lim.maxAmount)
	v.Items = len(req.Items)
	if t := req.ThreeDS; t != nil && (checkText(t.ChallengeIndicator, false, 50) != "" || checkText(t.Exemption, false, 50) != "") {
		bad["3ds"] = "3ds_invalid"
	}
	if p := req.IPAddress; p != nil {
		if len(*p) > maxIPAddress {
			bad["ip_address"] = "ip_address_too_long"
		} else if _, err := netip.ParseAddr(*p); err != nil {
			bad["ip_address"] = "ip_address_invalid"
		}
		v.IPAddress = *p
	}
	return v, bad
}

// expiresOnRefusal is the error code of an expires_on that is not in the
// future or is further than MaxSessionLifetime from now, or "".
func expiresOnRefusal(t, now time.Time) string {
	switch {
	case !t.After(now):
		return "expires_on_in_past"
	case t.Sub(now) > MaxSessionLifetime:
		return "expires_on_too_far"
	}
	return ""
}
