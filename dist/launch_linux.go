package dist

import "syscall"

// workerAttr makes a worker receive SIGTERM when its launcher dies, so that no worker outlives
// a killed launcher.
func workerAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
