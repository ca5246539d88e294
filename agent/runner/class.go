package runner

// Class says what a failed run means for the entity and for the agent. The
// coordinator only learns Retryable; the agent reads the class to decide how
// to behave: back off, stop taking leases, or carry on.
//
//	class                 retryable  what the agent should do
//	ClassTransient        yes        nothing special: the coordinator retries with backoff
//	ClassRateLimited      yes        slow down: fewer concurrent runs, wait before the next start
//	ClassInvalidOutput    yes        nothing special: a new attempt may answer better
//	ClassLimitReached     yes        nothing special: max_turns or the per-run budget ran out
//	ClassPermanent        no         nothing special: this entity cannot succeed as it is
//	ClassAgentUnhealthy   no         stop taking leases: every run on this host would fail the same way
//
// ClassAgentUnhealthy failures are reported as not retryable for the entity
// only because the agent cannot know better; an operator who fixes the host
// (API key, binary, MCP configuration) can `enrichctl retry` the batch.
type Class int

const (
	// ClassUnspecified is the zero value: the class follows Retryable
	// (ClassTransient or ClassPermanent). Errors built before classes
	// existed keep their meaning.
	ClassUnspecified Class = iota
	// ClassTransient: a crash, a non-zero exit, an API error, a timeout or
	// a cancellation. Retrying the same entity can help.
	ClassTransient
	// ClassRateLimited: the model API refused for load (HTTP 429 or 529,
	// "overloaded", a rate_limit_event). Retryable, and the agent should
	// slow down rather than start the next run at once. RetryAfter may
	// carry the wait the API asked for.
	ClassRateLimited
	// ClassInvalidOutput: the run finished but its answer held no dossier,
	// or a dossier that failed the schema or the attribution checks even
	// after the repair turn, or more output than the runner accepts.
	ClassInvalidOutput
	// ClassLimitReached: the run stopped at its max_turns or its
	// max_budget_usd before answering. Retryable up to the entity's retry
	// budget; a run that always needs more turns needs a bigger limit.
	ClassLimitReached
	// ClassPermanent: this entity cannot succeed with this lease (unknown
	// schema or prompt, an entity the prompt cannot render, exit 64/65 from
	// an exec command). Not retryable.
	ClassPermanent
	// ClassAgentUnhealthy: the host is misconfigured (invalid API key, the
	// runner binary missing, a bad or incomplete MCP configuration, a
	// secret missing from the environment). Not retryable here, and the
	// agent should stop taking leases instead of burning the batch.
	ClassAgentUnhealthy
)

var classNames = [...]string{"unspecified", "transient", "rate_limited", "invalid_output", "limit_reached", "permanent", "agent_unhealthy"}

func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return "unknown"
	}
	return classNames[c]
}

// Retryable reports whether another attempt at the same entity can succeed.
func (c Class) Retryable() bool {
	switch c {
	case ClassPermanent, ClassAgentUnhealthy:
		return false
	}
	return true
}

// Kind returns the error's class, derived from Retryable when none was set.
func (e *Error) Kind() Class {
	if e.Class != ClassUnspecified {
		return e.Class
	}
	if e.Retryable {
		return ClassTransient
	}
	return ClassPermanent
}

// SlowDown reports whether the agent should reduce its pace.
func (e *Error) SlowDown() bool { return e.Kind() == ClassRateLimited }

// Unhealthy reports whether the agent should stop taking leases.
func (e *Error) Unhealthy() bool { return e.Kind() == ClassAgentUnhealthy }

// classified builds an *Error whose Retryable agrees with its class.
func classified(c Class, msg string) *Error {
	return &Error{Class: c, Retryable: c.Retryable(), Message: msg}
}
