// Package vendorclient holds the seed-001 vendor's contract suite: payd
// driven by that vendor's official TypeScript client (npm @flexprice/sdk,
// pinned by package-lock.json, installed by scripts/test.sh with npm ci
// into node_modules). suite.mjs runs every payments call of the client;
// TestVendorClient starts payd (intake and a worker on real PostgreSQL and
// Redis, testenv.Harness) and runs it with Node.
//
// It holds tests only and imports nothing of payd outside its test.
package vendorclient
