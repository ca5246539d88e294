package ctl

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/sportsintel/enrich/coordinator/config"
	"github.com/sportsintel/enrich/ctl/entityfile"
	"github.com/sportsintel/enrich/prompts"
	"github.com/sportsintel/enrich/schemas"
)

type promptRenderConfig struct {
	EntityFile string
	EntityID   string
	// Type overrides the instance type found from the entity's type.
	Type    string
	Config  string
	Attempt int
}

func (c *cli) promptCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "prompt", Short: "Work with prompt templates without running anything"}
	var cfg promptRenderConfig
	render := &cobra.Command{
		Use:   "render --entity-file FILE --entity ID",
		Short: "Print the prompt an agent would give Claude Code for one entity (dry run: no coordinator, no model)",
		Args:  cobra.NoArgs,
		RunE: c.action(func(_ *cobra.Command, _ []string) error {
			if cfg.EntityFile == "" || cfg.EntityID == "" {
				return usageErrorf("prompt render needs --entity-file and --entity")
			}
			return promptRender(cfg, c.printer().out, c.printer().json)
		}),
	}
	f := render.Flags()
	f.StringVar(&cfg.EntityFile, "entity-file", "", "entity file (.jsonl or .csv), as given to prepare")
	f.StringVar(&cfg.EntityID, "entity", "", "id of the entity to render the prompt for")
	f.StringVar(&cfg.Type, "type", "", "instance type or alias (default: the one serving the entity's type)")
	f.StringVar(&cfg.Config, "config", "", "enrich.yaml giving instance types, schemas and prompts (default: built in)")
	f.IntVar(&cfg.Attempt, "attempt", 1, "attempt number; later attempts add a note about earlier failures")
	cmd.AddCommand(render)
	return cmd
}

// promptRender renders the prompt for one entity of a file, exactly as an agent renders it for a
// lease, so an operator can read what the model will be asked (and what it costs to ask) before
// launching a batch.
func promptRender(cfg promptRenderConfig, out io.Writer, asJSON bool) error {
	conf, err := config.Load(cfg.Config)
	if err != nil {
		return err
	}
	entities, err := entityfile.Read(cfg.EntityFile)
	if err != nil {
		return err
	}
	var found bool
	var data prompts.Data
	for _, e := range entities {
		if e.GetId() == cfg.EntityID {
			data.Entity, found = e, true
			break
		}
	}
	if !found {
		return fmt.Errorf("%s: no entity with id %q", cfg.EntityFile, cfg.EntityID)
	}
	instance := cfg.Type
	if instance != "" {
		name, ok := conf.ResolveInstance(instance)
		if !ok {
			return usageErrorf("--type %q: unknown instance type", instance)
		}
		instance = name
	} else if instance, found = conf.InstanceForEntityType(data.Entity.GetType()); !found {
		return fmt.Errorf("entity %q: no instance type serves entity type %q", cfg.EntityID, data.Entity.GetType())
	}
	ic := conf.ResourceAllocation[instance]
	raw, err := schemas.Raw(ic.Schema)
	if err != nil {
		return err
	}
	data.InstanceType, data.Schema, data.SchemaJSON, data.Attempt = instance, ic.Schema, string(raw), int32(max(cfg.Attempt, 1))
	text, err := prompts.Render(ic.Prompt, data)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"entity_id": cfg.EntityID, "instance_type": instance, "schema": ic.Schema,
			"prompt_template": ic.Prompt, "prompt": text, "prompt_bytes": len(text)})
	}
	_, err = io.WriteString(out, text)
	return err
}
