// Package ctl is enrichctl, the operator CLI over the coordinator's
// ControlService.
//
// Each verb lives in its own file: a config struct for its flags, a cobra
// command whose action only parses and dials, and a plain function taking
// a context, a ControlServiceClient and a printer, which tests call
// directly. Errors travel up as values; Main alone turns them into text on
// stderr and an exit code (see exit.go).
package ctl

import (
	"cmp"
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/cobra"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// Defaults of the global flags.
const (
	AddrDefault    = "127.0.0.1:7400"
	TimeoutDefault = 30 * time.Second
)

// globalConfig holds the flags every verb shares.
type globalConfig struct {
	Addr    string
	Output  string // "text" or "json"
	Timeout time.Duration
	// Security is TLS and the bearer token (dial.go).
	Security securityConfig
}

// cli is one run of enrichctl.
type cli struct {
	ctx            context.Context
	global         globalConfig
	stdout, stderr io.Writer
	// ran is set when a verb's action starts: any error before that came
	// from cobra (flags, arguments, unknown verb) and is a usage error.
	ran bool
}

// Main runs enrichctl with args (without the program name) and returns the
// process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c := &cli{ctx: ctx, stdout: stdout, stderr: stderr}
	root := c.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err != nil && !c.ran {
		var ee *ExitError
		if !errors.As(err, &ee) {
			err = &ExitError{Code: ExitUsage, Err: err}
		}
	}
	return reportError(stderr, err, c.global)
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "enrichctl",
		Short: "Prepare, launch, watch, retry and consolidate enrichment batches",
		Long: `enrichctl drives the enrichment coordinator over gRPC.

Exit codes: 0 ok, 1 error, 2 usage error, 3 the batch completed with
failures, 4 the batch was cancelled, 5 the batch stopped at its budget.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			switch c.global.Output {
			case "text", "json":
				return nil
			}
			return usageErrorf("--output must be text or json, not %q", c.global.Output)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &ExitError{Code: ExitUsage, Err: err}
	})
	f := root.PersistentFlags()
	f.StringVar(&c.global.Addr, "addr", cmp.Or(os.Getenv("ENRICH_ADDR"), AddrDefault), "coordinator gRPC address (env ENRICH_ADDR)")
	f.StringVarP(&c.global.Output, "output", "o", "text", "output format: text or json")
	f.DurationVar(&c.global.Timeout, "timeout", TimeoutDefault, "deadline of each request (not of watching)")
	c.securityFlags(f)

	root.AddCommand(
		c.prepareCommand(),
		c.launchCommand(),
		c.statusCommand(),
		c.batchesCommand(),
		c.agentsCommand(),
		c.cancelCommand(),
		c.retryCommand(),
		c.consolidateCommand(),
		c.drainCommand(),
		c.dossierCommand(),
		c.watchCommand(),
		c.promptCommand(),
		c.certsCommand(),
		c.tokensCommand(),
		c.scheduleCommand(),
		c.entityCommand(),
	)
	return root
}

// action wraps a verb's body so Main can tell its errors from cobra's.
func (c *cli) action(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c.ran = true
		return fn(cmd, args)
	}
}

// withClient dials the coordinator for the duration of fn.
func (c *cli) withClient(fn func(enrichv1.ControlServiceClient) error) error {
	conn, err := dial(c.global)
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(enrichv1.NewControlServiceClient(conn))
}

// unary bounds a verb made of request/response calls by --timeout.
func (c *cli) unary() (context.Context, context.CancelFunc) {
	if c.global.Timeout <= 0 {
		return context.WithCancel(c.ctx)
	}
	return context.WithTimeout(c.ctx, c.global.Timeout)
}

func (c *cli) printer() *printer {
	return &printer{out: c.stdout, errw: c.stderr, json: c.global.Output == "json", now: time.Now}
}

// exactArgs is cobra.ExactArgs with the argument names in the message.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usageErrorf("expected %d argument(s) %v, got %d", len(names), names, len(args))
		}
		return nil
	}
}
