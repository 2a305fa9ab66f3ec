package store

// The transfer SQL, exported to the benchmark's inline baseline so that it
// runs exactly the statements the store runs.
const (
	SQLTransferByKey    = sqlTransferByKey
	SQLTransferAccounts = sqlTransferAccounts
	SQLInsertTransfer   = sqlInsertTransfer
	SQLAddBalance       = sqlAddBalance
	SQLInsertEntries    = sqlInsertEntries
)

// Fingerprint exposes the request fingerprint to the baseline.
var Fingerprint = fingerprint

// SetPurgeBatch changes how many rows one purge statement deletes, so tests
// can cross batch boundaries with a handful of rows.
func SetPurgeBatch(n int) (restore func()) {
	old := purgeBatch
	purgeBatch = n
	return func() { purgeBatch = old }
}

// Outage exposes the classification of database failures.
var Outage = outage
