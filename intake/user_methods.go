package intake

import (
	"strings"

	"github.com/payd/payd/payment"
)

// What a payment flow needs of a user: a default payin method and a payout
// account (POST /v1/users, PATCH /v1/users/{id}). The payout account has
// seed 002's field names and is checked by the payout's own rules.

type payinMethodRequest struct {
	PaymentMethodType *string `json:"payment_method_type"`
	PaymentMethodID   *string `json:"payment_method_id"`
}

// payinMethods are the methods a flow can collect with.
var payinMethods = map[string]payment.Method{"CARD": payment.MethodCard, "ACH": payment.MethodACH}

// valid checks a payin method; bad gets one code per field, under prefix.
func (req *payinMethodRequest) valid(prefix string, bad map[string]string) *payment.PayinMethod {
	if req == nil {
		return nil
	}
	m, code := oneOf("payment_method_type", req.PaymentMethodType, payinMethods)
	if code != "" {
		bad[prefix+".payment_method_type"] = prefix + "_" + code
	}
	id := str(req.PaymentMethodID)
	if code := checkText(req.PaymentMethodID, true, 255); code != "" {
		bad[prefix+".payment_method_id"] = prefix + "_payment_method_id_" + code
	} else if m == payment.MethodACH && !achDebitAccount(id) {
		bad[prefix+".payment_method_id"] = prefix + "_payment_method_id_invalid"
	}
	return &payment.PayinMethod{Type: m, ID: id}
}

// achDebitAccount: an account to debit by ACH, ba_ and 4 to 17 digits.
func achDebitAccount(id string) bool {
	digits, ok := strings.CutPrefix(id, "ba_")
	if !ok || len(digits) < 4 || len(digits) > 17 {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return false
		}
	}
	return true
}

type payoutAccountRequest struct {
	Method                 *string `json:"method"`
	BeneficiaryName        *string `json:"beneficiary_name"`
	BeneficiaryBankName    *string `json:"beneficiary_bank_name"`
	BeneficiaryBankCountry *string `json:"beneficiary_bank_country"`
	BeneficiarySwiftBIC    *string `json:"beneficiary_swift_bic"`
	BeneficiaryIBAN        *string `json:"beneficiary_iban"`
	BeneficiaryAccount     *string `json:"beneficiary_account"`
	BeneficiaryRouting     *string `json:"beneficiary_routing"`
}

// valid checks a payout account by the rules of a seed-002 payout on its
// rail: the bank fields each as POST /v1/payouts checks them, and what the
// rail needs present. A payout account is a bank account: CHECK, PAYPAL and
// the other methods that are no bank rail are refused.
func (req *payoutAccountRequest) valid(prefix string, bad map[string]string) *payment.PayoutAccount {
	if req == nil {
		return nil
	}
	m, code := oneOf("method", req.Method, payoutMethods)
	if code == "" && (!m.BankRail() || m == payment.MethodCheck) {
		code = "method_not_supported"
	}
	if code != "" {
		bad[prefix+".method"] = prefix + "_" + code
	}
	preq := createPayoutRequest{}
	preq.BeneficiaryName, preq.BeneficiaryBankName = req.BeneficiaryName, req.BeneficiaryBankName
	preq.BeneficiaryBankCountry, preq.BeneficiarySwiftBIC = req.BeneficiaryBankCountry, req.BeneficiarySwiftBIC
	preq.BeneficiaryIBAN, preq.BeneficiaryAccount, preq.BeneficiaryRouting = req.BeneficiaryIBAN, req.BeneficiaryAccount, req.BeneficiaryRouting
	var f payoutFields
	fieldBad := map[string]string{}
	f.checkParties(preq, m, fieldBad)
	if code == "" {
		f.checkRequired(m, fieldBad)
	}
	for k, v := range fieldBad {
		bad[prefix+"."+k] = prefix + "_" + v
	}
	return &payment.PayoutAccount{Method: m, BeneficiaryName: f.BeneficiaryName, BeneficiaryBankName: f.BeneficiaryBankName,
		BeneficiaryBankCountry: f.BeneficiaryBankCountry, BeneficiarySwiftBIC: f.BeneficiarySwiftBIC,
		BeneficiaryIBAN: f.BeneficiaryIBAN, BeneficiaryAccount: f.BeneficiaryAccount, BeneficiaryRouting: f.BeneficiaryRouting}
}

// payinMethodResponse and payoutAccountResponse show what a user has, as
// a seed-002 payout shows its beneficiary.
type payinMethodResponse struct {
	PaymentMethodType string `json:"payment_method_type"`
	PaymentMethodID   string `json:"payment_method_id"`
}

type payoutAccountResponse struct {
	Method                 string  `json:"method"`
	BeneficiaryName        *string `json:"beneficiary_name"`
	BeneficiaryBankName    *string `json:"beneficiary_bank_name"`
	BeneficiaryBankCountry *string `json:"beneficiary_bank_country"`
	BeneficiarySwiftBIC    *string `json:"beneficiary_swift_bic"`
	BeneficiaryIBAN        *string `json:"beneficiary_iban"`
	BeneficiaryAccount     *string `json:"beneficiary_account"`
	BeneficiaryRouting     *string `json:"beneficiary_routing"`
}

func toPayinMethodResponse(m *payment.PayinMethod) *payinMethodResponse {
	if m == nil {
		return nil
	}
	return &payinMethodResponse{PaymentMethodType: string(m.Type), PaymentMethodID: m.ID}
}

func toPayoutAccountResponse(a *payment.PayoutAccount) *payoutAccountResponse {
	if a == nil {
		return nil
	}
	return &payoutAccountResponse{Method: string(a.Method), BeneficiaryName: strp(a.BeneficiaryName),
		BeneficiaryBankName: strp(a.BeneficiaryBankName), BeneficiaryBankCountry: strp(a.BeneficiaryBankCountry),
		BeneficiarySwiftBIC: strp(a.BeneficiarySwiftBIC), BeneficiaryIBAN: strp(a.BeneficiaryIBAN),
		BeneficiaryAccount: strp(a.BeneficiaryAccount), BeneficiaryRouting: strp(a.BeneficiaryRouting)}
}
