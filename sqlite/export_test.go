package sqlite

import "time"

// QueueLen reports how many Updates are waiting for the writer.
func QueueLen(db *DB) int {
	db.mu.Lock()
	defer db.mu.Unlock()
	return len(db.queue)
}

// Closing reports whether Close has begun.
func Closing(db *DB) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.closed
}

// SetLinger sets how long the writer waits for a batch to fill.
func SetLinger(d time.Duration) { linger = d }
