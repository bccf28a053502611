package intake

import (
	"context"
	"maps"
	"net/http"
	"strings"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// Users: the payers and payees of invoices, named by the tenant's
// external_id. An invoice that names an unknown user creates it (with no
// name, email or metadata); POST /v1/users creates one with its details.

type createUserRequest struct {
	ExternalID    *string               `json:"external_id"`
	Name          *string               `json:"name"`
	Email         *string               `json:"email"`
	Metadata      map[string]string     `json:"metadata"`
	PayinMethod   *payinMethodRequest   `json:"payin_method"`
	PayoutAccount *payoutAccountRequest `json:"payout_account"`
}

// validUser is a create request that passed validation, normalized.
type validUser struct {
	ExternalID string            `json:"external_id"`
	Name       string            `json:"name"`
	Email      string            `json:"email"`
	Metadata   map[string]string `json:"metadata"`
	// what payment flows need (nil when not given)
	PayinMethod   *payment.PayinMethod   `json:"payin_method,omitempty"`
	PayoutAccount *payment.PayoutAccount `json:"payout_account,omitempty"`
}

// valid checks every field and returns one error code per bad field.
func (req createUserRequest) valid(limits) (validUser, map[string]string) {
	bad := map[string]string{}
	v := validUser{ExternalID: str(req.ExternalID), Name: str(req.Name), Email: str(req.Email), Metadata: map[string]string{}}
	if code := checkText(req.ExternalID, true, 255); code != "" {
		bad["external_id"] = "external_id_" + code
	}
	if code := checkText(req.Name, false, 200); code != "" {
		bad["name"] = "name_" + code
	}
	if code := checkText(req.Email, false, 254); code != "" {
		bad["email"] = "email_" + code
	} else if v.Email != "" && !plausibleEmail(v.Email) {
		bad["email"] = "email_invalid"
	}
	if code := checkMetadata(req.Metadata); code != "" {
		bad["metadata"] = code
	}
	maps.Copy(v.Metadata, req.Metadata)
	v.PayinMethod = req.PayinMethod.valid("payin_method", bad)
	v.PayoutAccount = req.PayoutAccount.valid("payout_account", bad)
	return v, bad
}

// plausibleEmail: exactly one '@' with something on each side, and no
// spaces. Whether the address exists is not ours to know.
func plausibleEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && domain != "" && !strings.Contains(domain, "@") && !strings.ContainsAny(s, " \u00a0")
}

// handleCreateUser records a user. Its external_id is a business key: the
// same details again get the user back (200, Idempotent-Replayed: true),
// other details under the same external_id are refused.
func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request) error {
	const route = "POST /v1/users"
	p := principal(r.Context())
	v, err := decodeValid(s, w, r, &createUserRequest{})
	if err != nil {
		return err
	}
	rw := &replayWriter{ResponseWriter: w}
	return s.idempotent(rw, r, route, fingerprint(route, v), func(ctx context.Context, tx *store.Store) (int, any, error) {
		u, created, err := tx.CreateUser(ctx, payment.User{TenantID: p.TenantID, ExternalID: v.ExternalID, Name: v.Name,
			Email: v.Email, Metadata: v.Metadata, PayinMethod: v.PayinMethod, PayoutAccount: v.PayoutAccount})
		if err != nil {
			return 0, nil, err
		}
		if created {
			return http.StatusCreated, toUserResponse(u), nil
		}
		if u.Name != v.Name || u.Email != v.Email || !maps.Equal(u.Metadata, v.Metadata) ||
			!samePtr(u.PayinMethod, v.PayinMethod) || !samePtr(u.PayoutAccount, v.PayoutAccount) {
			return 0, nil, errf(http.StatusUnprocessableEntity, typeValidation, "idempotency_key_reused",
				"a user with this external_id already exists with other details")
		}
		rw.replayed = true
		return http.StatusOK, toUserResponse(u), nil
	}, s.countReplay(rw, route))
}

func (s *Server) handleGetUser(w http.ResponseWriter, r *http.Request) error {
	ref := r.PathValue("ref")
	if !validRef(ref) {
		return errNotFound
	}
	u, err := s.store.GetUser(r.Context(), principal(r.Context()).TenantID, ref)
	return writeOne(w, u, err, toUserResponse)
}

// userResponse is the user object; name and email are null when not given.
type userResponse struct {
	ID            string                 `json:"id"`
	ExternalID    string                 `json:"external_id"`
	Name          *string                `json:"name"`
	Email         *string                `json:"email"`
	Metadata      map[string]string      `json:"metadata"`
	PayinMethod   *payinMethodResponse   `json:"payin_method"`
	PayoutAccount *payoutAccountResponse `json:"payout_account"`
	CreatedAt     string                 `json:"created_at"`
}

func toUserResponse(u payment.User) userResponse {
	meta := u.Metadata
	if meta == nil {
		meta = map[string]string{}
	}
	return userResponse{ID: u.ID, ExternalID: u.ExternalID, Name: strp(u.Name), Email: strp(u.Email), Metadata: meta,
		PayinMethod: toPayinMethodResponse(u.PayinMethod), PayoutAccount: toPayoutAccountResponse(u.PayoutAccount),
		CreatedAt: ts(u.CreatedAt)}
}

// samePtr: both nil, or both set to equal values.
func samePtr[T comparable](a, b *T) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// updateUserRequest is PATCH /v1/users/{id}: each field given replaces
// the user's; one absent (or null) stays. external_id cannot change.
type updateUserRequest struct {
	Name          *string               `json:"name"`
	Email         *string               `json:"email"`
	Metadata      map[string]string     `json:"metadata"`
	PayinMethod   *payinMethodRequest   `json:"payin_method"`
	PayoutAccount *payoutAccountRequest `json:"payout_account"`
}

type validUserUpdate struct {
	Name          *string                `json:"name,omitempty"`
	Email         *string                `json:"email,omitempty"`
	Metadata      map[string]string      `json:"metadata,omitempty"`
	PayinMethod   *payment.PayinMethod   `json:"payin_method,omitempty"`
	PayoutAccount *payment.PayoutAccount `json:"payout_account,omitempty"`
}

func (req updateUserRequest) valid(limits) (validUserUpdate, map[string]string) {
	bad := map[string]string{}
	v := validUserUpdate{Name: req.Name, Email: req.Email, Metadata: req.Metadata}
	if code := checkText(req.Name, false, 200); code != "" {
		bad["name"] = "name_" + code
	}
	if code := checkText(req.Email, false, 254); code != "" {
		bad["email"] = "email_" + code
	} else if e := str(req.Email); e != "" && !plausibleEmail(e) {
		bad["email"] = "email_invalid"
	}
	if req.Metadata != nil {
		if code := checkMetadata(req.Metadata); code != "" {
			bad["metadata"] = code
		}
	}
	v.PayinMethod = req.PayinMethod.valid("payin_method", bad)
	v.PayoutAccount = req.PayoutAccount.valid("payout_account", bad)
	return v, bad
}

// handleUpdateUser changes a user's details: what a payment flow needs to
// move money (payin_method, payout_account), name, email, metadata. A flow
// whose payin failed takes a new payin method as its cue to try again
// (the flow's recompute: see docs/flows.md).
func (s *Server) handleUpdateUser(w http.ResponseWriter, r *http.Request) error {
	const route = "PATCH /v1/users/{ref}"
	p := principal(r.Context())
	ref := r.PathValue("ref")
	if !validRef(ref) {
		return errNotFound
	}
	v, err := decodeValid(s, w, r, &updateUserRequest{})
	if err != nil {
		return err
	}
	var flows []store.FlowStepRef
	return s.idempotent(w, r, route, fingerprint(route, []any{ref, v}), func(ctx context.Context, tx *store.Store) (int, any, error) {
		u, fl, err := tx.UpdateUser(ctx, p.TenantID, ref, store.UserUpdate{Name: v.Name, Email: v.Email, Metadata: v.Metadata,
			PayinMethod: v.PayinMethod, PayoutAccount: v.PayoutAccount})
		if err != nil {
			return 0, nil, err
		}
		flows = fl
		return http.StatusOK, toUserResponse(u), nil
	}, func(ctx context.Context, _ any) {
		for _, f := range flows {
			s.enqueueFlow(ctx, f.FlowID, f.Seq)
		}
	})
}
