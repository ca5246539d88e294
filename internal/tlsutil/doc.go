// Package tlsutil builds the TLS configurations of the coordinator and its clients: server
// certificates that reload without a restart, optional or required client certificates, client
// configurations for agents and enrichctl, and a development CA with its certificates.
//
// Reloading: a Reloader re-reads its files when asked (SIGHUP) and, at most once per
// CheckInterval, when a handshake finds that a file's size or modification time changed. A
// reload that fails (a half-written key, a certificate that does not match its key) keeps
// serving the previous certificate and reports the error, so a botched rotation never takes the
// coordinator off the air.
package tlsutil
