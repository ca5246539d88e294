package coordinator

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sportsintel/enrich/coordinator/store"
	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

var batchStates = map[store.BatchState]enrichv1.BatchState{
	store.BatchPrepared:              enrichv1.BatchState_BATCH_STATE_PREPARED,
	store.BatchRunning:               enrichv1.BatchState_BATCH_STATE_RUNNING,
	store.BatchCompleted:             enrichv1.BatchState_BATCH_STATE_COMPLETED,
	store.BatchCompletedWithFailures: enrichv1.BatchState_BATCH_STATE_COMPLETED_WITH_FAILURES,
	store.BatchCancelled:             enrichv1.BatchState_BATCH_STATE_CANCELLED,
	store.BatchBudgetExhausted:       enrichv1.BatchState_BATCH_STATE_BUDGET_EXHAUSTED,
}

var itemStates = map[store.ItemState]enrichv1.ItemState{
	store.ItemPending:   enrichv1.ItemState_ITEM_STATE_PENDING,
	store.ItemLeased:    enrichv1.ItemState_ITEM_STATE_LEASED,
	store.ItemSucceeded: enrichv1.ItemState_ITEM_STATE_SUCCEEDED,
	store.ItemFailed:    enrichv1.ItemState_ITEM_STATE_FAILED,
	store.ItemCancelled: enrichv1.ItemState_ITEM_STATE_CANCELLED,
	store.ItemSkipped:   enrichv1.ItemState_ITEM_STATE_SKIPPED,
}

func itemStateFromProto(st enrichv1.ItemState) (store.ItemState, bool) {
	for k, v := range itemStates {
		if v == st {
			return k, true
		}
	}
	return "", false
}

func priorityFromProto(p enrichv1.Priority) store.Priority {
	switch p {
	case enrichv1.Priority_PRIORITY_HIGH:
		return store.PriorityHigh
	case enrichv1.Priority_PRIORITY_LOW:
		return store.PriorityLow
	default:
		return store.PriorityNormal
	}
}

func metricsFromProto(m *enrichv1.RunMetrics) store.Metrics {
	return store.Metrics{
		Duration:     m.GetDuration().AsDuration(),
		CostUSD:      m.GetCostUsd(),
		InputTokens:  m.GetInputTokens(),
		OutputTokens: m.GetOutputTokens(),
		Turns:        int(m.GetTurns()),
		SessionID:    m.GetSessionId(),
		Runner:       m.GetRunner(),
	}
}

func metricsToProto(m store.Metrics) *enrichv1.RunMetrics {
	return &enrichv1.RunMetrics{
		Duration:     durationpb.New(m.Duration),
		CostUsd:      m.CostUSD,
		InputTokens:  m.InputTokens,
		OutputTokens: m.OutputTokens,
		Turns:        int32(m.Turns),
		SessionId:    m.SessionID,
		Runner:       m.Runner,
	}
}

func itemToProto(it *store.Item) *enrichv1.Item {
	ent := &enrichv1.Entity{}
	if err := proto.Unmarshal(it.Entity, ent); err != nil {
		ent = &enrichv1.Entity{Id: it.EntityID, Type: it.EntityType, Name: it.Name}
	}
	return &enrichv1.Item{
		ItemId:       it.ID,
		BatchId:      it.BatchID,
		Entity:       ent,
		InstanceType: it.InstanceType,
		State:        itemStates[it.State],
		Attempt:      int32(it.Attempt),
		MaxAttempts:  int32(it.MaxAttempts),
		AgentId:      it.AgentID,
		LastError:    it.LastError,
		StderrTail:   it.StderrTail,
		UpdatedAt:    timestamp(it.UpdatedAt),
	}
}
