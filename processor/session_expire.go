package processor

import (
	"context"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// expireSession runs a session's expiry step (session:expire), due at its
// expires_on: store.ExpireSession decides under the session's row lock.
// A session whose payment awaits 3-D Secure is expired and its payment gets
// the void step, enqueued here after commit (the void path cancels it, and
// refunds a charge that landed anyway). A task that came early reschedules
// itself at expires_on under the next step sequence. Running it twice is
// harmless: a finished session is left alone.
func (p *Processor) expireSession(ctx context.Context, t *asynq.Task) error {
	pl, err := jobs.ParseSessionExpire(t)
	if err != nil {
		return err
	}
	res, err := p.Store.ExpireSession(ctx, pl.SessionID, actor)
	if err != nil {
		return err
	}
	switch res.Outcome {
	case store.ExpireNotYet:
		// a delay read on the store's clock, which decided "not yet": asynq's may be ahead
		if err := p.Enqueue.SessionExpireIn(ctx, pl.SessionID, res.Seq, res.DueAt.Sub(p.Store.Now())+10*time.Millisecond); err != nil {
			p.Log.WarnContext(ctx, "enqueue session expiry failed; the sweeper will recover it", "session_id", pl.SessionID, "err", err)
		}
	case store.ExpireDone:
		p.Metrics.SessionsFinished.WithLabelValues("expired").Inc()
	case store.ExpireVoid:
		p.Metrics.SessionsFinished.WithLabelValues("expired").Inc()
		p.follow(ctx, payment.StepVoid, res.PaymentID, res.VoidSeq, 0)
	}
	return nil
}
