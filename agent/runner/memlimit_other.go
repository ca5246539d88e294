//go:build !linux

package runner

import "errors"

func setMemoryLimit(int, int64) error {
	return errors.New("memory limits are enforced on Linux only")
}

// MemoryLimitEnforced reports whether this platform applies memory limits to runner processes.
const MemoryLimitEnforced = false
