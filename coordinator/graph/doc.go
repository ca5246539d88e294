// Package graph writes a consolidated batch into the Neo4j knowledge graph, or, with no server
// configured, into files that load the same graph later (graph.cypher, nodes.jsonl,
// relationships.jsonl).
//
// # Model
//
// Every enriched entity is one node carrying the configured entity label (default Entity, with a
// uniqueness constraint on id) plus the label its entity type maps to in the configuration.
// Dossier relationships become typed relationships between entity nodes; only the configured,
// closed list of types is written and a dossier relationship of any other type is reported.
// Every cited source becomes a node with the source label (unique url) and a SUPPORTS
// relationship to the entity whose dossier cites it.
//
// # Safety
//
// Labels and relationship types are the only names spliced into Cypher text. They come from the
// configuration, are checked there to be plain identifiers, and are backquoted here as well.
// Everything that comes from a dossier (ids, names, summaries, urls) travels as a parameter, or,
// in graph.cypher, as an escaped string literal produced by one function (literal.go).
//
// # Idempotence
//
// Each written row carries a content hash of its properties. A statement MERGEs on the key and
// sets properties only when the stored hash differs, so writing the same batch twice reports zero
// nodes, relationships, properties and labels changed. A stub target created for a missing
// relationship end (missing_target: stub) carries the unverified label until its own dossier is
// written, which removes it.
//
// # Failure and resumption
//
// Statements run in managed write transactions of at most batch_size rows each. A chunk that
// fails with a connectivity or transient error is retried with jittered exponential backoff until
// the configured retry timeout; the chunks already committed are not repeated within a run, and a
// later run (the coordinator's retry or enrichctl consolidate) skips them through the hash check.
// The dossiers are on disk and in the store before the graph is touched, so a failure here never
// loses them.
package graph
