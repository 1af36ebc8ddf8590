//go:build !linux

package dist

import "syscall"

// workerAttr has nothing to add outside Linux.
func workerAttr() *syscall.SysProcAttr { return nil }
