package webhook

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	body := []byte(`{"id":"evt_1","type":"payment.succeeded"}`)
	now := time.Unix(1_800_000_000, 0)
	h := Sign(body, now, "whsec_a")
	if err := Verify(body, h, []string{"whsec_a"}, 0, now); err != nil {
		t.Fatalf("verify: %v", err)
	}
	for name, c := range map[string]struct {
		body    []byte
		header  string
		secrets []string
		now     time.Time
		want    error
	}{
		"another body":      {[]byte(`{}`), h, []string{"whsec_a"}, now, ErrMismatch},
		"another secret":    {body, h, []string{"whsec_b"}, now, ErrMismatch},
		"too old":           {body, h, []string{"whsec_a"}, now.Add(6 * time.Minute), ErrTooOld},
		"from the future":   {body, h, []string{"whsec_a"}, now.Add(-6 * time.Minute), ErrTooOld},
		"no header":         {body, "", []string{"whsec_a"}, now, ErrNoSignature},
		"no v1":             {body, "t=1800000000", []string{"whsec_a"}, now, ErrBadHeader},
		"two t":             {body, h + ",t=1", []string{"whsec_a"}, now, ErrBadHeader},
		"garbage":           {body, "nonsense", []string{"whsec_a"}, now, ErrBadHeader},
		"tampered v1":       {body, h[:len(h)-1] + "0", []string{"whsec_a"}, now, ErrMismatch},
		"timestamp changed": {body, strings.Replace(h, "t=1800000000", "t=1800000001", 1), []string{"whsec_a"}, now, ErrMismatch},
	} {
		if err := Verify(c.body, c.header, c.secrets, 0, c.now); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	// during a rotation: two v1 values, each verifies with its own secret
	h2 := Sign(body, now, "whsec_old", "whsec_new")
	if strings.Count(h2, "v1=") != 2 {
		t.Fatalf("rotation header %q", h2)
	}
	for _, s := range []string{"whsec_old", "whsec_new"} {
		if err := Verify(body, h2, []string{s}, 0, now); err != nil {
			t.Errorf("rotation, %s: %v", s, err)
		}
	}
}

func TestKeyring(t *testing.T) {
	k1 := strings.Repeat("11", 32)
	k2 := strings.Repeat("22", 32)
	old, err := ParseKeyring("k1:" + k1)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := old.Seal("whsec_x", "we_1")
	if err != nil || strings.Contains(sealed, "whsec_x") || !strings.HasPrefix(sealed, "k1:") {
		t.Fatalf("sealed %q, %v", sealed, err)
	}
	// rotated: the new key first seals, the old still opens
	ring, err := ParseKeyring("k2:" + k2 + ",k1:" + k1)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := ring.Open(sealed, "we_1"); err != nil || s != "whsec_x" {
		t.Fatalf("open after rotation: %q %v", s, err)
	}
	if s, _ := ring.Seal("whsec_y", "we_1"); !strings.HasPrefix(s, "k2:") {
		t.Fatalf("sealed with %q, want the first key", s)
	}
	if _, err := ring.Open(sealed, "we_2"); err == nil {
		t.Fatal("a sealed secret opened for another row")
	}
	if _, err := ParseKeyring("k2:" + k2); err != nil {
		t.Fatal(err)
	} else if only2, _ := ParseKeyring("k2:" + k2); only2 != nil {
		if _, err := only2.Open(sealed, "we_1"); err == nil {
			t.Fatal("opened without its key")
		}
	}
	for _, bad := range []string{"", "k1", "k1:abcd", "k1:" + k1 + ",k1:" + k2} {
		if _, err := ParseKeyring(bad); err == nil {
			t.Errorf("ParseKeyring(%q) accepted", bad)
		}
	}
	if s := NewSecret(); !strings.HasPrefix(s, SecretPrefix) || len(s) != len(SecretPrefix)+64 {
		t.Fatalf("secret %q", s)
	}
}

func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	strict := Policy{}
	for _, u := range []string{"https://127.0.0.1/x", "https://10.1.2.3/", "https://169.254.169.254/latest/meta-data",
		"https://[::1]/", "https://[fd00::1]/", "https://localhost/", "https://a.localhost/", "https://192.168.1.1/",
		"https://100.64.0.1/", "https://0.0.0.0/", "https://[::ffff:127.0.0.1]/"} {
		if err := CheckURL(ctx, u, strict, nil); !errors.Is(err, ErrPrivateURL) {
			t.Errorf("%s: %v, want ErrPrivateURL", u, err)
		}
	}
	for _, u := range []string{"ftp://example.com/", "/relative", "https://user:pw@example.com/", "https://"} {
		if err := CheckURL(ctx, u, strict, nil); !errors.Is(err, ErrURL) {
			t.Errorf("%s: %v, want ErrURL", u, err)
		}
	}
	if err := CheckURL(ctx, "http://93.184.216.34/", strict, nil); !errors.Is(err, ErrHTTP) {
		t.Errorf("http: %v", err)
	}
	if err := CheckURL(ctx, "https://93.184.216.34/hook", strict, nil); err != nil {
		t.Errorf("a public address: %v", err)
	}
	if err := CheckURL(ctx, "http://127.0.0.1:9/", Policy{AllowHTTP: true, AllowPrivate: true}, nil); err != nil {
		t.Errorf("allowed by policy: %v", err)
	}
}

// TestClientRefusesPrivateOnDial: the check is on the address dialed, so a
// URL that passed registration and now resolves to loopback is refused; and
// redirects are not followed.
func TestClientRefusesPrivateOnDial(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	// a name that resolves to 127.0.0.1 (as a rebinding attacker's would)
	rebound := "http://localtest.invalid:" + port + "/"
	c := Client(Policy{AllowHTTP: true}, 2*time.Second)
	tr := c.Transport.(*http.Transport)
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, p, _ := net.SplitHostPort(addr)
		return dial(ctx, network, "127.0.0.1:"+p) // the resolver's answer, after registration passed
	}
	if _, err := c.Get(rebound); err == nil || !errors.Is(err, ErrPrivateURL) {
		t.Fatalf("a dial to loopback: %v, want ErrPrivateURL", err)
	}
	if hits != 0 {
		t.Fatalf("the receiver was reached %d times", hits)
	}
	open := Client(Policy{AllowHTTP: true, AllowPrivate: true}, 2*time.Second)
	resp, err := open.Get(srv.URL + "/redirect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || hits != 1 {
		t.Fatalf("redirect: %d after %d hits, want the 302 itself", resp.StatusCode, hits)
	}
}
