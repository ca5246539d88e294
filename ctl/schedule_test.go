package ctl

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

func TestScheduleStatusSaysWhatTheLastRunDid(t *testing.T) {
	t.Parallel()
	sc := &enrichv1.Schedule{}
	require.Equal(t, "not run yet", scheduleStatus(sc))
	sc.LastOutcome, sc.LastMessage = enrichv1.ScheduleOutcome_SCHEDULE_OUTCOME_SKIPPED, "batch b1 still running"
	require.Equal(t, "skipped: batch b1 still running", scheduleStatus(sc))
	sc.LastOutcome, sc.LastMessage = enrichv1.ScheduleOutcome_SCHEDULE_OUTCOME_FAILED, "prepare: nothing to enrich"
	sc.Paused = true
	require.Equal(t, "paused; last failed: prepare: nothing to enrich", scheduleStatus(sc))
	sc.FiringSince = timestamppb.New(time.Date(2026, 1, 8, 2, 0, 0, 0, time.UTC))
	require.Equal(t, "preparing since 2026-01-08T02:00:00Z", scheduleStatus(sc))

	sc = &enrichv1.Schedule{Size: 90, BudgetUsd: 12.5, Neo4JSource: &enrichv1.Neo4JSource{EntityTypes: []string{"Club", "Person"},
		MinPriority: enrichv1.Priority_PRIORITY_HIGH, StaleAfter: durationpb.New(30 * 24 * time.Hour)}}
	require.Equal(t, "neo4j types=Club,Person priority>=high stale-after=720h0m0s size=90 budget=$12.50", selectionText(sc))
}

func TestScheduleCreateRefusesBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  scheduleCreateConfig
		want string
	}{
		{scheduleCreateConfig{From: "neo4j"}, "--cron is required"},
		{scheduleCreateConfig{Cron: "@daily", From: "entities.csv"}, "--from neo4j is required"},
		{scheduleCreateConfig{Cron: "@daily", From: "neo4j", StaleAfter: "soon"}, "--stale-after"},
		{scheduleCreateConfig{Cron: "@daily", From: "neo4j", Priority: "urgent"}, "--priority"},
		{scheduleCreateConfig{Cron: "@daily", From: "neo4j", BudgetUSD: -1}, "--budget-usd"},
	} {
		err := tc.cfg.validate()
		require.ErrorContains(t, err, tc.want)
		var ee *ExitError
		require.True(t, errors.As(err, &ee))
		require.Equal(t, ExitUsage, ee.Code)
	}
	cfg := scheduleCreateConfig{Cron: "0 2 * * *", From: "neo4j", Priority: "high", priorityGiven: true, StaleAfter: "30d", Size: 90}
	require.NoError(t, cfg.validate())
	req, err := cfg.request()
	require.NoError(t, err)
	require.Equal(t, enrichv1.Priority_PRIORITY_HIGH, req.GetNeo4JSource().GetMinPriority())
	require.Equal(t, 30*24*time.Hour, req.GetNeo4JSource().GetStaleAfter().AsDuration())
}
