package warden

import "time"

// Clock returns the current time. Rules never call time.Now directly: the
// clock is injected so tests can move time without sleeping.
type Clock func() time.Time

// SystemClock is the wall clock in UTC.
func SystemClock() time.Time { return time.Now().UTC() }

// TimeFormat is the timestamp format of every receipt and API record:
// RFC 3339 in UTC with nanoseconds, trailing zeros trimmed.
const TimeFormat = time.RFC3339Nano

// FormatTime formats t as TimeFormat in UTC.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }
