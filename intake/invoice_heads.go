package intake

import (
	"context"
	"errors"
	"sync"

	"github.com/payd/payd/payment"
	"github.com/payd/payd/store"
)

// invoiceHeads caches what a payment needs of the invoice it pays: its id,
// tenant, currency and number never change once it exists, so a hot
// invoice costs no round trip per payment. Whether it is void is checked
// again under its row lock by the statement that records the payment
// (store.CreatePayment), which refuses it if the cache was out of date.
type invoiceHeads struct {
	mu sync.RWMutex
	m  map[invoiceRef]payment.Invoice
}

type invoiceRef struct{ tenant, ref string }

const maxInvoiceHeads = 10000

func newInvoiceHeads() *invoiceHeads { return &invoiceHeads{m: map[invoiceRef]payment.Invoice{}} }

// head returns the tenant's invoice named ref (its id or external id); an
// unknown one is a 422 destination_id_not_found.
func (c *invoiceHeads) head(ctx context.Context, st *store.Store, tenant, ref string) (payment.Invoice, error) {
	k := invoiceRef{tenant, ref}
	c.mu.RLock()
	inv, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return inv, nil
	}
	inv, err := st.InvoiceHead(ctx, tenant, ref)
	if errors.Is(err, payment.ErrNotFound) {
		return inv, validation(map[string]string{"destination_id": "destination_id_not_found"})
	}
	if err != nil {
		return inv, err
	}
	c.mu.Lock()
	if len(c.m) >= maxInvoiceHeads {
		clear(c.m)
	}
	c.m[k] = inv
	c.mu.Unlock()
	return inv, nil
}

func (c *invoiceHeads) forget(tenant, ref string) {
	c.mu.Lock()
	delete(c.m, invoiceRef{tenant, ref})
	c.mu.Unlock()
}
