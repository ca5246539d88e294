package runner

import "syscall"

// runnerProcAttr puts a runner in its own process group, so cancellation can kill everything it
// started, and has the kernel kill it if the agent dies (kill -9, OOM) instead of leaving a paid
// research process running for nobody.
func runnerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
