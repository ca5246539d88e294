package agent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

func resultMsg(item int64, token int64, dossier string) *enrichv1.ConnectRequest {
	return &enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Result{Result: &enrichv1.Result{
		Lease: &enrichv1.LeaseRef{ItemId: item, Token: token}, DossierJson: []byte(dossier),
		Metrics: &enrichv1.RunMetrics{Runner: "offline"},
	}}}
}

func failureMsg(item int64, token int64, message string) *enrichv1.ConnectRequest {
	return &enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Failure{Failure: &enrichv1.Failure{
		Lease: &enrichv1.LeaseRef{ItemId: item, Token: token}, Retryable: true, Message: message,
	}}}
}

func requireMsgs(t *testing.T, want, got []*enrichv1.ConnectRequest) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.True(t, proto.Equal(want[i], got[i]), "message %d:\nwant %v\n got %v", i, want[i], got[i])
	}
}

func TestSpoolSurvivesReopen(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "spool")
	sp, err := openSpool(dir)
	require.NoError(t, err)
	require.Equal(t, dir, sp.String())
	res, fail := resultMsg(1, 3, `{"entity_id":"a"}`), failureMsg(2, 5, "exit 1")
	require.NoError(t, sp.put(res))
	require.NoError(t, sp.put(fail))
	require.FileExists(t, filepath.Join(dir, "1-3.pb"))
	require.FileExists(t, filepath.Join(dir, "2-5.pb"))
	require.NoFileExists(t, filepath.Join(dir, "1-3.pb.tmp"))

	reopened, err := openSpool(dir)
	require.NoError(t, err)
	require.Equal(t, 2, reopened.len())
	requireMsgs(t, []*enrichv1.ConnectRequest{res, fail}, reopened.unsent(1))
}

func TestSpoolAckRemovesFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sp, err := openSpool(dir)
	require.NoError(t, err)
	keep, gone := resultMsg(1, 1, `{}`), resultMsg(2, 1, `{}`)
	require.NoError(t, sp.put(keep))
	require.NoError(t, sp.put(gone))

	sp.ack(&enrichv1.LeaseRef{ItemId: 2, Token: 1})
	require.Equal(t, 1, sp.len())
	require.NoFileExists(t, filepath.Join(dir, "2-1.pb"))
	require.FileExists(t, filepath.Join(dir, "1-1.pb"))
	requireMsgs(t, []*enrichv1.ConnectRequest{keep}, sp.unsent(1))

	// An ack for another token of the same item leaves the spooled result alone.
	sp.ack(&enrichv1.LeaseRef{ItemId: 1, Token: 2})
	require.Equal(t, 1, sp.len())
	require.FileExists(t, filepath.Join(dir, "1-1.pb"))

	reopened, err := openSpool(dir)
	require.NoError(t, err)
	requireMsgs(t, []*enrichv1.ConnectRequest{keep}, reopened.unsent(1))
}

func TestSpoolCorruptFilesAreSetAside(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := resultMsg(7, 1, `{"ok":true}`)
	raw, err := proto.Marshal(good)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "7-1.pb"), raw, 0o600))
	// Not protobuf at all.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "8-1.pb"), []byte{0xff, 0xff, 0xff, 0xff}, 0o600))
	// Valid protobuf, but not a result or failure: nothing to send.
	hb, err := proto.Marshal(&enrichv1.ConnectRequest{Msg: &enrichv1.ConnectRequest_Heartbeat{Heartbeat: &enrichv1.Heartbeat{}}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "9-1.pb"), hb, 0o600))

	sp, err := openSpool(dir)
	require.NoError(t, err)
	require.Equal(t, 1, sp.len())
	requireMsgs(t, []*enrichv1.ConnectRequest{good}, sp.unsent(1))
	for _, name := range []string{"8-1.pb", "9-1.pb"} {
		require.NoFileExists(t, filepath.Join(dir, name))
		require.FileExists(t, filepath.Join(dir, name+".corrupt"))
	}
	corrupt, err := os.ReadFile(filepath.Join(dir, "8-1.pb.corrupt"))
	require.NoError(t, err)
	require.Equal(t, []byte{0xff, 0xff, 0xff, 0xff}, corrupt, "the bytes are kept for a person to look at")

	// Set-aside files stay out on the next open too.
	again, err := openSpool(dir)
	require.NoError(t, err)
	require.Equal(t, 1, again.len())
}

func TestSpoolUnsentOncePerGeneration(t *testing.T) {
	t.Parallel()
	for name, dir := range map[string]func(t *testing.T) string{
		"disk":   func(t *testing.T) string { return t.TempDir() },
		"memory": func(*testing.T) string { return "" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sp, err := openSpool(dir(t))
			require.NoError(t, err)
			a, b, c := resultMsg(1, 1, `{"a":1}`), failureMsg(2, 1, "boom"), resultMsg(3, 1, `{"c":3}`)
			require.NoError(t, sp.put(b))
			require.NoError(t, sp.put(a))

			requireMsgs(t, []*enrichv1.ConnectRequest{a, b}, sp.unsent(1))
			require.Empty(t, sp.unsent(1), "already sent in session 1")

			require.NoError(t, sp.put(c))
			requireMsgs(t, []*enrichv1.ConnectRequest{c}, sp.unsent(1))
			require.Empty(t, sp.unsent(1))

			// A new session resends everything not acknowledged.
			sp.ack(&enrichv1.LeaseRef{ItemId: 2, Token: 1})
			requireMsgs(t, []*enrichv1.ConnectRequest{a, c}, sp.unsent(2))
			require.Empty(t, sp.unsent(2))
			require.Equal(t, 2, sp.len())
		})
	}
}

func TestSpoolInMemory(t *testing.T) {
	t.Parallel()
	cwd, err := os.Getwd()
	require.NoError(t, err)
	before, err := os.ReadDir(cwd)
	require.NoError(t, err)

	sp, err := openSpool("")
	require.NoError(t, err)
	require.Equal(t, "memory", sp.String())
	msg := resultMsg(4, 2, `{"x":1}`)
	require.NoError(t, sp.put(msg))
	require.Equal(t, 1, sp.len())
	requireMsgs(t, []*enrichv1.ConnectRequest{msg}, sp.unsent(1))
	sp.ack(&enrichv1.LeaseRef{ItemId: 4, Token: 2})
	require.Zero(t, sp.len())
	require.Empty(t, sp.unsent(2))

	after, err := os.ReadDir(cwd)
	require.NoError(t, err)
	require.Len(t, after, len(before), "an in-memory spool writes no files")
}

func TestSpoolPutFailsWhenDirectoryIsGone(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "spool")
	sp, err := openSpool(dir)
	require.NoError(t, err)
	require.NoError(t, os.RemoveAll(dir))

	err = sp.put(resultMsg(1, 1, `{}`))
	require.ErrorContains(t, err, "spool result 1-1")
	require.Zero(t, sp.len(), "a result that was not written is not spooled")
}
