package connector

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNotificationSignature(t *testing.T) {
	t.Parallel()
	secret, other := []byte("s3cret"), []byte("other")
	body := []byte(`{"id":"evt_1"}`)
	now := time.Unix(1_800_000_000, 0)
	good := SignNotification(secret, now, body)
	cases := []struct {
		name    string
		header  string
		body    []byte
		secrets [][]byte
		at      time.Time
		want    error
	}{
		{"valid", good, body, [][]byte{secret}, now, nil},
		{"rotation: second secret", good, body, [][]byte{other, secret}, now, nil},
		{"two signatures", good + ",v1=" + strings.Repeat("00", 32), body, [][]byte{secret}, now, nil},
		{"within tolerance", good, body, [][]byte{secret}, now.Add(4 * time.Minute), nil},
		{"wrong secret", good, body, [][]byte{other}, now, ErrSignatureInvalid},
		{"no secret configured", good, body, nil, now, ErrSignatureInvalid},
		{"tampered body", good, []byte(`{"id":"evt_2"}`), [][]byte{secret}, now, ErrSignatureInvalid},
		{"stale", good, body, [][]byte{secret}, now.Add(6 * time.Minute), ErrSignatureExpired},
		{"from the future", good, body, [][]byte{secret}, now.Add(-6 * time.Minute), ErrSignatureExpired},
		{"empty", "", body, [][]byte{secret}, now, ErrSignatureMissing},
		{"no v1", "t=1800000000", body, [][]byte{secret}, now, ErrSignatureMissing},
		{"no t", "v1=" + strings.Repeat("ab", 32), body, [][]byte{secret}, now, ErrSignatureMissing},
		{"two t", good + ",t=1", body, [][]byte{secret}, now, ErrSignatureMissing},
		{"t not canonical", strings.Replace(good, "t=", "t=+", 1), body, [][]byte{secret}, now, ErrSignatureMissing},
		{"short v1", "t=1800000000,v1=abcd", body, [][]byte{secret}, now, ErrSignatureMissing},
		{"not hex", "t=1800000000,v1=" + strings.Repeat("zz", 32), body, [][]byte{secret}, now, ErrSignatureMissing},
		{"too long", strings.Repeat("a", 2000), body, [][]byte{secret}, now, ErrSignatureMissing},
		{"too many v1", "t=1800000000" + strings.Repeat(",v1="+strings.Repeat("00", 32), 9), body, [][]byte{secret}, now, ErrSignatureMissing},
	}
	for _, c := range cases {
		if err := VerifyNotification(c.header, c.body, c.secrets, c.at, 5*time.Minute); !errors.Is(err, c.want) || (c.want == nil && err != nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzVerifyNotification(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(SignNotification([]byte("k"), now, []byte("b")), []byte("b"))
	f.Add("t=1,v1=00", []byte(""))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		if VerifyNotification(header, body, [][]byte{[]byte("k")}, now, 5*time.Minute) != nil {
			return
		}
		// accepted: one of its v1 entries is the MAC of its t and body
		var ts string
		for _, part := range strings.Split(header, ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(part), "t="); ok {
				ts = v
			}
		}
		sec, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			t.Fatalf("accepted %q without a timestamp", header)
		}
		mac := strings.TrimPrefix(SignNotification([]byte("k"), time.Unix(sec, 0), body), "t="+ts+",")
		if !strings.Contains(strings.ToLower(header), mac) { // hex of either case
			t.Fatalf("accepted %q for %q without its MAC", header, body)
		}
	})
}
