package cli

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/mattn/go-isatty"
)

// Log formats of `warden serve --log-format`.
const (
	logFormatAuto = "auto" // text on a terminal, JSON otherwise
	logFormatJSON = "json"
	logFormatText = "text"
)

// newLogHandler returns serve's log handler writing to w at level and
// above, in format: "text" (slog's key=value lines, for people), "json"
// (one object a line, for collectors) or "auto": text when w is a
// terminal, JSON otherwise (a pipe, a file, journald, a container
// runtime). Repeated warnings and errors are sampled, in either format
// (loglimit.go); now is the limiter's clock.
func newLogHandler(w io.Writer, format string, level slog.Level, now func() time.Time) (*limitHandler, error) {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch logFormat(format, w) {
	case logFormatJSON:
		h = slog.NewJSONHandler(w, opts)
	case logFormatText:
		h = slog.NewTextHandler(w, opts)
	default:
		return nil, fmt.Errorf("--log-format %q: want auto, json or text", format)
	}
	return newLimitHandler(h, now), nil
}

// logFormat resolves auto for w: text on a terminal, else JSON.
func logFormat(format string, w io.Writer) string {
	if format != logFormatAuto {
		return format
	}
	if isTerminal(w) {
		return logFormatText
	}
	return logFormatJSON
}

// isTerminal reports whether w is a terminal (or a Cygwin/MSYS one).
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
