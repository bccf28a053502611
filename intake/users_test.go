package intake_test

import (
	"bytes"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/payd/payd/internal/testenv"
	"github.com/payd/payd/payment"
)

func TestUsers(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	body := []byte(`{"external_id":"cust-7","name":"Zoë Ærøskøbing","email":"zoe@example.com","metadata":{"tier":"gold"}}`)
	r := h.Do("POST", "/v1/users", h.KeyA, body, nil)
	u := jsonObj(t, r, http.StatusCreated)
	if r.Header.Get("Idempotent-Replayed") != "" {
		t.Errorf("a new user answered as a replay")
	}
	var members []string
	for k := range u {
		members = append(members, k)
	}
	sort.Strings(members)
	diff(t, "members", []string{"created_at", "email", "external_id", "id", "metadata", "name", "payin_method", "payout_account"}, members)
	id, _ := u["id"].(string)
	if !strings.HasPrefix(id, payment.PrefixUser) || !timestampRE.MatchString(u["created_at"].(string)) {
		t.Errorf("id %v created_at %v", u["id"], u["created_at"])
	}
	delete(u, "id")
	delete(u, "created_at")
	diff(t, "user", map[string]any{"external_id": "cust-7", "name": "Zoë Ærøskøbing", "email": "zoe@example.com",
		"metadata": map[string]any{"tier": "gold"}, "payin_method": nil, "payout_account": nil}, u)
	for _, ref := range []string{id, "cust-7"} {
		if g := h.Do("GET", "/v1/users/"+ref, h.KeyA, nil, nil); g.Status != http.StatusOK || !bytes.Equal(g.Body, r.Body) {
			t.Errorf("GET %s = %d %s", ref, g.Status, g.Body)
		}
	}
	// The same details again: the user back, as a replay.
	again := h.Do("POST", "/v1/users", h.KeyA, []byte(`{"metadata":{"tier":"gold"},"email":"zoe@example.com","name":"Zoë Ærøskøbing","external_id":"cust-7"}`), nil)
	if again.Status != http.StatusOK || again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.Body, r.Body) {
		t.Errorf("repeat = %d replayed=%q %s", again.Status, again.Header.Get("Idempotent-Replayed"), again.Body)
	}
	// Other details under the same external_id: refused, nothing changes.
	for _, other := range []string{
		`{"external_id":"cust-7","name":"Zoe","email":"zoe@example.com","metadata":{"tier":"gold"}}`,
		`{"external_id":"cust-7","name":"Zoë Ærøskøbing","email":"zoe@example.org","metadata":{"tier":"gold"}}`,
		`{"external_id":"cust-7","name":"Zoë Ærøskøbing","email":"zoe@example.com"}`,
		`{"external_id":"cust-7"}`,
	} {
		checkEnvelope(t, h.Do("POST", "/v1/users", h.KeyA, []byte(other), nil), http.StatusUnprocessableEntity, "idempotency_key_reused")
	}
	if g := h.Do("GET", "/v1/users/cust-7", h.KeyA, nil, nil); !bytes.Equal(g.Body, r.Body) {
		t.Errorf("user changed: %s", g.Body)
	}

	// Idempotency-Key: the stored answer; another body under it is refused.
	hdr := map[string]string{"Idempotency-Key": "user-key-1"}
	k1 := h.Do("POST", "/v1/users", h.KeyA, []byte(`{"external_id":"cust-8"}`), hdr)
	m := jsonObj(t, k1, http.StatusCreated)
	if m["name"] != nil || m["email"] != nil {
		t.Errorf("user without details = %v", m)
	}
	if k2 := h.Do("POST", "/v1/users", h.KeyA, []byte(`{"external_id":"cust-8"}`), hdr); k2.Status != http.StatusCreated ||
		k2.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(k2.Body, k1.Body) {
		t.Errorf("Idempotency-Key replay = %d %s", k2.Status, k2.Body)
	}
	checkEnvelope(t, h.Do("POST", "/v1/users", h.KeyA, []byte(`{"external_id":"cust-9"}`), hdr), http.StatusUnprocessableEntity, "idempotency_key_reused")

	// A user an invoice created on first use has no details: the same
	// (empty) details replay it; a create with details is another request.
	inv := jsonObj(t, h.Do("POST", "/v1/invoices", h.KeyA, []byte(`{"external_id":"inv-u","currency":"USD","amount_due":"1.00",
		"payer":{"external_id":"first-use"}}`), nil), http.StatusCreated)
	fu := h.Do("POST", "/v1/users", h.KeyA, []byte(`{"external_id":"first-use"}`), nil)
	if fm := jsonObj(t, fu, http.StatusOK); fm["id"] != inv["payer"].(map[string]any)["id"] || fu.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("user made by an invoice: %d %s", fu.Status, fu.Body)
	}
	checkEnvelope(t, h.Do("POST", "/v1/users", h.KeyA, []byte(`{"external_id":"first-use","name":"Later"}`), nil),
		http.StatusUnprocessableEntity, "idempotency_key_reused")

	// An external id in any script, with characters a path must escape.
	odd := "client/été №7?#"
	oid := jsonObj(t, h.Do("POST", "/v1/users", h.KeyA, []byte(`{"external_id":`+q(odd)+`}`), nil), http.StatusCreated)["id"]
	if g := jsonObj(t, h.Do("GET", "/v1/users/"+url.PathEscape(odd), h.KeyA, nil, nil), http.StatusOK); g["id"] != oid {
		t.Errorf("GET by escaped external id = %v, want %v", g["id"], oid)
	}
}

func TestCreateUserBadInput(t *testing.T) {
	t.Parallel()
	h := testenv.Start(t, testenv.Options{NoWorker: true})
	cases := []badCase{
		{name: "external_id missing", body: []byte(`{"name":"x"}`), status: 422, code: "external_id_required", field: "external_id"},
		{name: "external_id empty", body: []byte(`{"external_id":""}`), status: 422, code: "external_id_required", field: "external_id"},
		{name: "external_id 256 chars", body: []byte(`{"external_id":` + q(long(256)) + `}`), status: 422, code: "external_id_too_long", field: "external_id"},
		{name: "external_id tab", body: []byte(`{"external_id":"a\tb"}`), status: 422, code: "external_id_invalid_characters", field: "external_id"},
		{name: "external_id number", body: []byte(`{"external_id":7}`), status: 422, code: "external_id_invalid_type", field: "external_id"},
		{name: "name 201 chars", body: []byte(`{"external_id":"u","name":` + q(long(201)) + `}`), status: 422, code: "name_too_long", field: "name"},
		{name: "name RTL override", body: []byte(`{"external_id":"u","name":"\u202eevil"}`), status: 422, code: "name_invalid_characters", field: "name"},
		{name: "name object", body: []byte(`{"external_id":"u","name":{}}`), status: 422, code: "name_invalid_type", field: "name"},
		{name: "email without @", body: []byte(`{"external_id":"u","email":"zoe.example.com"}`), status: 422, code: "email_invalid", field: "email"},
		{name: "email with two @", body: []byte(`{"external_id":"u","email":"zoe@ex@ample.com"}`), status: 422, code: "email_invalid", field: "email"},
		{name: "email @ only", body: []byte(`{"external_id":"u","email":"@"}`), status: 422, code: "email_invalid", field: "email"},
		{name: "email no local part", body: []byte(`{"external_id":"u","email":"@example.com"}`), status: 422, code: "email_invalid", field: "email"},
		{name: "email no domain", body: []byte(`{"external_id":"u","email":"zoe@"}`), status: 422, code: "email_invalid", field: "email"},
		{name: "email with space", body: []byte(`{"external_id":"u","email":"zo e@example.com"}`), status: 422, code: "email_invalid", field: "email"},
		{name: "email 255 chars", body: []byte(`{"external_id":"u","email":"` + long(243) + `@example.com"}`), status: 422, code: "email_too_long", field: "email"},
		{name: "email newline", body: []byte(`{"external_id":"u","email":"zoe@example.com\nBcc: x@y"}`), status: 422, code: "email_invalid_characters", field: "email"},
		{name: "metadata 51 keys", body: []byte(`{"external_id":"u","metadata":{` + manyMeta(51) + `}}`), status: 422, code: "metadata_too_many_keys", field: "metadata"},
		{name: "metadata number", body: []byte(`{"external_id":"u","metadata":{"a":1}}`), status: 422, code: "metadata_invalid_type", field: "metadata"},
		{name: "unknown field", body: []byte(`{"external_id":"u","phone":"1"}`), status: 422, code: "unknown_field", field: "phone"},
		{name: "case-variant field", body: []byte(`{"external_id":"u","Name":"x"}`), status: 422, code: "unknown_field", field: "Name"},
		{name: "duplicate key", body: []byte(`{"external_id":"u","external_id":"v"}`), status: 400, code: "body_duplicate_key"},
		{name: "malformed", body: []byte(`{"external_id":`), status: 400, code: "body_malformed"},
		{name: "no API key", key: "-", body: []byte(`{"external_id":"u"}`), status: 401, code: "api_key_invalid"},
		{name: "unknown user", method: "GET", path: "/v1/users/usr_nope", status: 404, code: "resource_not_found"},
		{name: "NUL in user ref", method: "GET", path: "/v1/users/u%00", status: 404, code: "resource_not_found"},
		{name: "invalid UTF-8 in user ref", method: "GET", path: "/v1/users/u%C3%28", status: 404, code: "resource_not_found"},
		{name: "list of users is no route", method: "GET", path: "/v1/users", status: 404, code: "route_not_found"},
	}
	for _, c := range cases {
		if c.path == "" {
			c.path = "/v1/users"
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, h)
		})
	}
	t.Run("one code per bad field", func(t *testing.T) {
		t.Parallel()
		e := checkEnvelope(t, h.Do("POST", "/v1/users", h.KeyA, []byte(`{"external_id":"","name":`+q(long(201))+`,"email":"x","metadata":{"":"v"}}`), nil),
			http.StatusUnprocessableEntity, "email_invalid")
		diff(t, "fields", map[string]string{"external_id": "external_id_required", "name": "name_too_long", "email": "email_invalid",
			"metadata": "metadata_key_invalid"}, e.Fields)
	})
	t.Cleanup(func() {
		var n int
		if err := h.Store.DB().QueryRow(`SELECT count(*) FROM users`).Scan(&n); err != nil || n != 0 {
			t.Errorf("bad input created %d users, %v", n, err)
		}
	})
}

func manyMeta(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, q("k"+strings.Repeat("x", i%5)+string(rune('a'+i%26))+string(rune('a'+i/26)))+`:"v"`)
	}
	return strings.Join(parts, ",")
}
