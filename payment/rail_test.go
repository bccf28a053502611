package payment

import (
	"testing"
	"time"
)

func TestExpectedSettlement(t *testing.T) {
	t.Parallel()
	fri := time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC) // a Friday
	sat := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	late := time.Date(2026, 11, 18, 20, 30, 0, 0, time.UTC) // Wednesday, after 19:00
	cases := []struct {
		m    Method
		sent time.Time
		want time.Time
	}{
		{MethodACH, fri, time.Date(2026, 11, 23, 21, 0, 0, 0, time.UTC)},   // Monday
		{MethodSEPA, sat, time.Date(2026, 11, 23, 21, 0, 0, 0, time.UTC)},  // Monday
		{MethodSWIFT, fri, time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)}, // Tuesday
		{MethodCheck, fri, time.Date(2026, 11, 27, 21, 0, 0, 0, time.UTC)}, // next Friday
		{MethodWire, fri, fri.Add(2 * time.Hour)},
		{MethodWire, late, time.Date(2026, 11, 19, 9, 0, 0, 0, time.UTC)},
		{MethodWire, sat, time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)},
		{MethodRTP, sat, sat.Add(10 * time.Second)},
		{MethodCard, fri, fri},
	}
	for _, c := range cases {
		if got := ExpectedSettlement(c.m, c.sent); !got.Equal(c.want) {
			t.Errorf("%s sent %s: %s, want %s", c.m, c.sent.Format(time.RFC1123), got.Format(time.RFC1123), c.want.Format(time.RFC1123))
		}
	}
}

func TestReturnCodes(t *testing.T) {
	t.Parallel()
	for code, want := range map[string][2]bool{"R01": {true, false}, "R09": {true, false}, "R02": {false, true},
		"R03": {false, true}, "R04": {false, true}, "R10": {false, false}} {
		if ReturnRetryEligible(code) != want[0] || ReturnBlocksAccount(code) != want[1] {
			t.Errorf("%s: retry %t block %t", code, ReturnRetryEligible(code), ReturnBlocksAccount(code))
		}
	}
}
