package http

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	warden "github.com/warden-sh/warden"
)

// Defaults of Options.MaxStreams and Options.MaxStreamsPerPrincipal.
const (
	DefaultMaxStreams             = 8
	DefaultMaxStreamsPerPrincipal = 2
)

// StreamRetryAfter is the Retry-After of a stream refused for a limit.
const StreamRetryAfter = 5 * time.Second

// errRevoked ends the streams of a credential revoked while they run.
var errRevoked = errors.New("the credential was revoked")

// streamLimits bounds the responses that stay open while a client
// downloads them (forensic bundles, incident and receipt listings): at
// most max at once, per at once for one principal. A stream of a
// principal whose credential is revoked is cut off at once.
type streamLimits struct {
	max, per int
	open     prometheus.Gauge

	mu    sync.Mutex
	total int
	by    map[string]map[*stream]struct{} // principal → its open streams; no empty sets
}

// stream is one open streamed response.
type stream struct {
	cancel context.CancelCauseFunc
	w      *statusWriter
}

// cut ends the stream: its context (and so its store read) is canceled
// and a write blocked on the client fails now, not at its deadline.
func (st *stream) cut(cause error) {
	st.cancel(cause)
	_ = st.w.rc.SetWriteDeadline(time.Unix(1, 0)) // after cancel: see statusWriter.Write
}

func newStreamLimits(max, per int) *streamLimits {
	return &streamLimits{max: max, per: per, by: map[string]map[*stream]struct{}{},
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "warden_http_streams_open", Help: "Streamed responses (exports, listings) being sent."})}
}

// acquire opens a stream for principal, answering through w, or returns
// ETOOMANY naming the limit it would break. The stream's context is ctx
// until release or a cut; w is bound to it, so once it is cut every
// write fails.
func (l *streamLimits) acquire(ctx context.Context, principal string, w *statusWriter) (context.Context, func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	mine := l.by[principal]
	if len(mine) >= l.per {
		return nil, nil, tooManyStreams("principal %q already has %d open, the most one principal may have at once", principal, len(mine))
	}
	if l.total >= l.max {
		return nil, nil, tooManyStreams("the server already sends %d, the most it sends at once", l.total)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	st := &stream{cancel: cancel, w: w}
	w.ctx = ctx
	if mine == nil {
		mine = map[*stream]struct{}{}
		l.by[principal] = mine
	}
	mine[st] = struct{}{}
	l.total++
	l.open.Inc()
	release := func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(mine, st)
		if len(mine) == 0 {
			delete(l.by, principal)
		}
		l.total--
		l.open.Dec()
		cancel(nil)
	}
	return ctx, release, nil
}

// revoke cuts every stream of principal.
func (l *streamLimits) revoke(principal string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for st := range l.by[principal] {
		st.cut(errRevoked)
	}
}

func tooManyStreams(format string, args ...any) *warden.Error {
	e := warden.Errorf(warden.ETOOMANY, "Too many streamed responses (forensic exports, incident and receipt listings): "+format+
		". Retry when one has finished.", args...)
	e.RetryAfter = StreamRetryAfter
	return e
}
