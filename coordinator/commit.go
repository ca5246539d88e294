package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sportsintel/enrich/coordinator/config"
	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// report is one result or failure waiting for the committer.
type report struct {
	sess       *session
	completion *store.Completion
	failure    *store.Failure
	// rejected marks a failure made from a dossier that did not validate.
	rejected bool
}

// maxGroup bounds one commit; bigger groups add latency without saving much more.
const maxGroup = 512

func (s *Server) queueReport(ctx context.Context, r report) {
	select {
	case s.reports <- r:
	case <-ctx.Done():
	}
}

// commitLoop commits whatever reports are queued in one transaction, then acks them.
func (s *Server) commitLoop(ctx context.Context) {
	log := s.log.Named("commit")
	group := make([]report, 0, maxGroup)
	for {
		group = group[:0]
		select {
		case <-ctx.Done():
			return
		case r := <-s.reports:
			group = append(group, r)
		}
	drain:
		for len(group) < maxGroup {
			select {
			case r := <-s.reports:
				group = append(group, r)
			default:
				break drain
			}
		}
		s.commitGroup(ctx, group, log)
	}
}

func (s *Server) commitGroup(ctx context.Context, group []report, log hclog.Logger) {
	var p store.ReportParams
	var completions, failures []report
	for _, r := range group {
		if r.completion != nil {
			p.Completions = append(p.Completions, *r.completion)
			completions = append(completions, r)
		} else {
			p.Failures = append(p.Failures, *r.failure)
			failures = append(failures, r)
		}
	}
	p.RetryDelay = s.retryDelay
	var res *store.ReportResult
	// A store that is briefly unavailable must not lose reports: keep them and retry. Agents keep
	// their spool copies until the Ack, so even a coordinator crash here loses nothing.
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		var err error
		p.Now = s.now()
		start := time.Now()
		res, err = s.st.Report(ctx, p)
		if err == nil {
			s.metrics.commitSeconds.Observe(time.Since(start).Seconds())
			s.metrics.commitGroupSize.Observe(float64(len(group)))
			break
		}
		log.Error("commit reports; retrying", "reports", len(group), "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}

	touched := map[string]bool{}
	lateDuplicates := map[string]bool{}
	for i, r := range completions {
		out := res.Completions[i]
		ref := r.completion.Lease
		typ := s.reportType(ctx, r.sess, ref.ItemID)
		r.sess.release(ref.ItemID, ref.Token)
		if out.Redelivered {
			// Counted when it was first accepted; the agent only missed the Ack.
			log.Debug("result re-delivered; acknowledged again", "item_id", ref.ItemID, "token", ref.Token)
			r.sess.send(ackMsg(ref, enrichv1.AckOutcome_ACK_OUTCOME_ACCEPTED, "already accepted"))
			continue
		}
		s.metrics.results.WithLabelValues(typ, string(out.Outcome)).Inc()
		s.metrics.observeRun(typ, "succeeded", r.completion.Metrics)
		if out.Outcome == store.OutcomeDuplicate {
			log.Warn("duplicate result dropped", "item_id", ref.ItemID, "token", ref.Token, "agent_id", r.sess.agentID)
			lateDuplicates[out.BatchID] = true
		}
		if sup := out.Superseded; sup != nil {
			s.cancelLease(*sup, "another attempt of this entity already delivered its result")
		}
		r.sess.send(ackMsg(ref, ackOutcome(out.Outcome, false), ""))
		touched[out.BatchID] = true
	}
	stop := map[string]string{} // batches to stop under failure_handling: stop_batch, with why
	for i, r := range failures {
		out := res.Failures[i]
		ref := r.failure.Lease
		typ := s.reportType(ctx, r.sess, ref.ItemID)
		r.sess.release(ref.ItemID, ref.Token)
		if out.Outcome == store.OutcomeAccepted {
			s.metrics.failures.WithLabelValues(typ, finalLabel(out.Final), reasonClass(r.failure.Message, r.rejected)).Inc()
			if !out.Final {
				s.metrics.retries.WithLabelValues(typ).Inc()
			} else if s.cfg.RetryStrategy.FailureHandling == config.FailureStopBatch {
				stop[out.BatchID] = fmt.Sprintf("failure_handling stop_batch: item %d failed: %s", ref.ItemID, keepHead(r.failure.Message, 200))
			}
			s.metrics.observeRun(typ, "failed", r.failure.Metrics)
		}
		r.sess.send(ackMsg(ref, ackOutcome(out.Outcome, r.rejected), r.failure.Message))
		touched[out.BatchID] = true
	}
	// Every accepted report may have freed room under a fleet-wide cap.
	s.wakeDispatcher()
	for id := range touched {
		if id != "" {
			s.hub.publish(id)
		}
	}
	s.batchesFinished(ctx, res.FinishedBatches)
	for id, reason := range stop {
		s.stopBatch(ctx, id, reason)
	}
	s.recountConsolidated(ctx, lateDuplicates)
}

// recountConsolidated writes the report of an already consolidated batch again when a duplicate
// (paid work) arrived after it was written: a run that finished late behind a partition still
// belongs in the batch's duplicates and cost.
func (s *Server) recountConsolidated(ctx context.Context, batches map[string]bool) {
	if !s.cfg.Consolidation.AutoEnabled() {
		return
	}
	for id := range batches {
		if b, err := s.st.GetBatch(ctx, id); err == nil && b.State.Terminal() && !b.ConsolidatedAt.IsZero() {
			s.goBackground(func() { _, _ = s.consolidate(s.runCtx, id) })
		}
	}
}

// stopBatch cancels a batch one of whose items failed for good, when failure_handling is
// stop_batch. A batch that just ended (that failure was its last open item) stays as it ended.
func (s *Server) stopBatch(ctx context.Context, id, reason string) {
	if err := s.cancelBatch(ctx, id, reason); err != nil && !errors.Is(err, store.ErrInvalidState) {
		s.log.Error("stop batch after a failure", "batch_id", id, "error", err)
	}
}

// stopOnFinalExpiry applies failure_handling: stop_batch to leases that ended without a report
// (expired or released): the one whose item thereby failed for good stops its batch.
func (s *Server) stopOnFinalExpiry(ctx context.Context, ended []store.LeaseHolder) {
	if s.cfg.RetryStrategy.FailureHandling != config.FailureStopBatch {
		return
	}
	for _, h := range ended {
		if it, err := s.st.ItemByID(ctx, h.ItemID); err == nil && it.State == store.ItemFailed {
			s.stopBatch(ctx, h.BatchID, fmt.Sprintf("failure_handling stop_batch: item %d failed: %s", h.ItemID, it.LastError))
		}
	}
}

// cancelBatch cancels every open item of a batch and stops the runs in flight.
func (s *Server) cancelBatch(ctx context.Context, id, reason string) error {
	held, err := s.st.CancelBatch(ctx, store.CancelBatchParams{ID: id, Reason: reason, Now: s.now()})
	if err != nil {
		return err
	}
	for _, h := range held {
		s.cancelLease(h, "batch cancelled")
	}
	s.log.Named("batch").Info("batch cancelled", "batch_id", id, "reason", reason, "in_flight_cancelled", len(held))
	s.hub.publish(id)
	s.batchesFinished(ctx, []string{id})
	return nil
}

// reportType names the instance type of a reported item: from the session's lease, or from the
// store for a result re-sent from a spool after a reconnect.
func (s *Server) reportType(ctx context.Context, sess *session, itemID int64) string {
	if l, ok := sess.lease(itemID); ok && l.instanceType != "" {
		return l.instanceType
	}
	if it, err := s.st.ItemByID(ctx, itemID); err == nil {
		return it.InstanceType
	}
	return "unknown"
}

func finalLabel(final bool) string {
	if final {
		return "final"
	}
	return "retrying"
}

func ackOutcome(o store.Outcome, rejected bool) enrichv1.AckOutcome {
	switch {
	case rejected && o == store.OutcomeAccepted:
		return enrichv1.AckOutcome_ACK_OUTCOME_REJECTED
	case o == store.OutcomeAccepted:
		return enrichv1.AckOutcome_ACK_OUTCOME_ACCEPTED
	case o == store.OutcomeDuplicate:
		return enrichv1.AckOutcome_ACK_OUTCOME_DUPLICATE
	default:
		return enrichv1.AckOutcome_ACK_OUTCOME_STALE
	}
}

func ackMsg(l store.LeaseRef, o enrichv1.AckOutcome, msg string) *enrichv1.ConnectResponse {
	return &enrichv1.ConnectResponse{Msg: &enrichv1.ConnectResponse_Ack{Ack: &enrichv1.Ack{
		Lease: &enrichv1.LeaseRef{ItemId: l.ItemID, Token: l.Token}, Outcome: o, Message: msg}}}
}

// cancelLease tells the holder of a lease, if connected, to stop its runner.
func (s *Server) cancelLease(h store.LeaseHolder, reason string) {
	sess := s.sessions.get(h.SessionID)
	if sess == nil {
		sess = s.sessions.agent(h.AgentID)
	}
	if sess == nil {
		return
	}
	sess.release(h.ItemID, h.Token)
	sess.send(cancelMsg(h.LeaseRef, reason))
	s.metrics.leasesCancelled.Inc()
}
