// Package coordinator is the enrichment control plane: it owns the store, leases work items to
// agents over AgentService.Connect streams, commits their results, reaps expired leases, serves
// ControlService to operators and consolidates finished batches.
//
// # Leases
//
// A lease is one grant of one work item, named by (item id, token). Every grant increments the
// item's token, so the token is a fencing token: a report carrying an older token comes from a
// holder that lost the item. A lease ends in one of four ways:
//
//   - Result: the dossier is validated against the instance type's schema and committed, then the
//     agent gets an Ack and may delete its spool copy. A result from an older lease is still
//     accepted while the item has no result (the work is real and paid for) and the newer lease is
//     cancelled; a result for an item that already has one is dropped and counted as a duplicate.
//   - Failure: retryable failures return the item to pending with attempt+1, not before an
//     exponential, jittered backoff; permanent failures and exhausted attempts fail the item.
//   - Expiry: a lease expires at last heartbeat + TTL, and never lives past its deadline (the
//     instance type's timeout). The reaper treats expiry as a retryable failure and tells the
//     holder, if connected, to stop the runner.
//   - Cancel: the batch was cancelled; the holder is told to stop.
//
// # Credits
//
// Dispatch is pull-based. An agent sends Credit(n) when it has n free slots; the dispatcher never
// sends a session more leases than its outstanding credits, so an agent is never handed more work
// than it asked for. Fleet-wide caps per instance type (max_concurrent) are enforced by the store's
// claim, which counts leased items of the type in the same transaction.
//
// # Group commit
//
// Results and failures from every session go through one committer goroutine, which commits all
// that is queued in one store transaction and only then acks; under load a transaction carries
// hundreds of results, when idle it carries one and adds no delay.
package coordinator
