//go:build !unix

package integrity

// openNonblock: no such flag here; the regular-file check after the open
// still refuses what is not a regular file.
const openNonblock = 0
