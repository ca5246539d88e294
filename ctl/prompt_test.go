package ctl

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPromptRender(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "e.jsonl")
	require.NoError(t, os.WriteFile(file, []byte(
		`{"id":"club-a","type":"Club","name":"Alpha FC"}`+"\n"+
			`{"id":"person-b","type":"Executive","name":"Beta Person","organisation":"Alpha FC"}`+"\n"), 0o644))

	var out bytes.Buffer
	require.NoError(t, promptRender(promptRenderConfig{EntityFile: file, EntityID: "person-b"}, &out, true))
	var got map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	require.Equal(t, "persons", got["instance_type"])
	require.Equal(t, "poi_dossier", got["schema"])
	require.Contains(t, got["prompt"], `"name": "Beta Person"`)
	require.Contains(t, got["prompt"], "**`relationship_pathways`**")

	out.Reset()
	require.NoError(t, promptRender(promptRenderConfig{EntityFile: file, EntityID: "club-a", Type: "3", Attempt: 2}, &out, false))
	require.Contains(t, out.String(), "Set `instance_type` to `leagues`", "--type overrides the entity's own mapping")
	require.Contains(t, out.String(), "This is attempt 2")

	err := promptRender(promptRenderConfig{EntityFile: file, EntityID: "nope"}, &out, false)
	require.ErrorContains(t, err, `no entity with id "nope"`)
	err = promptRender(promptRenderConfig{EntityFile: file, EntityID: "club-a", Type: "venues"}, &out, false)
	require.ErrorContains(t, err, `--type "venues": unknown instance type`)
}
