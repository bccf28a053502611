package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypeSessionExpire expires a payment session at its expires_on: an unused
// (ACTIVE) or failed session becomes EXPIRED; one whose payment awaits
// 3-D Secure is expired and its payment voided (payment:void).
const TypeSessionExpire = "session:expire"

// SessionPayload names one expiry step of one session: the session and the
// step sequence (payment_sessions.step_seq) the task was enqueued for.
type SessionPayload struct {
	SessionID string `json:"session_id"`
	Seq       int    `json:"seq"`
}

// NewSessionExpireTask builds the expiry task of a session at step
// sequence seq, due at at (ProcessAt; zero: now). Its TaskID is
// session:expire:<session_id>:<seq>.
func NewSessionExpireTask(sessionID string, seq int, at time.Time, retention time.Duration) (*asynq.Task, error) {
	if seq < 1 {
		return nil, fmt.Errorf("session %s: step sequence %d", sessionID, seq)
	}
	return newTask(TypeSessionExpire, SessionPayload{SessionID: sessionID, Seq: seq}, TaskID(TypeSessionExpire, sessionID, seq),
		at, retention)
}

// ParseSessionExpire decodes a session:expire payload.
func ParseSessionExpire(t *asynq.Task) (SessionPayload, error) {
	var p SessionPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.SessionID == "" || p.Seq <= 0 {
		return p, fmt.Errorf("%s: %w", t.Type(), ErrBadPayload)
	}
	return p, nil
}

// SessionExpire enqueues a session's expiry step at sequence seq, due at
// at (the store's clock, read as Step reads it). An existing task with its
// ID is success.
func (e *Enqueuer) SessionExpire(ctx context.Context, sessionID string, seq int, at time.Time) error {
	t, err := NewSessionExpireTask(sessionID, seq, e.when(at), e.Retention)
	if err != nil {
		return err
	}
	return e.enqueue(ctx, t)
}

// SessionExpireIn enqueues a session's expiry step at sequence seq after
// delay (none when it is not positive), a span read on the store's clock.
func (e *Enqueuer) SessionExpireIn(ctx context.Context, sessionID string, seq int, delay time.Duration) error {
	var at time.Time
	if delay > 0 {
		at = time.Now().Add(delay)
	}
	t, err := NewSessionExpireTask(sessionID, seq, at, e.Retention)
	if err != nil {
		return err
	}
	return e.enqueue(ctx, t)
}

// SessionState looks up a session expiry task by its ID (the sweeper).
func (e *Enqueuer) SessionState(sessionID string, seq int) (TaskState, error) {
	return e.taskState(specs[TypeSessionExpire].queue, TaskID(TypeSessionExpire, sessionID, seq))
}
