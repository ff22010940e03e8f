package contain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	warden "github.com/warden-sh/warden"
)

// DefaultRetries is how many extra attempts a containment call gets on a
// network error, timeout or 5xx when the policy's targets.retries is absent.
const DefaultRetries = 2

// MaxReasonLen caps the reason sent to targets, in characters.
const MaxReasonLen = 512

// Target paths, relative to the policy's target base URLs.
const (
	PathFreeze      = "/api/v1/freeze"
	PathDisable     = "/api/v1/disable"
	PathVaultRelock = "/api/v1/vault/relock"
	PathQuarantine  = "/api/v1/quarantine"
)

// HTTPActuator carries out containment actions by calling the policy's HTTP
// targets: a JSON POST per action, the bearer token if one is configured, a
// per-call timeout, and bounded retries on network errors, timeouts and
// 5xx. A 4xx is never retried; only a 2xx is success. log_alert logs a
// structured warning and succeeds (webhooks go through the outbox).
//
// The zero value is usable: a client that does not follow redirects, the
// system clock, slog.Default, no token beyond targets.token_file.
// It implements warden.Actuator.
type HTTPActuator struct {
	// Client makes the calls; nil uses a client that never follows
	// redirects (a 3xx is a failure, and the token never moves hosts).
	Client *http.Client
	// Clock stamps CompletedAt; nil is warden.SystemClock.
	Clock warden.Clock
	// Logger receives log_alert lines and failed calls; nil is slog.Default().
	Logger *slog.Logger
	// Token returns the bearer token, read lazily on each Execute. When nil,
	// the token is read from the policy's targets.token_file if it names
	// one, and no Authorization header is sent otherwise.
	Token func() (string, error)
	// Timeout overrides the policy's targets.timeout_seconds when > 0.
	Timeout time.Duration
	// Backoff returns the wait before retry number attempt (1, 2, …);
	// nil is 100 ms · 2^(attempt-1). Tests return 0.
	Backoff func(attempt int) time.Duration
}

// request is the JSON body sent to a target.
type request struct {
	Action     string `json:"action"`
	Reason     string `json:"reason"`
	IncidentID string `json:"incident_id"`
	ModelPath  string `json:"model_path,omitempty"`
	ModelName  string `json:"model_name,omitempty"`
}

// call is one planned target call.
type call struct {
	url   string // full URL
	shown string // url with userinfo and query redacted, for messages
	body  request
}

// Execute runs one containment action for inc under policy p. It never
// panics and always sets Action and CompletedAt; Attempts counts the HTTP
// requests made. Error names the target URL and the HTTP status or network
// error, never the token.
func (a *HTTPActuator) Execute(ctx context.Context, p *warden.ContainmentPolicy, action string, inc *warden.Incident) (res warden.ContainmentResult) {
	res.Action = action
	defer func() {
		if r := recover(); r != nil {
			res.Success = false
			res.Error = fmt.Sprintf("internal error while running %s: %v", action, r)
			a.logger().LogAttrs(ctx, slog.LevelError, "containment actuator panicked",
				slog.String("action", action), slog.Any("panic", r))
		}
		res.CompletedAt = warden.FormatTime(clockOr(a.Clock)())
	}()
	if p == nil || inc == nil {
		res.Error = "no policy or incident given to the containment actuator"
		return res
	}
	if action == warden.ActionLogAlert {
		logAlert(ctx, a.logger(), inc)
		res.Success = true
		return res
	}
	c, err := plan(p, action, inc)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	token, err := a.token(p)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Attempts, err = a.postRetrying(ctx, p, c, token)
	if err != nil {
		res.Error = err.Error()
		a.logger().LogAttrs(ctx, slog.LevelWarn, "containment action failed",
			slog.String("action", action), slog.String("incident_id", inc.ID),
			slog.String("url", c.shown), slog.Int("attempts", res.Attempts), slog.String("error", res.Error))
		return res
	}
	res.Success = true
	a.logger().LogAttrs(ctx, slog.LevelInfo, "containment action succeeded",
		slog.String("action", action), slog.String("incident_id", inc.ID),
		slog.String("url", c.shown), slog.Int("attempts", res.Attempts))
	return res
}

// plan resolves the target URL and body of an HTTP action.
func plan(p *warden.ContainmentPolicy, action string, inc *warden.Incident) (*call, error) {
	var target, base, urlPath string
	body := request{IncidentID: inc.ID, Reason: Reason(inc)}
	switch action {
	case warden.ActionFreezeAgent:
		target, base, urlPath, body.Action = "agent", p.Targets.Agent, PathFreeze, "freeze"
	case warden.ActionDisableAirlock:
		target, base, urlPath, body.Action = "airlock", p.Targets.Airlock, PathDisable, "disable"
	case warden.ActionForceVaultRelock:
		target, base, urlPath, body.Action = "agent", p.Targets.Agent, PathVaultRelock, "relock"
	case warden.ActionQuarantineModel:
		target, base, urlPath, body.Action = "registry", p.Targets.Registry, PathQuarantine, "quarantine"
		body.ModelPath = inc.Evidence["model_path"]
		if body.ModelPath == "" {
			return nil, errors.New("quarantine_model needs the incident's evidence.model_path to name the model; none was reported, so nothing was quarantined")
		}
		body.ModelName = inc.Evidence["model_name"]
		if body.ModelName == "" {
			body.ModelName = path.Base(strings.ReplaceAll(body.ModelPath, `\`, "/"))
		}
	default:
		return nil, fmt.Errorf("unknown containment action %q", action)
	}
	if base == "" {
		return nil, fmt.Errorf("no %s target configured (policy targets.%s)", target, target)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("policy targets.%s is not an absolute http(s) URL", target)
	}
	u = u.JoinPath(urlPath)
	return &call{url: u.String(), shown: redactURL(u.String()), body: body}, nil
}

// Reason is the reason sent to targets: "<class> incident <id>:
// <description>", cut to MaxReasonLen characters.
func Reason(inc *warden.Incident) string {
	r := fmt.Sprintf("%s incident %s: %s", inc.Class, inc.ID, inc.Description)
	if utf8.RuneCountInString(r) <= MaxReasonLen {
		return r
	}
	n := 0
	for i := range r {
		if n == MaxReasonLen {
			return r[:i]
		}
		n++
	}
	return r
}

// token returns the bearer token ("" for none).
func (a *HTTPActuator) token(p *warden.ContainmentPolicy) (string, error) {
	if a.Token != nil {
		t, err := a.Token()
		if err != nil {
			return "", fmt.Errorf("bearer token for containment targets unavailable: %v", err)
		}
		return strings.TrimSpace(t), nil
	}
	if p.Targets.TokenFile == "" {
		return "", nil
	}
	return TokenFile(p.Targets.TokenFile)()
}

// TokenFile returns a Token function that reads the bearer token from the
// file at path on every call (so a rotated token is picked up), trimming
// surrounding whitespace. An empty file is an error: a configured token
// that is missing must fail the call, not send it unauthenticated.
func TokenFile(path string) func() (string, error) {
	return func() (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("cannot read targets.token_file: %v", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("targets.token_file %s is empty", path)
		}
		return t, nil
	}
}

// postRetrying makes the call with retries. It returns the number of attempts.
func (a *HTTPActuator) postRetrying(ctx context.Context, p *warden.ContainmentPolicy, c *call, token string) (int, error) {
	retries := DefaultRetries
	if p.Targets.Retries != nil {
		retries = max(0, *p.Targets.Retries)
	}
	timeout := a.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeoutSeconds * time.Second
		if p.Targets.TimeoutSeconds > 0 {
			timeout = time.Duration(p.Targets.TimeoutSeconds) * time.Second
		}
	}
	body, err := json.Marshal(c.body)
	if err != nil {
		return 0, fmt.Errorf("encode request for %s: %v", c.shown, err)
	}
	attempts := 0
	var last error
	for attempts < retries+1 {
		if attempts > 0 {
			if err := sleep(ctx, a.backoff(attempts)); err != nil {
				last = fmt.Errorf("POST %s: canceled before retry: %v", c.shown, err)
				break
			}
		}
		attempts++
		retry, err := a.once(ctx, c, body, token, timeout)
		if err == nil {
			return attempts, nil
		}
		last = err
		if cerr := ctx.Err(); cerr != nil && retry {
			// Say why retrying stopped, however the race between the
			// answer and the cancellation went.
			last = fmt.Errorf("%v; canceled, not retried: %v", err, cerr)
			break
		}
		if !retry {
			break
		}
	}
	return attempts, fmt.Errorf("%w (%s)", last, plural(attempts, "attempt"))
}

// once makes one request. retry reports whether the failure is transient.
func (a *HTTPActuator) once(ctx context.Context, c *call, body []byte, token string, timeout time.Duration) (retry bool, err error) {
	h := http.Header{}
	h.Set("Accept", "application/json")
	h.Set("User-Agent", "warden-containment")
	_, retry, err = post(ctx, a.Client, postCall{URL: c.url, Body: body, Header: h, Timeout: timeout, Token: token})
	return retry, err
}

func (a *HTTPActuator) backoff(attempt int) time.Duration {
	if a.Backoff != nil {
		return a.Backoff(attempt)
	}
	return 100 * time.Millisecond << min(attempt-1, 10)
}

func (a *HTTPActuator) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// DryRun logs what Execute would do for action, calling nothing, and
// reports a dry-run success (drill mode: the engine calls it instead of
// Execute). A problem Execute would meet (no target configured, no
// model_path) is named in the log line.
func (a *HTTPActuator) DryRun(ctx context.Context, p *warden.ContainmentPolicy, action string, inc *warden.Incident) warden.ContainmentResult {
	return dryRun(ctx, a.logger(), clockOr(a.Clock), p, action, inc)
}

// DryRunActuator records containment actions without running them: both
// Execute and DryRun log a "DRY-RUN would …" line and report a dry-run
// success, calling nothing. An engine in drill mode needs no special
// actuator (it calls DryRun of any); this one is for servers and tests that
// must never reach a target even outside drill mode.
// It implements warden.Actuator.
type DryRunActuator struct {
	// Clock stamps CompletedAt; nil is warden.SystemClock.
	Clock warden.Clock
	// Logger receives the DRY-RUN lines; nil is slog.Default().
	Logger *slog.Logger
}

// Execute is DryRun: it logs what action would do and reports a dry-run
// success.
func (d *DryRunActuator) Execute(ctx context.Context, p *warden.ContainmentPolicy, action string, inc *warden.Incident) warden.ContainmentResult {
	return d.DryRun(ctx, p, action, inc)
}

// DryRun logs what action would do and reports a dry-run success.
func (d *DryRunActuator) DryRun(ctx context.Context, p *warden.ContainmentPolicy, action string, inc *warden.Incident) warden.ContainmentResult {
	log := d.Logger
	if log == nil {
		log = slog.Default()
	}
	return dryRun(ctx, log, clockOr(d.Clock), p, action, inc)
}

// dryRun logs "DRY-RUN would <action>" with the call Execute would make
// (or the problem it would meet) and returns a dry-run success.
func dryRun(ctx context.Context, log *slog.Logger, clock warden.Clock, p *warden.ContainmentPolicy, action string, inc *warden.Incident) (res warden.ContainmentResult) {
	res = warden.ContainmentResult{Action: action, Success: true, DryRun: true}
	defer func() {
		if r := recover(); r != nil {
			res.Success = false
			res.Error = fmt.Sprintf("internal error while planning %s: %v", action, r)
		}
		res.CompletedAt = warden.FormatTime(clock())
	}()
	attrs := []slog.Attr{slog.String("action", action)}
	if inc != nil {
		attrs = append(attrs, slog.String("incident_id", inc.ID), slog.String("class", inc.Class))
	}
	if p != nil && inc != nil && action != warden.ActionLogAlert {
		if c, err := plan(p, action, inc); err != nil {
			attrs = append(attrs, slog.String("problem", err.Error()))
		} else {
			attrs = append(attrs, slog.String("method", http.MethodPost), slog.String("url", c.shown))
			if c.body.ModelPath != "" {
				attrs = append(attrs, slog.String("model_path", c.body.ModelPath))
			}
		}
	}
	log.LogAttrs(ctx, slog.LevelInfo, "DRY-RUN would "+action, attrs...)
	return res
}

func logAlert(ctx context.Context, log *slog.Logger, inc *warden.Incident) {
	log.LogAttrs(ctx, slog.LevelWarn, "containment alert",
		slog.String("incident_id", inc.ID),
		slog.String("class", inc.Class),
		slog.String("severity", string(inc.Severity)),
		slog.String("state", string(inc.State)),
		slog.String("source", inc.Source),
		slog.String("description", inc.Description),
		slog.Any("evidence", inc.Evidence),
	)
}

func clockOr(c warden.Clock) warden.Clock {
	if c != nil {
		return c
	}
	return warden.SystemClock
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// printable keeps the first n characters of s on one line.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > n {
		s = string([]rune(s)[:n]) + "…"
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
