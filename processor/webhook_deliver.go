package processor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/payd/payd/jobs"
	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
	"github.com/payd/payd/webhook"
)

// maxReceiverBody is how much of a receiver's answer is read (and kept,
// truncated, as the try's error): a receiver cannot make payd read more.
const maxReceiverBody = 4 << 10

// deliverWebhook makes one try of a delivery (webhook:deliver): load it
// (stale unless pending at the task's sequence), render its event, sign the
// body with the endpoint's secrets (two during a rotation), POST it with
// the delivery client (no redirects; private addresses refused on the
// dialed IP unless allowed), and record the try in one guarded transaction:
// delivered on a 2xx, else the next try on the schedule (webhook.NextTry),
// enqueued here after commit, or failed once the window is over. The event
// id is the same on every try, so a receiver can drop what it has seen.
func (p *Processor) deliverWebhook(ctx context.Context, t *asynq.Task) error {
	pl, err := jobs.ParseDeliver(t)
	if err != nil {
		return err
	}
	if p.Keyring == nil || p.RenderEvent == nil {
		return fmt.Errorf("webhook deliveries are not configured (PAYD_WEBHOOK_KEYS): %w", asynq.SkipRetry)
	}
	d, ev, err := p.Store.LoadDeliveryEvent(ctx, pl.DeliveryID)
	if err != nil {
		return err
	}
	if d.Status != payment.DeliveryPending || d.Seq != pl.Seq {
		return nil // done, or another try's
	}
	now := p.Store.Now()
	try := store.DeliveryTry{DeliveryID: d.ID, Seq: d.Seq, DisableAfter: webhook.DisableAfter * p.cfg.WebhookUnit}
	outcome := "failed" // the metric's label: delivered, retry, failed, refused
	if d.EndpointDeleted || d.EndpointStatus != "enabled" {
		try.Error = "endpoint " + map[bool]string{true: "deleted", false: "disabled"}[d.EndpointDeleted]
	} else {
		try.StatusCode, try.Latency, try.Error = p.post(ctx, d, ev, now)
		switch next, ok := webhook.NextTry(d.EventAt, now, d.Attempts+1, p.cfg.WebhookUnit); {
		case try.StatusCode >= 200 && try.StatusCode < 300:
			try.Delivered, outcome = true, "delivered"
		case ok:
			try.NextAt, outcome = &next, "retry"
		default:
			try.Exhausted = true
		}
		if strings.Contains(try.Error, webhook.ErrPrivateURL.Error()) {
			outcome = "refused"
		}
	}
	res, err := p.Store.RecordTry(ctx, try)
	if errors.Is(err, payment.ErrStale) {
		return nil
	}
	if err != nil {
		return err
	}
	p.Metrics.WebhookDeliveries.WithLabelValues(outcome).Inc()
	if try.Delivered {
		p.Metrics.WebhookLatency.Observe(res.DeliveredLatency.Seconds())
	}
	if res.Disabled {
		p.Metrics.WebhooksDisabled.Inc()
		p.Log.WarnContext(ctx, "webhook endpoint disabled: every delivery failed for the whole retry window", "endpoint_id", d.EndpointID)
	}
	if try.NextAt != nil && !res.Disabled { // disabling the endpoint failed this delivery too
		if err := p.Enqueue.Deliver(ctx, d.ID, res.Seq, *try.NextAt); err != nil {
			p.Log.WarnContext(ctx, "enqueue delivery retry failed; the dispatcher will recover it", "delivery_id", d.ID, "err", err)
		}
	}
	return nil
}

// post sends a delivery once: the status code (0 for no answer), how long
// it took, and what went wrong in words ("" for a 2xx).
func (p *Processor) post(ctx context.Context, d store.Delivery, ev store.OutboxEvent, now time.Time) (int, time.Duration, string) {
	body, err := p.RenderEvent(ctx, ev)
	if err != nil {
		return 0, 0, "render event: " + err.Error()
	}
	secrets := []string{}
	cur, err := p.Keyring.Open(d.SecretSealed, d.EndpointID)
	if err != nil {
		return 0, 0, err.Error()
	}
	secrets = append(secrets, cur)
	if d.PreviousSealed != "" && d.PreviousUntil.Valid && now.Before(d.PreviousUntil.Time) {
		if prev, err := p.Keyring.Open(d.PreviousSealed, d.EndpointID); err == nil {
			secrets = append(secrets, prev)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, "bad URL: " + err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "payd-webhooks/1")
	req.Header.Set("Payd-Event-Id", d.EventID)
	req.Header.Set("Payd-Delivery-Attempt", strconv.Itoa(d.Attempts+1))
	req.Header.Set(webhook.Header, webhook.Sign(body, time.Now(), secrets...))
	start := time.Now()
	resp, err := p.webhookClient().Do(req)
	latency := time.Since(start)
	if err != nil {
		return 0, latency, err.Error()
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxReceiverBody))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, latency, ""
	}
	// the store keeps the first 500 bytes of it (RecordTry)
	return resp.StatusCode, latency, fmt.Sprintf("HTTP %d: %s", resp.StatusCode, answer)
}

// webhookClient is the delivery client, built once.
func (p *Processor) webhookClient() *http.Client {
	p.whOnce.Do(func() { p.whClient = webhook.Client(p.cfg.WebhookPolicy, p.cfg.WebhookTimeout) })
	return p.whClient
}

// DispatchDeliveries enqueues every webhook delivery that is due now — a
// new one written by the events trigger, or a retry whose task was lost —
// like the sweeper but without its grace: a delivery row has no other
// enqueue after its commit. It returns how many it enqueued.
func (p *Processor) DispatchDeliveries(ctx context.Context) (int, error) {
	if p.Keyring == nil || p.RenderEvent == nil {
		return 0, nil
	}
	total := 0
	for {
		due, err := p.Store.ClaimDue(ctx, store.DueBefore{store.StepDelivery: p.Store.Now()}, p.cfg.SweepLease, p.cfg.SweepBatch)
		if err != nil {
			return total, fmt.Errorf("dispatch deliveries: %w", err)
		}
		for _, d := range due {
			n, err := p.sweepOne(ctx, d, p.Store.Now())
			if err != nil {
				return total, fmt.Errorf("dispatch %s: %w", d, err)
			}
			total += n
		}
		if len(due) < p.cfg.SweepBatch {
			return total, nil
		}
	}
}

// RunDispatcher dispatches deliveries every interval until ctx ends.
func (p *Processor) RunDispatcher(ctx context.Context, interval time.Duration) {
	tk := time.NewTicker(interval)
	defer tk.Stop()
	for {
		if _, err := p.DispatchDeliveries(ctx); err != nil && ctx.Err() == nil {
			p.Log.WarnContext(ctx, "webhook dispatch failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}
