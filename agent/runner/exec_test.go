package runner_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sportsintel/enrich/agent/runner"
	"github.com/sportsintel/enrich/schemas"
)

type execBundle struct {
	dir  string
	exec *runner.Exec
}

// setupExec writes script to a fresh work directory and returns an Exec that runs it with sh.
// Running "sh FILE" instead of FILE avoids ETXTBSY when a parallel test forks while the file is
// still open for writing.
func setupExec(t *testing.T, script string) *execBundle {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "run.sh")
	require.NoError(t, os.WriteFile(path, []byte(script), 0o644))
	return &execBundle{dir: dir, exec: &runner.Exec{Command: "sh " + path, WorkDir: dir, Grace: 200 * time.Millisecond}}
}

func requireRunError(t *testing.T, err error) *runner.Error {
	t.Helper()
	var re *runner.Error
	require.ErrorAs(t, err, &re)
	require.Equal(t, "exec", re.Metrics.GetRunner())
	return re
}

func TestExecSuccess(t *testing.T) {
	t.Parallel()
	b := setupExec(t, `set -eu
prompt=$(cat)
case "$prompt" in
*"Testville Rovers FC"*) ;;
*) echo "the prompt does not name the entity" >&2; exit 70 ;;
esac
[ "$ENRICH_ENTITY_ID" = club-testville ] || { echo "ENRICH_ENTITY_ID=$ENRICH_ENTITY_ID" >&2; exit 71; }
[ "$ENRICH_SCHEMA" = entity_dossier ] || { echo "ENRICH_SCHEMA=$ENRICH_SCHEMA" >&2; exit 72; }
[ -s "$ENRICH_SCHEMA_PATH" ] || { echo "no schema file at $ENRICH_SCHEMA_PATH" >&2; exit 73; }
case "$ENRICH_ENTITY_JSON" in
*'"club-testville"'*) ;;
*) echo "ENRICH_ENTITY_JSON=$ENRICH_ENTITY_JSON" >&2; exit 74 ;;
esac
[ "$ENRICH_LEASE" = 42.7 ] || { echo "ENRICH_LEASE=$ENRICH_LEASE" >&2; exit 75; }
[ "$EXTRA_VAR" = from-env ] || { echo "EXTRA_VAR=$EXTRA_VAR" >&2; exit 76; }
echo "I researched the club. Here is the dossier:"
echo '~~~json'
cat dossier.json
echo
echo '~~~'
`)
	b.exec.Env = []string{"EXTRA_VAR=from-env"}
	lease := testLease()
	doc, err := runner.OfflineDossier(lease.GetEntity(), lease.GetInstanceType(), lease.GetSchema(), time.Now())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(b.dir, "dossier.json"), doc, 0o644))

	out, err := b.exec.Run(t.Context(), lease)
	require.NoError(t, err)
	require.Equal(t, string(bytes.TrimSpace(doc)), string(out.Dossier))
	require.Equal(t, "exec", out.Metrics.GetRunner())
	require.Positive(t, out.Metrics.GetDuration().AsDuration())

	raw, err := schemas.Raw(schemas.EntityDossier)
	require.NoError(t, err)
	written, err := os.ReadFile(filepath.Join(b.dir, schemas.EntityDossier+".json"))
	require.NoError(t, err)
	require.Equal(t, raw, written, "ENRICH_SCHEMA_PATH must hold the schema text")
}

func TestExecFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		script    string
		retryable bool
		message   []string
		stderr    string
	}{
		{
			name:      "exit 65 is permanent",
			script:    "echo 'the entity record is unusable' >&2\nexit 65\n",
			retryable: false,
			message:   []string{"status 65", "the entity record is unusable"},
			stderr:    "the entity record is unusable",
		},
		{
			name:      "exit 64 is permanent",
			script:    "exit 64\n",
			retryable: false,
			message:   []string{"status 64"},
		},
		{
			name:      "exit 1 is retryable and keeps stderr",
			script:    "echo 'starting research' >&2\necho 'upstream rate limit hit' >&2\nexit 1\n",
			retryable: true,
			message:   []string{"status 1", "upstream rate limit hit"},
			stderr:    "starting research\nupstream rate limit hit\n",
		},
		{
			name:      "garbage on stdout",
			script:    "echo 'I am sorry, I cannot help with that.'\n",
			retryable: true,
			message:   []string{"no JSON", "I am sorry"},
		},
		{
			name:      "JSON that fails the schema",
			script:    `echo '{"entity_id": "club-testville"}'` + "\n",
			retryable: true,
			message:   []string{"schema", schemas.EntityDossier},
		},
		{
			name: "stdout over MaxOutput",
			script: `i=0
while [ $i -lt 100 ]; do echo '{"padding": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}'; i=$((i+1)); done
`,
			retryable: true,
			message:   []string{"more than 1024 bytes"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupExec(t, tc.script)
			b.exec.MaxOutput = 1024
			out, err := b.exec.Run(t.Context(), testLease())
			require.Nil(t, out)
			re := requireRunError(t, err)
			require.Equal(t, tc.retryable, re.Retryable, "message: %s", re.Message)
			for _, m := range tc.message {
				require.Contains(t, re.Message, m)
			}
			if tc.stderr != "" {
				require.Contains(t, re.StderrTail, tc.stderr)
			}
		})
	}
}

func TestExecStderrTailIsBounded(t *testing.T) {
	t.Parallel()
	// 2000 lines of 40 bytes: 80,000 bytes, far over the 8 KiB tail.
	b := setupExec(t, `i=0
while [ $i -lt 2000 ]; do printf 'line %035d\n' $i >&2; i=$((i+1)); done
exit 3
`)
	_, err := b.exec.Run(t.Context(), testLease())
	re := requireRunError(t, err)
	require.True(t, re.Retryable)
	require.LessOrEqual(t, len(re.StderrTail), 8<<10)
	require.True(t, strings.HasSuffix(re.StderrTail, "line 00000000000000000000000000000001999\n"), "tail ends %q", re.StderrTail[max(0, len(re.StderrTail)-60):])
	require.NotContains(t, re.StderrTail, "line 00000000000000000000000000000000000\n")
	require.Contains(t, re.Message, "status 3: line 00000000000000000000000000000001999")
}

func TestExecLeaseErrorsArePermanent(t *testing.T) {
	t.Parallel()
	b := setupExec(t, "echo should-not-run > ran\n")

	lease := testLease()
	lease.Schema = "club_dossier"
	_, err := b.exec.Run(t.Context(), lease)
	var re *runner.Error
	require.ErrorAs(t, err, &re)
	require.False(t, re.Retryable)
	require.Contains(t, re.Message, "unknown schema")

	lease = testLease()
	lease.Prompt = "no-such-prompt"
	_, err = b.exec.Run(t.Context(), lease)
	require.ErrorAs(t, err, &re)
	require.False(t, re.Retryable)
	require.Contains(t, re.Message, "render prompt")

	require.NoFileExists(t, filepath.Join(b.dir, "ran"))
}

// processGone reports whether pid has exited. A killed orphan is reparented to PID 1, which in
// some containers never reaps it, so a zombie counts as gone.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return os.IsNotExist(err)
	}
	// Format: "pid (comm) S ..."; comm may hold spaces, so look after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// startBackgroundChild runs script (which must write its background child's pid to child.pid) and
// returns the child's pid, a cancel function, and a channel with Run's result.
func startBackgroundChild(t *testing.T, b *execBundle) (int, context.CancelCauseFunc, <-chan error, <-chan time.Time) {
	t.Helper()
	ctx, cancel := context.WithCancelCause(t.Context())
	t.Cleanup(func() { cancel(nil) })
	done := make(chan error, 1)
	finished := make(chan time.Time, 1)
	go func() {
		_, err := b.exec.Run(ctx, testLease())
		finished <- time.Now()
		done <- err
	}()
	pidFile := filepath.Join(b.dir, "child.pid")
	var pid int
	require.Eventually(t, func() bool {
		raw, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(raw)))
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "the script never wrote child.pid")
	require.False(t, processGone(pid), "the background child should be running")
	return pid, cancel, done, finished
}

const backgroundChild = `sleep 300 &
echo $! > child.pid.tmp
mv child.pid.tmp child.pid
wait
`

func TestExecCancelKillsProcessGroupAfterGrace(t *testing.T) {
	t.Parallel()
	// The shell ignores SIGTERM, and so does the child it starts afterwards (an ignored signal
	// stays ignored across exec): only the SIGKILL after Grace can end them.
	b := setupExec(t, "trap '' TERM\n"+backgroundChild)
	pid, cancel, done, finished := startBackgroundChild(t, b)

	cancelled := time.Now()
	cancel(errors.New("lease revoked"))
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancellation")
	}
	elapsed := (<-finished).Sub(cancelled)
	require.GreaterOrEqual(t, elapsed, b.exec.Grace, "SIGKILL must wait for the grace period")

	re := requireRunError(t, err)
	require.True(t, re.Retryable)
	require.Contains(t, re.Message, "cancelled")
	require.Contains(t, re.Message, "lease revoked")
	require.Eventually(t, func() bool { return processGone(pid) }, 3*time.Second, 10*time.Millisecond,
		"background child %d outlived its lease", pid)
}

func TestExecCancelSendsSIGTERMToTheGroup(t *testing.T) {
	t.Parallel()
	b := setupExec(t, "trap 'echo got TERM >&2; exit 0' TERM\n"+backgroundChild)
	b.exec.Grace = time.Minute // a SIGKILL would come far too late: SIGTERM alone must end the run
	pid, cancel, done, _ := startBackgroundChild(t, b)

	cancel(errors.New("agent shutting down"))
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of SIGTERM")
	}
	re := requireRunError(t, err)
	require.True(t, re.Retryable)
	require.Contains(t, re.Message, "agent shutting down")
	require.Contains(t, re.StderrTail, "got TERM")
	require.Eventually(t, func() bool { return processGone(pid) }, 3*time.Second, 10*time.Millisecond,
		"background child %d outlived its lease", pid)
}

func TestExecKillsLeftoverChildrenOnSuccess(t *testing.T) {
	t.Parallel()
	// The command prints its dossier and exits, leaving a child behind that keeps stdout open.
	b := setupExec(t, `sleep 300 &
echo $! > child.pid
cat dossier.json
`)
	lease := testLease()
	doc, err := runner.OfflineDossier(lease.GetEntity(), lease.GetInstanceType(), lease.GetSchema(), time.Now())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(b.dir, "dossier.json"), doc, 0o644))

	start := time.Now()
	out, err := b.exec.Run(t.Context(), lease)
	require.NoError(t, err)
	require.Less(t, time.Since(start), 10*time.Second)
	require.JSONEq(t, string(doc), string(out.Dossier))

	raw, err := os.ReadFile(filepath.Join(b.dir, "child.pid"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return processGone(pid) }, 3*time.Second, 10*time.Millisecond,
		"background child %d outlived its lease", pid)
}
