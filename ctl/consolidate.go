package ctl

import (
	"cmp"
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	enrichv1 "github.com/sportsintel/enrich/gen/enrich/v1"
)

// neo4jPasswordEnv holds the password of consolidate --neo4j. There is deliberately no flag
// for it: a flag value sits in shell history and in every process listing.
const neo4jPasswordEnv = "NEO4J_PASSWORD"

type consolidateConfig struct {
	Batch string
	PDF   bool
	// Neo4j, when set, is a server to write the batch's graph into instead of the
	// coordinator's own; user and database go with it, the password comes from the environment.
	Neo4j         string
	Neo4jUser     string
	Neo4jDatabase string
	Neo4jPassword string
}

func (c *cli) consolidateCommand() *cobra.Command {
	var cfg consolidateConfig
	cmd := &cobra.Command{
		Use:   "consolidate BATCH",
		Short: "(Re)write a batch's dossiers, report and knowledge graph",
		Long: `Rewrites a batch's dossiers and report and writes its knowledge graph again
(idempotent: what is already in the graph is left as it is).

With --neo4j URI the graph goes into that server instead of the coordinator's own
(or its graph.cypher files), with the coordinator's labels: the coordinator connects
to it, so the address must be reachable from there. The password is read from the
environment variable NEO4J_PASSWORD (none: no authentication).`,
		Example: `  NEO4J_PASSWORD=... enrichctl consolidate 20260108-120000-1a2b3c --neo4j bolt://graph.internal:7687 --neo4j-user loader`,
		Args:    exactArgs("BATCH"),
		RunE: c.action(func(cmd *cobra.Command, args []string) error {
			cfg.Batch = args[0]
			if cfg.Neo4j == "" && (cmd.Flags().Changed("neo4j-user") || cmd.Flags().Changed("neo4j-database")) {
				return usageErrorf("--neo4j-user and --neo4j-database go with --neo4j URI")
			}
			if cfg.Neo4j != "" {
				cfg.Neo4jPassword = os.Getenv(neo4jPasswordEnv)
			}
			return c.withClient(func(client enrichv1.ControlServiceClient) error {
				ctx, cancel := c.unary()
				defer cancel()
				return consolidate(ctx, client, cfg, c.printer())
			})
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&cfg.PDF, "pdf", false, "also render each dossier and the report to PDF")
	f.StringVar(&cfg.Neo4j, "neo4j", "", "write the graph into this Neo4j server (bolt://, neo4j://, +s, +ssc); password from env "+neo4jPasswordEnv)
	f.StringVar(&cfg.Neo4jUser, "neo4j-user", cmp.Or(os.Getenv("NEO4J_USER"), "neo4j"), "user of --neo4j (env NEO4J_USER)")
	f.StringVar(&cfg.Neo4jDatabase, "neo4j-database", "", "database of --neo4j (default: the server's)")
	return cmd
}

func consolidate(ctx context.Context, client enrichv1.ControlServiceClient, cfg consolidateConfig, p *printer) error {
	req := &enrichv1.ConsolidateBatchRequest{BatchId: cfg.Batch, Pdf: cfg.PDF}
	if cfg.Neo4j != "" {
		req.Neo4J = &enrichv1.Neo4JTarget{Uri: cfg.Neo4j, User: cfg.Neo4jUser, Password: cfg.Neo4jPassword, Database: cfg.Neo4jDatabase}
	}
	resp, err := client.ConsolidateBatch(ctx, req)
	if err != nil {
		return err
	}
	if p.json {
		return p.printJSON(resp)
	}
	fmt.Fprintf(p.out, "output dir  %s\n", resp.GetOutputDir())
	_, err = fmt.Fprintf(p.out, "dossiers    %d\n", resp.GetDossiers())
	if err == nil && resp.GetPdfs() > 0 {
		_, err = fmt.Fprintf(p.out, "pdfs        %d\n", resp.GetPdfs())
	}
	if err == nil && cfg.Neo4j != "" {
		_, err = fmt.Fprintf(p.out, "graph       written to %s (see report.json)\n", cfg.Neo4j)
	}
	return err
}
