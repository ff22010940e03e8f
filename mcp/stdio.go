package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// DrainTimeout bounds each wait of ServeIO for answers: for the answer to
// an initialize request before later input is passed on, and, once the
// input has ended, for the answers to every request already read. Tests
// shorten it; set it before calling ServeIO.
var DrainTimeout = 30 * time.Second

// ServeIO runs s over newline-delimited JSON-RPC (the MCP stdio framing) on
// in and out until in ends or ctx is done. An ended input is a clean exit.
//
// The SDK handles messages concurrently and, left to read in directly,
// drops every unanswered request when in ends. So ServeIO reads in itself
// and passes it on line by line, tracking which requests have been answered
// on out, and guarantees:
//
//   - After an initialize request is passed on, later input waits until its
//     answer has been written to out — the one ordering MCP requires. Other
//     requests stay concurrent.
//   - When in ends, every request already read is answered on out before
//     the SDK sees the end of input and ServeIO returns.
//   - A line that is not a JSON-RPC 2.0 message or a non-empty batch of
//     them (not JSON, a bare number, [], another "jsonrpc" version…) is
//     passed on only once every request read before it is answered: the
//     SDK may end the session on it, and ServeIO then returns its error.
//     Messages are one per line, as the stdio framing requires; a message
//     spread over several lines is such a line, and its request is not
//     covered by the guarantee above.
//
// Each wait ends when its answers are written, ctx is done, the session
// ends, writing to out fails, or DrainTimeout passes; what is still
// unanswered then is dropped. Request ids are matched as the SDK reads
// them: a number by its integer value (1 and 1.0 are one id), a string by
// its text ("1" and 1 are two ids).
//
// When ctx is done, ServeIO returns promptly even if in never ends. If in
// is an io.Closer, ServeIO closes it before returning, which unblocks the
// goroutine reading it where the reader allows (an io.Pipe does; a blocking
// terminal or os.Stdin may not: that goroutine then stays blocked in Read
// until input arrives or in is closed, and exits then). If out is an
// io.Closer, it is closed when the session ends, as the SDK does.
func ServeIO(ctx context.Context, s *sdk.Server, in io.Reader, out io.Writer) error {
	calls := newCalls()
	pr, pw := io.Pipe()
	ss, err := s.Connect(ctx, &sdk.IOTransport{Reader: pr, Writer: &answerWriter{out: out, calls: calls}}, nil)
	if err != nil {
		pr.Close()
		return fmt.Errorf("mcp.ServeIO: %w", err)
	}
	ended := make(chan struct{})
	f := &feeder{in: bufio.NewReader(in), sdk: pw, calls: calls, ctx: ctx, ended: ended, limit: DrainTimeout}
	go f.run()
	stop := context.AfterFunc(ctx, func() { ss.Close() })
	defer stop()
	err = ss.Wait()
	close(ended)
	pr.Close()
	if c, ok := in.(io.Closer); ok {
		c.Close()
	}
	if ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mcp.ServeIO: %w", err)
	}
	return nil
}

// feeder passes the lines of in on to the SDK through a pipe, holding them
// back while ServeIO's guarantees require.
type feeder struct {
	in    *bufio.Reader
	sdk   *io.PipeWriter
	calls *calls
	ctx   context.Context
	ended <-chan struct{} // closed when the session has ended
	limit time.Duration
}

func (f *feeder) run() {
	f.sdk.CloseWithError(f.feed()) // nil: the SDK reads io.EOF
}

// feed returns nil at the end of in, in's read error, or the error of a
// line too long to frame. It drains before returning either.
func (f *feeder) feed() error {
	for {
		line, long, rerr := readLine(f.in, sdk.DefaultMaxLineLength)
		if long {
			// Beyond the SDK's frame limit: it ends the session on this line.
			f.await("")
			f.sdk.Write(line)
			return fmt.Errorf("mcp.ServeIO: a line exceeds %d bytes", sdk.DefaultMaxLineLength)
		}
		if err := f.forward(line); err != nil {
			return nil // the session has ended; there is no one left to tell
		}
		if rerr != nil {
			f.await("")
			if rerr == io.EOF {
				return nil
			}
			return rerr
		}
	}
}

// forward passes one line (without its newline) on to the SDK.
func (f *feeder) forward(line []byte) error {
	if len(bytes.TrimSpace(line)) == 0 {
		return nil
	}
	msgs, ok := parseLine(line)
	if !ok {
		f.await("")
	}
	var inits []string
	for _, m := range msgs {
		switch {
		case m.isCall():
			f.calls.add(m.id)
			if m.method == "initialize" {
				inits = append(inits, m.id)
			}
		case m.method == "notifications/cancelled" && m.cancelled != "":
			// The SDK need not answer a cancelled request.
			f.calls.done(m.cancelled)
		}
	}
	if _, err := f.sdk.Write(append(line, '\n')); err != nil {
		return err
	}
	for _, id := range inits {
		f.await(id)
	}
	return nil
}

// await waits until the call id (every call for "") is answered, or until
// ctx is done, the session ends, out fails or the limit passes.
func (f *feeder) await(id string) {
	timer := time.NewTimer(f.limit)
	defer timer.Stop()
	for {
		open, changed := f.calls.pending(id)
		if !open {
			return
		}
		select {
		case <-changed:
		case <-f.ctx.Done():
			return
		case <-f.ended:
			return
		case <-f.calls.broken:
			return
		case <-timer.C:
			return
		}
	}
}

// readLine returns the next line of r without its newline, a final line
// without one, or, with long set, the first max+ bytes of a longer line.
func readLine(r *bufio.Reader, max int) (line []byte, long bool, err error) {
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			if len(line) > max {
				return line, true, nil
			}
			continue
		}
		return bytes.TrimSuffix(line, []byte("\n")), false, err
	}
}

// calls is the set of requests read but not yet answered, by id key.
type calls struct {
	mu      sync.Mutex
	open    map[string]bool
	changed chan struct{} // closed and replaced when a call is answered

	breakOnce sync.Once
	broken    chan struct{} // closed when writing to out failed
}

func newCalls() *calls {
	return &calls{open: map[string]bool{}, changed: make(chan struct{}), broken: make(chan struct{})}
}

func (c *calls) add(id string) {
	c.mu.Lock()
	c.open[id] = true
	c.mu.Unlock()
}

func (c *calls) done(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open[id] {
		delete(c.open, id)
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

// pending reports whether the call id (any call for "") is unanswered, and
// a channel closed at the next answer.
func (c *calls) pending(id string) (bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id == "" {
		return len(c.open) > 0, c.changed
	}
	return c.open[id], c.changed
}

func (c *calls) fail() { c.breakOnce.Do(func() { close(c.broken) }) }

// answerWriter writes the SDK's output to out and marks the calls whose
// answers it has written. It does not rely on Write boundaries: a partial
// line waits for its end.
type answerWriter struct {
	mu    sync.Mutex
	out   io.Writer
	calls *calls
	part  []byte
}

func (w *answerWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.out.Write(p)
	w.part = append(w.part, p[:n]...)
	rest := w.part
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		msgs, _ := parseLine(rest[:i])
		for _, m := range msgs {
			if m.isResponse() {
				w.calls.done(m.id)
			}
		}
		rest = rest[i+1:]
	}
	w.part = append(w.part[:0], rest...)
	if err != nil {
		w.calls.fail()
	}
	return n, err
}

// Close closes out if it is an io.Closer.
func (w *answerWriter) Close() error {
	if c, ok := w.out.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// message is what ServeIO needs of one JSON-RPC message.
type message struct {
	hasMethod bool
	method    string
	id        string // key of a valid id (see idKey), else ""
	cancelled string // notifications/cancelled: key of params.requestId
}

// isCall reports a request that needs an answer.
func (m message) isCall() bool { return m.hasMethod && m.id != "" }

// isResponse reports an answer to a request.
func (m message) isResponse() bool { return !m.hasMethod && m.id != "" }

// parseLine decodes a line as one message or a batch (a JSON array). ok is
// false unless the line is a JSON-RPC 2.0 message or a non-empty batch of
// them; elements that are not are skipped (the SDK refuses them).
func parseLine(line []byte) (msgs []message, ok bool) {
	if !json.Valid(line) {
		return nil, false
	}
	var batch []json.RawMessage
	if json.Unmarshal(line, &batch) != nil {
		batch = []json.RawMessage{line}
	}
	ok = len(batch) > 0
	for _, raw := range batch {
		// A map, not a struct: keys match case-sensitively, as in the SDK.
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil || string(obj["jsonrpc"]) != `"2.0"` {
			ok = false
			continue
		}
		var m message
		if method, ok := obj["method"]; ok {
			m.hasMethod = true
			json.Unmarshal(method, &m.method)
		}
		m.id = idKey(obj["id"])
		if m.method == "notifications/cancelled" {
			var params map[string]json.RawMessage
			if json.Unmarshal(obj["params"], &params) == nil {
				m.cancelled = idKey(params["requestId"])
			}
		}
		msgs = append(msgs, m)
	}
	return msgs, ok
}

// idKey returns the key of a JSON-RPC id as the SDK reads it — a number
// as its integer value, a string as its text — or "" for a missing, null
// or invalid id (the SDK treats a null id as a notification and refuses
// the others).
func idKey(raw json.RawMessage) string {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return ""
	}
	switch v := v.(type) {
	case float64:
		return "n" + strconv.FormatInt(int64(v), 10)
	case string:
		return "s" + v
	}
	return ""
}
