package ctl

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sportsintel/enrich/internal/tlsutil"
)

type certsInitConfig struct {
	Hosts     []string
	AgentName string
	Validity  time.Duration
	Force     bool
}

func (c *cli) certsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "certs", Short: "Development certificates for TLS and mutual TLS"}
	var cfg certsInitConfig
	initCmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Create a development CA, a coordinator certificate and an agent client certificate",
		Long: `Writes into DIR: ca.pem and ca-key.pem (the CA), server.pem and server-key.pem
(SANs: localhost, 127.0.0.1, ::1 and every --host), agent.pem and agent-key.pem (a client
certificate for mutual TLS). Keys are ECDSA P-256, written 0600. Keep ca-key.pem off the
coordinator and agent hosts. For production, use certificates from your own CA.`,
		Args: exactArgs("DIR"),
		RunE: c.action(func(cmd *cobra.Command, args []string) error {
			return certsInit(c.printer(), args[0], cfg)
		}),
	}
	initCmd.Flags().StringSliceVar(&cfg.Hosts, "host", nil, "extra DNS name or IP address of the coordinator (repeatable)")
	initCmd.Flags().StringVar(&cfg.AgentName, "agent-name", "agent", "common name of the agent client certificate")
	initCmd.Flags().DurationVar(&cfg.Validity, "validity", 365*24*time.Hour, "how long the certificates are valid")
	initCmd.Flags().BoolVar(&cfg.Force, "force", false, "replace existing files")
	cmd.AddCommand(initCmd)
	return cmd
}

func certsInit(p *printer, dir string, cfg certsInitConfig) error {
	files, err := tlsutil.GenerateDev(dir, tlsutil.DevOptions{Hosts: cfg.Hosts, AgentName: cfg.AgentName,
		Validity: cfg.Validity, Force: cfg.Force})
	if err != nil {
		return err
	}
	if p.json {
		return printJSONValue(p, map[string]any{"files": files})
	}
	for _, f := range files {
		fmt.Fprintln(p.out, f)
	}
	fmt.Fprintf(p.out, "\ncoordinator: --tls-cert %s --tls-key %s --client-ca %s\n",
		filepath.Join(dir, tlsutil.ServerFile), filepath.Join(dir, tlsutil.ServerKeyFile), filepath.Join(dir, tlsutil.CAFile))
	fmt.Fprintf(p.out, "agent:       --ca %s --cert %s --key %s\n",
		filepath.Join(dir, tlsutil.CAFile), filepath.Join(dir, tlsutil.AgentFile), filepath.Join(dir, tlsutil.AgentKeyFile))
	fmt.Fprintf(p.out, "enrichctl:   --ca %s\n", filepath.Join(dir, tlsutil.CAFile))
	return nil
}
