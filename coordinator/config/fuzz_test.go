package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDecodeYAML feeds arbitrary documents to the decoder: it must never panic, every
// problem must name the file and a line, and a document that decodes must validate without
// panicking and decode the same way twice.
func FuzzDecodeYAML(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "enrich.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte("listen: 127.0.0.1:1\nlimits: {max_message_bytes: 2048}\n"))
	f.Add([]byte("resource_allocation:\n  instance_1: {max_concurrent: 3}\n  new: {entity_types: [X]}\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Default()
		err := c.decodeYAML("f.yaml", data)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.yaml") {
					t.Fatalf("problem %q does not name the file", line)
				}
			}
			return
		}
		verr := c.Validate()
		again := Default()
		if err := again.decodeYAML("f.yaml", data); err != nil {
			t.Fatalf("second decode failed: %v", err)
		}
		if (verr == nil) != (again.Validate() == nil) {
			t.Fatal("validation differs between two decodes of one document")
		}
	})
}
