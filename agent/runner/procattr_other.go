//go:build !linux

package runner

import "syscall"

// runnerProcAttr puts a runner in its own process group, so cancellation can kill everything it
// started. Only Linux can also tie the runner's life to the agent's.
func runnerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
