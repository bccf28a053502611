package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

func recordNotifications(t *testing.T, st *store.Store, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s_%04d", prefix, i)
		stored, fresh, err := st.RecordNotification(context.Background(), store.Notification{Gateway: "sandbox", ID: ids[i],
			Type: "charge.succeeded", IdempotencyKey: "pay_nope:1", OccurredAt: time.Now()})
		if err != nil || !fresh || stored.Seq != 1 {
			t.Fatalf("record %s: %+v fresh=%v %v", ids[i], stored, fresh, err)
		}
	}
	return ids
}

func notificationsOnly(t *testing.T, due []store.Due) []store.Due {
	t.Helper()
	var out []store.Due
	for _, d := range due {
		if d.Step != store.StepNotification || d.Notification.ID == "" || d.PaymentID != "" || d.RefundID != "" {
			t.Fatalf("claimed %+v", d)
		}
		out = append(out, d)
	}
	return out
}

// TestClaimDueNotifications: notifications not yet acted on are claimed by
// the sweeper like payment steps: oldest first, once per lease, split
// between concurrent sweepers; one still due after the lease comes back
// marked swept and can be re-armed under a fresh sequence, after which only
// the new sequence finishes it. Processed notifications are never claimed.
func TestClaimDueNotifications(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	ids := recordNotifications(t, st, "evt", 30)
	future := time.Now().Add(time.Hour)
	var mu sync.Mutex
	claimed := map[string]int{}
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			due, err := st.ClaimDue(ctx, store.AllDueBefore(future), 2*time.Hour, 4)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, d := range notificationsOnly(t, due) {
				if d.Swept || d.Seq != 1 {
					t.Errorf("first claim: %+v", d)
				}
				claimed[d.Notification.ID]++
			}
		}()
	}
	wg.Wait()
	if len(claimed) != 20 {
		t.Fatalf("5 sweepers of 4 claimed %d distinct notifications, want 20", len(claimed))
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("%s claimed %d times", id, n)
		}
	}
	// the 10 left, then nothing within the lease
	due, err := st.ClaimDue(ctx, store.AllDueBefore(future), 2*time.Hour, 100)
	if err != nil || len(notificationsOnly(t, due)) != 10 {
		t.Fatalf("the rest: %d %v", len(due), err)
	}
	if due, err := st.ClaimDue(ctx, store.AllDueBefore(future), time.Minute, 100); err != nil || len(due) != 0 {
		t.Fatalf("claimed again within the lease: %d %v", len(due), err)
	}
	// one acted on meanwhile is never claimed again
	if err := st.FinishNotification(ctx, "sandbox", ids[0], "", "unknown_payment"); err != nil {
		t.Fatal(err)
	}
	due, err = st.ClaimDue(ctx, store.AllDueBefore(future.Add(2*time.Hour)), time.Minute, 100)
	if err != nil || len(notificationsOnly(t, due)) != 29 {
		t.Fatalf("after the lease: %d %v", len(due), err)
	}
	d := due[0]
	if !d.Swept || d.Seq != 1 || d.Notification.ID == ids[0] {
		t.Fatalf("second claim: %+v", d)
	}
	seq, err := st.Rearm(ctx, d)
	if err != nil || seq != 2 {
		t.Fatalf("rearm: %d %v", seq, err)
	}
	if _, err := st.Rearm(ctx, d); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("second rearm of the same sequence: %v", err)
	}
	n, err := st.GetNotification(ctx, "sandbox", d.Notification.ID)
	if err != nil || n.Seq != 2 || n.ProcessedAt != nil {
		t.Fatalf("re-armed notification %+v %v", n, err)
	}
	// the old task's outcome is refused; the new one's is recorded, once
	if err := st.FinishNotificationTask(ctx, "sandbox", n.ID, 1, "", "unknown_payment"); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("finish at the old sequence: %v, want ErrStale", err)
	}
	if n, _ := st.GetNotification(ctx, "sandbox", d.Notification.ID); n.ProcessedAt != nil {
		t.Fatalf("processed by a stale task: %+v", n)
	}
	if err := st.FinishNotificationTask(ctx, "sandbox", n.ID, 2, "", "unknown_payment"); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishNotificationTask(ctx, "sandbox", n.ID, 2, "", "checked"); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("finished twice: %v", err)
	}
	if err := st.FinishNotification(ctx, "sandbox", n.ID, "", "checked"); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("finished twice (any sequence): %v", err)
	}
	if n, _ := st.GetNotification(ctx, "sandbox", d.Notification.ID); n.Outcome != "unknown_payment" {
		t.Fatalf("outcome %q, want the first one", n.Outcome)
	}
	// a processed notification is not re-armed
	if _, err := st.Rearm(ctx, store.Due{Notification: store.NotificationRef{Gateway: n.Gateway, ID: n.ID}, Step: store.StepNotification, Seq: 2}); !errors.Is(err, payment.ErrStale) {
		t.Fatalf("rearm of a processed notification: %v", err)
	}
	// without a notification cutoff, none is claimed
	before := store.AllDueBefore(future.Add(5 * time.Hour))
	delete(before, store.StepNotification)
	if due, err := st.ClaimDue(ctx, before, time.Minute, 100); err != nil || len(due) != 0 {
		t.Fatalf("claimed without a cutoff: %d %v", len(due), err)
	}
}

// TestClaimDueNotificationsGoToTheBack: a claimed notification is due
// again only a lease later, behind every notification due before then, so
// a batch of notifications whose tasks keep failing cannot starve newer
// ones however small the sweeper's batch.
func TestClaimDueNotificationsGoToTheBack(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	ids := recordNotifications(t, st, "evt", 5)
	// a cutoff past the lease: what was claimed is due again at once, yet
	// comes after what was not
	far := store.AllDueBefore(time.Now().Add(time.Hour))
	var got []string
	for range 4 {
		due, err := st.ClaimDue(ctx, far, time.Minute, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range notificationsOnly(t, due) {
			got = append(got, d.Notification.ID)
		}
	}
	want := []string{ids[0], ids[1], ids[2], ids[3], ids[4], ids[0], ids[1], ids[2]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("claimed in order %v, want %v", got, want)
	}
}
