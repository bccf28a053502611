package payment

import "time"

// SessionStatus is the lifecycle of a payment session (seed 003):
//
//	ACTIVE ──► PROCESSING ──► COMPLETED
//	   │           ├────────► FAILED ──► PROCESSING (a retry: a new payment) | EXPIRED
//	   │           └────────► EXPIRED (expired while its payment awaited 3-D Secure: voided)
//	   └─► EXPIRED
//
// PROCESSING: a submit recorded a payment that is still running. The
// session follows its payment's terminal transitions in the same statement
// (SUCCEEDED or SENT → COMPLETED; FAILED or CANCELED → FAILED). A FAILED
// session takes another submit while it has not expired and its retry
// limit allows; each submit is a new payment tied to the session.
type SessionStatus string

const (
	SessionActive     SessionStatus = "ACTIVE"
	SessionProcessing SessionStatus = "PROCESSING"
	SessionCompleted  SessionStatus = "COMPLETED"
	SessionFailed     SessionStatus = "FAILED"
	SessionExpired    SessionStatus = "EXPIRED"
	SessionCanceled   SessionStatus = "CANCELED" // by the merchant (POST /v1/payment-sessions/{id}/cancel)
)

// Final reports a session that takes no submit ever again.
func (s SessionStatus) Final() bool {
	return s == SessionCompleted || s == SessionExpired || s == SessionCanceled
}

// Session is a payment session as stored. The secret is never held: only
// its hash is stored, and the plain secret exists once, in the create
// answer.
type Session struct {
	ID             string
	TenantID       string
	Status         SessionStatus
	Amount         Money
	Reference      string
	Description    string
	DisplayName    string
	Locale         string
	SuccessURL     string
	FailureURL     string
	EnabledMethods []string // lower case: card, ach
	Request        []byte   // the request's other fields as JSON, echoed by GET
	Token          string   // payment_session_token
	InvoiceID      string
	ExpiresOn      time.Time
	RetryLimit     int // payments the session may make
	AttemptsUsed   int
	PaymentID      string // the latest payment, "" before the first submit
	SubmitLocked   bool   // a submit is exchanging session_data now
	LastErrorCode  string
	LastErrorMsg   string
	NextAt         *time.Time
	StepSeq        int
	CreatedBy      string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	CompletedAt    *time.Time
	ExpiredAt      *time.Time
}

// RetryAllowed reports whether the session takes a submit at now.
func (s Session) RetryAllowed(now time.Time) bool {
	switch s.Status {
	case SessionActive:
		return now.Before(s.ExpiresOn)
	case SessionFailed:
		return now.Before(s.ExpiresOn) && s.AttemptsUsed < s.RetryLimit
	}
	return false
}

// SessionEvent is one audited transition of a session.
type SessionEvent struct {
	ID        int64
	SessionID string
	PaymentID string
	From      SessionStatus // empty for the creation event
	To        SessionStatus
	Reason    string
	Actor     string
	CreatedAt time.Time
}
