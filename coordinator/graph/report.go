package graph

// Report is the graph section of a batch report.
type Report struct {
	// Target is "neo4j" (written to a server) or "files" (graph.cypher and JSON Lines).
	Target   string   `json:"target"`
	URI      string   `json:"uri,omitempty"` // without credentials
	Database string   `json:"database,omitempty"`
	Files    []string `json:"files,omitempty"`
	Nodes    int      `json:"nodes"`
	Rels     int      `json:"relationships"`
	Sources  int      `json:"sources"`
	// Counters add up the servers' write counters; all zero when the batch was already written.
	Counters     Counters `json:"counters"`
	Transactions int      `json:"transactions"`
	// Retries counts chunks that failed and were tried again.
	Retries int `json:"retries"`
	// Unverified lists relationship targets that are not enriched entities.
	Unverified []Target   `json:"unverified_targets"`
	Skipped    []Skipped  `json:"skipped_relationships"`
	Unlabelled []string   `json:"unlabelled_entity_types,omitempty"`
	Validation Validation `json:"validation"`
	Error      string     `json:"error,omitempty"`
}

// Counters are a write's counters from the result summaries.
type Counters struct {
	NodesCreated         int `json:"nodes_created"`
	NodesDeleted         int `json:"nodes_deleted"`
	RelationshipsCreated int `json:"relationships_created"`
	RelationshipsDeleted int `json:"relationships_deleted"`
	PropertiesSet        int `json:"properties_set"`
	LabelsAdded          int `json:"labels_added"`
	LabelsRemoved        int `json:"labels_removed"`
}

// Zero reports whether the write changed nothing.
func (c Counters) Zero() bool { return c == Counters{} }

func (c *Counters) add(o Counters) {
	c.NodesCreated += o.NodesCreated
	c.NodesDeleted += o.NodesDeleted
	c.RelationshipsCreated += o.RelationshipsCreated
	c.RelationshipsDeleted += o.RelationshipsDeleted
	c.PropertiesSet += o.PropertiesSet
	c.LabelsAdded += o.LabelsAdded
	c.LabelsRemoved += o.LabelsRemoved
}

// Target is a relationship target that is not an enriched entity.
type Target struct {
	ID string `json:"id"`
	// Action: "stub" (an unverified node stands in for it), "reported" (the relationships to it
	// were left out), or "not_checked" (files only: whether the graph has it is known at load).
	Action string `json:"action"`
	// From lists "<entity id> <TYPE>" for each relationship that points at it.
	From []string `json:"from"`
}

// Validation is what the graph held after writing.
type Validation struct {
	Checked       bool     `json:"checked"`
	OK            bool     `json:"ok"`
	NodesExpected int      `json:"nodes_expected"`
	NodesFound    int      `json:"nodes_found"`
	RelsExpected  int      `json:"relationships_expected"`
	RelsFound     int      `json:"relationships_found"`
	SourcesFound  int      `json:"sources_found"`
	Problems      []string `json:"problems"`
}
