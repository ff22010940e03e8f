package mcp_test

import (
	"testing"
	"time"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/wardentest"
)

// TestToolOnAFullDisk: an agent's tool call that cannot be written
// because storage is full is refused with code unavailable, the store's
// sentence and retry_after_seconds (what HTTP says in Retry-After); once
// space is freed the same call succeeds.
func TestToolOnAFullDisk(t *testing.T) {
	dir := wardentest.MustSmallFS(t, 8<<20)
	env := wardentest.MustEnvAt(t, dir)
	base := env.MustMCPServer(t)
	a := newAgent(t, env, base, "agent-7", warden.RoleRead)
	args := map[string]any{"decision": "retry the deploy", "reasoning": "the canary passed", "confidence": 0.9}
	a.call("cognitive_decide", args)

	fill := wardentest.MustFill(t, dir)
	var m map[string]any
	for range 64 { // the WAL may have room for a few more
		if m = a.result2("cognitive_decide", args); m["code"] != nil {
			break
		}
	}
	if m["code"] != warden.EUNAVAILABLE || m["retry_after_seconds"] != float64(int(warden.UnavailableRetryAfter/time.Second)) {
		t.Fatalf("tool call on a full disk: %v; want code %s with retry_after_seconds %d", m, warden.EUNAVAILABLE, int(warden.UnavailableRetryAfter/time.Second))
	}
	fill.Free()
	a.call("cognitive_decide", args)
}

// result2 is result without the IsError flag: the structured content of a
// success or of a refusal.
func (a *agent) result2(tool string, args map[string]any) map[string]any {
	a.t.Helper()
	m, _ := a.result(tool, args)
	return m
}
