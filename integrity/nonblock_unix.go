//go:build unix

package integrity

import "syscall"

// openNonblock keeps an open from blocking on a FIFO or device swapped in
// for a listed regular file; it changes nothing for regular files.
const openNonblock = syscall.O_NONBLOCK
