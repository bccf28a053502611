package connector

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Notification types a gateway pushes. A notification is only a hint that
// something changed at the gateway: payd answers it by asking the gateway
// (Inquire, Settlement), never by trusting what the notification claims.
const (
	NotifyChargeSucceeded = "charge.succeeded" // a card charge was captured
	NotifyChargeFailed    = "charge.failed"    // a charge was declined
	NotifyPaymentSettled  = "payment.settled"  // a bank payment settled on its rail
	NotifyPaymentReturned = "payment.returned" // a settled bank payment was returned
)

// NotificationTypeLabel bounds a notification type for metrics labels: a
// known type, or "other".
func NotificationTypeLabel(typ string) string {
	switch typ {
	case NotifyChargeSucceeded, NotifyChargeFailed, NotifyPaymentSettled, NotifyPaymentReturned:
		return typ
	}
	return "other"
}

// Notification is the JSON body of a gateway notification.
type Notification struct {
	ID               string    `json:"id"`   // unique per notification; every copy of it repeats it
	Type             string    `json:"type"` // one of the Notify… types (others are recorded and ignored)
	IdempotencyKey   string    `json:"idempotency_key,omitempty"`
	GatewayReference string    `json:"gateway_reference,omitempty"`
	OccurredAt       time.Time `json:"occurred_at"`
}

// NotificationSignatureHeader carries "t=<unix seconds>,v1=<hex>", where the
// hex is HMAC-SHA256(secret, t + "." + body). Several v1 entries may appear
// while a secret is rotated.
const NotificationSignatureHeader = "Payd-Gateway-Signature"

// SignNotification returns the NotificationSignatureHeader value for body.
func SignNotification(secret []byte, at time.Time, body []byte) string {
	ts := strconv.FormatInt(at.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(notificationMAC(secret, ts, body))
}

func notificationMAC(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// Signature verification errors.
var (
	ErrSignatureMissing = errors.New("notification signature missing or malformed")
	ErrSignatureInvalid = errors.New("notification signature does not match")
	ErrSignatureExpired = errors.New("notification signature timestamp outside the tolerance")
)

const (
	maxSignatureHeader = 1024
	maxSignatures      = 8
)

// VerifyNotification checks header against body under any of secrets, in
// constant time per comparison, and that its timestamp is within tolerance
// of now (either way: a replay of an old notification and a clock far ahead
// are both refused). No secret configured verifies nothing.
func VerifyNotification(header string, body []byte, secrets [][]byte, now time.Time, tolerance time.Duration) error {
	if header == "" || len(header) > maxSignatureHeader {
		return ErrSignatureMissing
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrSignatureMissing
		}
		switch k {
		case "t":
			if ts != "" {
				return ErrSignatureMissing
			}
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size || len(sigs) == maxSignatures {
				return ErrSignatureMissing
			}
			sigs = append(sigs, b)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 || ts != strconv.FormatInt(sec, 10) {
		return ErrSignatureMissing
	}
	ok := false
	for _, secret := range secrets {
		if len(secret) == 0 {
			continue
		}
		want := notificationMAC(secret, ts, body)
		for _, sig := range sigs {
			if hmac.Equal(want, sig) {
				ok = true
			}
		}
	}
	if !ok {
		return ErrSignatureInvalid
	}
	// checked after the MAC, so that the answer to an unsigned request says
	// nothing about the clock
	at := time.Unix(sec, 0)
	if d := now.Sub(at); d > tolerance || d < -tolerance {
		return ErrSignatureExpired
	}
	return nil
}

// NotificationParser is a gateway whose notifications come in its own
// format and signature (Stripe's webhooks), instead of payd's
// Notification body under NotificationSignatureHeader (the sandbox's).
// ParseNotification authenticates the request before it decodes anything,
// and answers ErrSignatureMissing, ErrSignatureInvalid or
// ErrSignatureExpired for one it cannot trust, ErrNotificationMalformed
// for a well-signed body it cannot read. The Notification it answers is a
// hint like any other: recorded once per ID and acted on by asking the
// gateway.
type NotificationParser interface {
	ParseNotification(header http.Header, body []byte) (Notification, error)
}

// ErrNotificationMalformed: a well-signed notification whose body is not
// what the gateway's format says.
var ErrNotificationMalformed = errors.New("notification body malformed")
