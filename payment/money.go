package payment

// Money is an amount in integer minor units of an ISO 4217 currency. There is
// no float anywhere on the path from the wire to the database.
type Money struct {
	Minor    int64
	Currency string
}
