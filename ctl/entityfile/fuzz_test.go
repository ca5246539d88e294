package entityfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// fuzzNames selects the parser: by extension, or by sniffing.
var fuzzNames = []string{"f.jsonl", "f.csv", "f.txt"}

func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "entities.*"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seed files in testdata: %v", err)
	}
	for _, path := range seeds {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		for i := range fuzzNames {
			f.Add(uint8(i), data)
		}
	}
	f.Add(uint8(0), []byte(`{"id":"a","type":"Club","name":"A","attributes":{"x":[1,{"y":null}]}}`))
	f.Add(uint8(1), []byte("id,type,name\n\"a,Club,A\n"))
	f.Add(uint8(2), []byte("\xef\xbb\xbf[1]"))

	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		name := fuzzNames[int(which)%len(fuzzNames)]
		got, err := Parse(name, bytes.NewReader(data))
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error is %T, want *Error: %v", err, err)
			}
			if got != nil || len(perr.Problems) == 0 || len(perr.Problems) > MaxProblems {
				t.Fatalf("bad error shape: %d entities, %d problems", len(got), len(perr.Problems))
			}
			for _, line := range strings.Split(perr.Error(), "\n") {
				if !strings.HasPrefix(line, name) && !strings.HasPrefix(line, "... and ") {
					t.Fatalf("problem line %q does not start with the file name", line)
				}
			}
			return
		}
		if len(got) == 0 {
			t.Fatal("no entities and no error")
		}
		seen := make(map[string]bool)
		for _, e := range got {
			if strings.TrimSpace(e.Id) == "" || strings.TrimSpace(e.Type) == "" || strings.TrimSpace(e.Name) == "" {
				t.Fatalf("entity with empty required field: %v", e)
			}
			if checkID(e.Id) != "" || seen[e.Id] {
				t.Fatalf("bad or duplicate id accepted: %q", e.Id)
			}
			seen[e.Id] = true
			if e.SourceLine < 1 {
				t.Fatalf("entity without a line: %v", e)
			}
			// Everything returned must be sendable over gRPC.
			if _, err := proto.Marshal(e); err != nil {
				t.Fatalf("entity does not marshal: %v", err)
			}
		}
	})
}
