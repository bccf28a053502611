package payment

import (
	"reflect"
	"testing"
	"time"
)

// TestPayoutTimes: a status given on create allows only the lifecycle
// times known at that point; times that record the past are not in the
// future (beyond the clock skew), and scheduled_at is at most a year ahead.
func TestPayoutTimes(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	all := []PayoutTime{PayoutScheduledAt, PayoutSubmittedAt, PayoutSentAt, PayoutExpectedSettlementAt, PayoutSettledAt,
		PayoutReturnedAt, PayoutCheckMailedAt, PayoutCheckClearedAt}
	allowed := map[PayoutStatus][]PayoutTime{
		PayoutInitiated:  {PayoutScheduledAt},
		PayoutProcessing: {PayoutScheduledAt, PayoutSubmittedAt, PayoutExpectedSettlementAt},
		PayoutSent:       {PayoutScheduledAt, PayoutSubmittedAt, PayoutSentAt, PayoutExpectedSettlementAt, PayoutCheckMailedAt},
		PayoutFailed:     {PayoutScheduledAt, PayoutSubmittedAt, PayoutSentAt, PayoutExpectedSettlementAt, PayoutCheckMailedAt},
		PayoutSettled: {PayoutScheduledAt, PayoutSubmittedAt, PayoutSentAt, PayoutExpectedSettlementAt, PayoutSettledAt,
			PayoutCheckMailedAt, PayoutCheckClearedAt},
		PayoutPaid: {PayoutScheduledAt, PayoutSubmittedAt, PayoutSentAt, PayoutExpectedSettlementAt, PayoutSettledAt,
			PayoutCheckMailedAt, PayoutCheckClearedAt},
		PayoutReturned: all,
		PayoutCanceled: {PayoutScheduledAt, PayoutSubmittedAt},
		"NOPE":         all, // an unknown status is refused on its own
	}
	hourAgo := now.Add(-time.Hour)
	for st, times := range allowed {
		if st.Known() != (st != "NOPE") {
			t.Errorf("%s known = %v", st, st.Known())
		}
		ok := map[PayoutTime]bool{}
		for _, k := range times {
			ok[k] = true
		}
		for _, k := range all {
			want := ""
			if !ok[k] {
				want = "not_allowed_for_status"
			}
			if got := st.CheckTime(k, hourAgo, now); got != want {
				t.Errorf("%s with %s an hour ago = %q, want %q", st, k, got, want)
			}
		}
	}
	for _, c := range []struct {
		k    PayoutTime
		at   time.Time
		want string
	}{
		{PayoutSettledAt, now.Add(PayoutClockSkew), ""},
		{PayoutSettledAt, now.Add(PayoutClockSkew + time.Second), "in_future"},
		{PayoutCheckClearedAt, now.Add(time.Hour), "in_future"},
		{PayoutExpectedSettlementAt, now.AddDate(0, 0, 3), ""},
		{PayoutScheduledAt, now.AddDate(1, 0, 0), ""},
		{PayoutScheduledAt, now.AddDate(1, 0, 0).Add(time.Second), "too_far"},
	} {
		if got := PayoutReturned.CheckTime(c.k, c.at, now); got != c.want {
			t.Errorf("%s at %s = %q, want %q", c.k, c.at, got, c.want)
		}
	}
	if PayoutInitiated.Imported() || !PayoutPaid.Imported() {
		t.Error("only a payout created INITIATED is sent by payd")
	}
}

// TestPayoutTimesOutOfOrder: each later time names the first earlier time
// it precedes.
func TestPayoutTimesOutOfOrder(t *testing.T) {
	t.Parallel()
	day := func(d int) time.Time { return time.Date(2026, 1, d, 0, 0, 0, 0, time.UTC) }
	cases := []struct {
		at   map[PayoutTime]time.Time
		want map[PayoutTime]PayoutTime
	}{
		{map[PayoutTime]time.Time{PayoutSubmittedAt: day(1), PayoutSentAt: day(2), PayoutSettledAt: day(3), PayoutReturnedAt: day(4)},
			map[PayoutTime]PayoutTime{}},
		{map[PayoutTime]time.Time{PayoutSubmittedAt: day(2), PayoutSentAt: day(1)},
			map[PayoutTime]PayoutTime{PayoutSentAt: PayoutSubmittedAt}},
		{map[PayoutTime]time.Time{PayoutSentAt: day(3), PayoutSettledAt: day(2), PayoutReturnedAt: day(1)},
			map[PayoutTime]PayoutTime{PayoutSettledAt: PayoutSentAt, PayoutReturnedAt: PayoutSettledAt}},
		{map[PayoutTime]time.Time{PayoutSentAt: day(3), PayoutReturnedAt: day(1)},
			map[PayoutTime]PayoutTime{PayoutReturnedAt: PayoutSentAt}},
		{map[PayoutTime]time.Time{PayoutSentAt: day(3), PayoutExpectedSettlementAt: day(2)},
			map[PayoutTime]PayoutTime{PayoutExpectedSettlementAt: PayoutSentAt}},
		{map[PayoutTime]time.Time{PayoutCheckMailedAt: day(3), PayoutCheckClearedAt: day(2)},
			map[PayoutTime]PayoutTime{PayoutCheckClearedAt: PayoutCheckMailedAt}},
	}
	for _, c := range cases {
		if got := PayoutTimesOutOfOrder(c.at); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%v: got %v, want %v", c.at, got, c.want)
		}
	}
}

func TestPayoutStopPayment(t *testing.T) {
	t.Parallel()
	for st, want := range map[PayoutStatus]bool{PayoutInitiated: false, PayoutProcessing: false, PayoutSent: false,
		PayoutSettled: false, PayoutPaid: false, PayoutReturned: true, PayoutFailed: true, PayoutCanceled: true, "NOPE": true} {
		if got := st.AllowsStopPayment(); got != want {
			t.Errorf("%s allows a stop payment: %v, want %v", st, got, want)
		}
	}
}
