package payment

import "time"

// Rail timing: when a payment sent on a bank rail is expected to settle.
// Business days are Monday to Friday in UTC; bank holidays are not modelled.
//
//	ACH    end of the next business day (standard ACH, T+1)
//	SEPA   end of the next business day (SCT, T+1)
//	WIRE   same day: two hours after sending, or the next business day's
//	       opening if sent outside Fed hours (after 21:00 or on a weekend)
//	SWIFT  two business days (T+2)
//	RTP    ten seconds, every day (instant)
//	CHECK  mailed, then cleared five business days later
var railRules = map[Method]struct {
	businessDays int
	within       time.Duration // for same-day and instant rails
	weekendsOK   bool
}{
	MethodACH:   {businessDays: 1},
	MethodSEPA:  {businessDays: 1},
	MethodWire:  {within: 2 * time.Hour},
	MethodSWIFT: {businessDays: 2},
	MethodRTP:   {within: 10 * time.Second, weekendsOK: true},
	MethodCheck: {businessDays: 5},
}

// ExpectedSettlement returns when a payment sent on method's rail at sent is
// expected to settle. Methods that are not bank rails settle at once.
func ExpectedSettlement(m Method, sent time.Time) time.Time {
	sent = sent.UTC()
	r, ok := railRules[m]
	if !ok {
		return sent
	}
	if r.within > 0 {
		if r.weekendsOK {
			return sent.Add(r.within)
		}
		at := sent.Add(r.within)
		if businessDay(sent) && at.Hour() < 21 && at.Day() == sent.Day() {
			return at
		}
		return openingOf(nextBusinessDay(sent))
	}
	day := sent
	for i := 0; i < r.businessDays; i++ {
		day = nextBusinessDay(day)
	}
	return time.Date(day.Year(), day.Month(), day.Day(), 21, 0, 0, 0, time.UTC)
}

func businessDay(t time.Time) bool {
	wd := t.Weekday()
	return wd != time.Saturday && wd != time.Sunday
}

func nextBusinessDay(t time.Time) time.Time {
	t = t.AddDate(0, 0, 1)
	for !businessDay(t) {
		t = t.AddDate(0, 0, 1)
	}
	return t
}

func openingOf(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 9, 0, 0, 0, time.UTC)
}

// ReturnRetryEligible reports whether an ACH return code allows presenting
// the payment again (R01 insufficient funds, R09 uncollected funds), by
// policy up to twice.
func ReturnRetryEligible(code string) bool { return code == "R01" || code == "R09" }

// ReturnBlocksAccount reports whether an ACH return code marks the
// beneficiary account unusable for further payouts: R02 account closed, R03
// no account or unable to locate, R04 invalid account number.
func ReturnBlocksAccount(code string) bool { return code == "R02" || code == "R03" || code == "R04" }
