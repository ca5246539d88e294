// Package config loads the coordinator's configuration.
//
// Precedence, highest first: command-line flags > environment (ENRICH_*) >
// the YAML file > built-in defaults. Every key in the file is optional, so
// an empty file, or none, runs the three built-in instance types. This
// package applies the last three layers; the binary applies its flags on top
// of the loaded Config and calls Validate again.
//
// The file is decoded by walking the YAML node tree against the Go structs,
// rather than with yaml.Decoder.KnownFields, so that an unknown key or a bad
// value is reported with its file, line and full key path
// ("enrich.yaml:7: resource_allocation.entities.max_concurent: unknown key").
// Walking the tree also lets a block for a built-in instance type override
// only the fields it names.
package config
