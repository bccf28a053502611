package store

// The lookups' statements, for the plan test (lookup_plan_test.go).
const (
	SessionByID = sessionByID
	PaymentByID = paymentByID
)
