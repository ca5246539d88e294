package ctl

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

func TestBarRendererFinishes(t *testing.T) {
	t.Parallel()

	var out bytes.Buffer
	r := newBarRenderer(&out, time.Now)
	b := runningBatch()
	require.NoError(t, r.update(b))

	// One type done, one cut short: both bars must end so finish returns.
	b.State = enrichv1.BatchState_BATCH_STATE_CANCELLED
	b.Instances[0] = &enrichv1.InstanceProgress{InstanceType: "entities", Total: 50, Succeeded: 50}
	b.Instances[1] = &enrichv1.InstanceProgress{InstanceType: "leagues", Total: 15, Cancelled: 3, Skipped: 2}
	done := make(chan error, 1)
	go func() { done <- r.finish(b) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("finish did not return: a bar was left running")
	}
	require.Contains(t, out.String(), "cancelled")
	require.Contains(t, out.String(), "50/50")
	require.Contains(t, out.String(), "3/13")
}
