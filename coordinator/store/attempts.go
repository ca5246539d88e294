package store

import "time"

// AttemptTotals sums the finished runs of one instance type in a batch: what batch progress
// (watch, status, the dashboard) shows and the ETA is computed from. The store aggregates them
// itself, because reading every run of a batch of tens of thousands on each progress poll cost
// the coordinator more than leasing did.
type AttemptTotals struct {
	// Attempts counts every finished run, whatever became of it: each one was paid for.
	Attempts int
	// Failed counts runs that failed, retried or not; Retries those of them that were retried.
	Failed, Retries int
	CostUSD         float64
	// MedianDuration is the median run time of the type's successful runs (the lower middle of
	// an even count), 0 before the first success.
	MedianDuration time.Duration
}
