package runner

import (
	"fmt"
	"syscall"
	"unsafe"
)

// setMemoryLimit caps the data segment (RLIMIT_DATA) of process pid with prlimit(2); children it
// forks later inherit the cap. RLIMIT_DATA rather than RLIMIT_AS: Node.js, which runs Claude
// Code and the npx MCP servers, reserves many gigabytes of address space it never touches, so an
// address-space cap kills it at start while a data cap (private writable memory, Linux 4.7+)
// bounds what it really allocates.
func setMemoryLimit(pid int, limit int64) error {
	rl := syscall.Rlimit{Cur: uint64(limit), Max: uint64(limit)}
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), uintptr(syscall.RLIMIT_DATA),
		uintptr(unsafe.Pointer(&rl)), 0, 0, 0)
	if errno != 0 {
		return fmt.Errorf("prlimit RLIMIT_DATA: %w", errno)
	}
	return nil
}

// MemoryLimitEnforced reports whether this platform applies memory limits to runner processes.
const MemoryLimitEnforced = true
