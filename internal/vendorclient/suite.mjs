// The seed-001 vendor's contract suite: payd driven by the vendor's official
// client (@flexprice/sdk, pinned by package-lock.json), configured with
// nothing but payd's base URL and an API key, as a user moving to payd would.
//
// Env: PAYD_URL (payd's base URL with /v1, no trailing slash), PAYD_API_KEY,
// PAYD_INVOICE (an invoice of the key's tenant in USD with room for every
// payment made here). TestVendorClient (vendorclient_test.go) sets them.
//
// Each case prints `PASS name` or `FAIL name: reason`; the exit code is 1
// when any case failed. Cases are written to the vendor's contract, not to
// what payd does today.
import { Flexprice } from "@flexprice/sdk"; // its README says FlexPrice; the package exports Flexprice
import { FlexPriceError } from "@flexprice/sdk/sdk/models/flex-price-error.js";
import { ResponseValidationError } from "@flexprice/sdk/sdk/models/response-validation-error.js";
import { SDKValidationError } from "@flexprice/sdk/sdk/models/sdk-validation-error.js";
import { randomUUID } from "node:crypto";

const serverURL = process.env.PAYD_URL;
const apiKey = process.env.PAYD_API_KEY;
const invoice = process.env.PAYD_INVOICE;
if (!serverURL || !apiKey || !invoice) {
  console.error("suite.mjs: PAYD_URL, PAYD_API_KEY and PAYD_INVOICE must be set");
  process.exit(2);
}

const client = new Flexprice({ serverURL, apiKeyAuth: apiKey, timeoutMs: 15000 });

const results = [];
const made = {}; // ids created by earlier cases, for later ones

function describe(e) {
  if (e instanceof ResponseValidationError) {
    // the client could not parse a 2xx answer: say which fields it tripped on
    const issues = (e.cause?.issues ?? []).slice(0, 5).map((i) => `${(i.path ?? []).join(".")}: ${i.message}`);
    return `${e.name} (status ${e.statusCode}): ${e.message}; ${issues.join("; ")}; body ${String(e.body).slice(0, 300)}`;
  }
  if (e instanceof FlexPriceError) {
    return `${e.name} status ${e.statusCode}: ${String(e.message).slice(0, 400)}`;
  }
  if (e instanceof SDKValidationError) {
    return `${e.name}: ${e.message} ${e.pretty ? e.pretty() : ""}`;
  }
  return e?.stack ? String(e.stack).split("\n").slice(0, 3).join(" | ") : String(e);
}

async function run(name, fn) {
  try {
    await fn();
    results.push(true);
    console.log(`PASS ${name}`);
  } catch (e) {
    results.push(false);
    console.log(`FAIL ${name}: ${describe(e)}`);
  }
}

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

function eq(got, want, what) {
  check(got === want, `${what} = ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// waitStatus polls getPayment until the payment's status is one of want.
async function waitStatus(id, want, ms = 30000) {
  const deadline = Date.now() + ms;
  let p;
  for (;;) {
    p = await client.payments.getPayment(id);
    if (want.includes(p.paymentStatus)) return p;
    if (Date.now() > deadline) {
      throw new Error(`payment ${id} is ${p.paymentStatus} after ${ms} ms, want ${want.join("|")}`);
    }
    await sleep(100);
  }
}

// expectAPIError runs fn, which must throw the client's HTTP error with a
// status among statuses and payd's message (not a parse failure).
async function expectAPIError(fn, statuses, messagePart) {
  let err;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  check(err !== undefined, "no error thrown");
  check(!(err instanceof ResponseValidationError), `the client failed to parse the error answer: ${describe(err)}`);
  check(err instanceof FlexPriceError, `not an HTTP error of the client: ${describe(err)}`);
  check(statuses.includes(err.statusCode), `status ${err.statusCode}, want ${statuses.join("|")}: ${err.message}`);
  if (messagePart) {
    check(String(err.message).includes(messagePart), `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(messagePart)}`);
  }
  return err;
}

const iso = (s, what) => check(typeof s === "string" && !Number.isNaN(Date.parse(s)), `${what} ${JSON.stringify(s)} is no date`);

function newPayment(over = {}) {
  return {
    amount: "12.50",
    currency: "USD",
    destinationId: invoice,
    destinationType: "INVOICE",
    paymentMethodType: "CARD",
    paymentMethodId: "pm_card_visa",
    ...over,
  };
}

// ---------------------------------------------------------------- create

await run("createPayment CARD (process_payment default true) succeeds", async () => {
  const p = await client.payments.createPayment(newPayment({ metadata: { order: "ord_card" } }));
  check(typeof p.id === "string" && p.id !== "", "no id");
  made.card = p.id;
  eq(p.paymentMethodType, "CARD", "payment_method_type");
  eq(p.currency, "USD", "currency");
  eq(Number(p.amount), 12.5, "amount");
  eq(p.destinationId, invoice, "destination_id");
  eq(p.destinationType, "INVOICE", "destination_type");
  eq(p.metadata?.order, "ord_card", "metadata.order");
  iso(p.createdAt, "created_at");
  const done = await waitStatus(p.id, ["SUCCEEDED", "FAILED"]);
  eq(done.paymentStatus, "SUCCEEDED", "payment_status");
  iso(done.succeededAt, "succeeded_at");
});

await run("createPayment ACH settles", async () => {
  const p = await client.payments.createPayment(newPayment({
    amount: "20.00", paymentMethodType: "ACH", paymentMethodId: "ba_123456789",
  }));
  made.ach = p.id;
  eq(p.paymentMethodType, "ACH", "payment_method_type");
  check(["PENDING", "PROCESSING", "INITIATED"].includes(p.paymentStatus), `created as ${p.paymentStatus}`);
  const done = await waitStatus(p.id, ["SUCCEEDED", "FAILED"]);
  eq(done.paymentStatus, "SUCCEEDED", "payment_status");
});

await run("createPayment OFFLINE process_payment=false stays PENDING", async () => {
  const p = await client.payments.createPayment(newPayment({
    amount: "30.00", paymentMethodType: "OFFLINE", paymentMethodId: undefined, processPayment: false,
  }));
  made.offline = p.id;
  eq(p.paymentMethodType, "OFFLINE", "payment_method_type");
  eq(p.paymentStatus, "PENDING", "payment_status at create");
  await sleep(500); // nothing may move it: it waits for processPayment
  const again = await client.payments.getPayment(p.id);
  eq(again.paymentStatus, "PENDING", "payment_status after 500 ms");
});

// ---------------------------------------------------------------- get

await run("getPayment returns the payment with its attempts", async () => {
  check(made.card, "no CARD payment from an earlier case");
  const p = await client.payments.getPayment(made.card);
  eq(p.id, made.card, "id");
  eq(p.paymentMethodType, "CARD", "payment_method_type");
  eq(p.paymentMethodId, "pm_card_visa", "payment_method_id");
  check(Array.isArray(p.attempts) && p.attempts.length >= 1, `attempts ${JSON.stringify(p.attempts)}`);
  eq(p.attempts[0].paymentId, made.card, "attempts[0].payment_id");
  eq(p.attempts[0].attemptNumber, 1, "attempts[0].attempt_number");
  iso(p.updatedAt, "updated_at");
});

await run("getPayment of an unknown id is a 404 with payd's message", async () => {
  const e = await expectAPIError(() => client.payments.getPayment("pay_does_not_exist"), [404]);
  // the client reads error.message of the vendor's error shape
  check(e.name === "ErrorsErrorsErrorResponse", `error class ${e.name}, want the vendor's ErrorsErrorsErrorResponse`);
  check(e.error?.message && !String(e.message).startsWith("API error occurred"),
    `message not surfaced: ${JSON.stringify(e.message)}`);
});

// ---------------------------------------------------------------- process

await run("processPayment of the OFFLINE payment records it paid", async () => {
  check(made.offline, "no OFFLINE payment from an earlier case");
  const p = await client.payments.processPayment(made.offline);
  eq(p.id, made.offline, "id");
  const done = await waitStatus(made.offline, ["SUCCEEDED", "FAILED"]);
  eq(done.paymentStatus, "SUCCEEDED", "payment_status");
});

// ---------------------------------------------------------------- update

await run("updatePayment changes metadata", async () => {
  check(made.card, "no CARD payment from an earlier case");
  const p = await client.payments.updatePayment(made.card, { metadata: { order: "ord_card", note: "reconciled" } });
  eq(p.id, made.card, "id");
  eq(p.metadata?.note, "reconciled", "metadata.note in the answer");
  const again = await client.payments.getPayment(made.card);
  eq(again.metadata?.note, "reconciled", "metadata.note after getPayment");
});

// ---------------------------------------------------------------- delete

await run("deletePayment of an unprocessed payment, then 404", async () => {
  const p = await client.payments.createPayment(newPayment({ amount: "1.00", processPayment: false }));
  eq(p.paymentStatus, "PENDING", "payment_status at create");
  const res = await client.payments.deletePayment(p.id);
  check(typeof res.message === "string" && res.message !== "", `answer ${JSON.stringify(res)}`);
  await expectAPIError(() => client.payments.getPayment(p.id), [404]);
});

await run("deletePayment of a payment that moved money is refused", async () => {
  check(made.card, "no CARD payment from an earlier case");
  await expectAPIError(() => client.payments.deletePayment(made.card), [400, 409, 422]);
});

// ---------------------------------------------------------------- list

await run("listPayments filters and pages with limit/offset", async () => {
  // three ACH payments of their own, found again by payment_ids
  const ids = [];
  for (let i = 0; i < 3; i++) {
    const p = await client.payments.createPayment(newPayment({
      amount: "2.00", paymentMethodType: "ACH", paymentMethodId: "ba_123456789",
    }));
    ids.push(p.id);
  }
  const page1 = await client.payments.listPayments({ paymentIds: ids, limit: 2, offset: 0 });
  eq(page1.pagination?.total, 3, "pagination.total");
  eq(page1.pagination?.limit, 2, "pagination.limit");
  eq(page1.pagination?.offset, 0, "pagination.offset");
  eq(page1.items?.length, 2, "items on page 1");
  const page2 = await client.payments.listPayments({ paymentIds: ids, limit: 2, offset: 2 });
  eq(page2.items?.length, 1, "items on page 2");
  eq(page2.pagination?.offset, 2, "pagination.offset on page 2");
  const seen = [...page1.items, ...page2.items].map((p) => p.id).sort();
  eq(JSON.stringify(seen), JSON.stringify([...ids].sort()), "ids over both pages");

  const ach = await client.payments.listPayments({
    paymentMethodType: "ACH", currency: "USD", destinationId: invoice, destinationType: "INVOICE", limit: 100,
  });
  check(ach.items?.length >= 4, `ACH items ${ach.items?.length}, want >= 4`);
  check(ach.items.every((p) => p.paymentMethodType === "ACH"), "payment_method_type filter let other methods through");

  const card = await client.payments.listPayments({ paymentMethodType: "CARD", paymentStatus: "SUCCEEDED", limit: 100 });
  check(card.items?.some((p) => p.id === made.card), "the succeeded CARD payment is not listed");
  check(card.items.every((p) => p.paymentMethodType === "CARD" && p.paymentStatus === "SUCCEEDED"),
    "payment_status/payment_method_type filters let others through");

  const asc = await client.payments.listPayments({ paymentIds: ids, sort: "created_at", order: "asc" });
  eq(JSON.stringify(asc.items?.map((p) => p.id)), JSON.stringify(ids), "order=asc by created_at");
});

// ---------------------------------------------------------------- idempotency

await run("createPayment replayed with the same idempotency_key returns the same payment", async () => {
  const req = newPayment({ amount: "3.00", idempotencyKey: `vc-${randomUUID()}` });
  const a = await client.payments.createPayment(req);
  const b = await client.payments.createPayment(req);
  eq(b.id, a.id, "replayed id");
  eq(b.idempotencyKey, req.idempotencyKey, "idempotency_key");
});

await run("createPayment replayed with the same Idempotency-Key header returns the same payment", async () => {
  const opts = { headers: { "Idempotency-Key": `vc-${randomUUID()}` } };
  const req = newPayment({ amount: "4.00" });
  const a = await client.payments.createPayment(req, opts);
  const b = await client.payments.createPayment(req, opts);
  eq(b.id, a.id, "replayed id");
});

// ---------------------------------------------------------------- errors

await run("createPayment with a bad amount surfaces status and message", async () => {
  const e = await expectAPIError(() => client.payments.createPayment(newPayment({ amount: "twelve" })), [400, 422]);
  check(/amount/.test(e.message), `message ${JSON.stringify(e.message)} does not name amount`);
});

await run("a wrong API key surfaces 401", async () => {
  const bad = new Flexprice({ serverURL, apiKeyAuth: "sk_wrong_key", timeoutMs: 15000 });
  await expectAPIError(() => bad.payments.getPayment(made.card ?? "pay_x"), [401]);
});

const failed = results.filter((ok) => !ok).length;
console.log(`cases: ${results.length}, passed: ${results.length - failed}, failed: ${failed}`);
process.exit(failed ? 1 : 0);
