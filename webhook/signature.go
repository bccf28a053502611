// Package webhook is what payd's outbound webhooks share with the merchants
// who receive them: the Payd-Signature scheme (Sign, Verify), the HTTP
// client that refuses private and loopback addresses on the dialed IP
// (Client, CheckURL), and the sealing of endpoint secrets at rest (Keyring).
// It imports the standard library only, so a receiver written in Go can
// import it to verify payd's deliveries.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header is the request header that carries the signature.
const Header = "Payd-Signature"

// SecretPrefix starts every endpoint secret.
const SecretPrefix = "whsec_"

// DefaultTolerance is how old a signature's timestamp may be before Verify
// refuses it: a replayed delivery older than this is not accepted.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify.
var (
	ErrNoSignature = errors.New("webhook: no Payd-Signature header")
	ErrBadHeader   = errors.New("webhook: malformed Payd-Signature header")
	ErrTooOld      = errors.New("webhook: signature timestamp outside the tolerance")
	ErrMismatch    = errors.New("webhook: no signature matches")
)

// mac is hex(HMAC-SHA256(secret, "<t>." + payload)).
func mac(secret string, t int64, payload []byte) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(strconv.FormatInt(t, 10)))
	h.Write([]byte{'.'})
	h.Write(payload)
	return hex.EncodeToString(h.Sum(nil))
}

// Sign is the header value for payload sent at t: "t=<unix>,v1=<hex>" with
// one v1 per secret (two while a rotated secret still signs).
func Sign(payload []byte, t time.Time, secrets ...string) string {
	ts := t.Unix()
	var b strings.Builder
	b.WriteString("t=" + strconv.FormatInt(ts, 10))
	for _, s := range secrets {
		b.WriteString(",v1=" + mac(s, ts, payload))
	}
	return b.String()
}

// Verify checks a delivery: header is the Payd-Signature value, secrets the
// endpoint's secrets the receiver knows (during a rotation, the old and the
// new), tolerance how far the timestamp may be from now (0:
// DefaultTolerance). It passes when any v1 matches any secret, compared in
// constant time.
func Verify(payload []byte, header string, secrets []string, tolerance time.Duration, now time.Time) error {
	if header == "" {
		return ErrNoSignature
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts int64 = -1
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrBadHeader
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || ts != -1 {
				return ErrBadHeader
			}
			ts = n
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if ts < 0 || len(sigs) == 0 {
		return ErrBadHeader
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w (%s)", ErrTooOld, d.Round(time.Second))
	}
	for _, s := range secrets {
		want := mac(s, ts, payload)
		for _, got := range sigs {
			if hmac.Equal([]byte(want), []byte(got)) {
				return nil
			}
		}
	}
	return ErrMismatch
}
