package intake

import "github.com/payd/payd/payment"

// payoutMethods are the method values of a payout. The payout status table
// (canonical → seed 002) is payment.PayoutStatusName, shared with the
// operator commands (payment/surface_status.go).
var payoutMethods = map[string]payment.Method{
	"ACH": payment.MethodACH, "WIRE": payment.MethodWire, "SEPA": payment.MethodSEPA, "SWIFT": payment.MethodSWIFT,
	"RTP": payment.MethodRTP, "CHECK": payment.MethodCheck, "CARD": payment.MethodCard,
	"VIRTUAL_CARD": payment.MethodVirtualCard, "PAYPAL": payment.MethodPayPal, "OTHER": payment.MethodOther,
}
