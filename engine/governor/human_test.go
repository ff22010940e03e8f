package governor_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	warden "github.com/warden-sh/warden"
	"github.com/warden-sh/warden/engine"
	"github.com/warden-sh/warden/engine/governor"
	"github.com/warden-sh/warden/wardentest"
)

// person registers a credential (human or not) and returns its principal.
func person(t *testing.T, env *wardentest.Env, name string, human bool, roles ...warden.Role) *warden.Principal {
	t.Helper()
	env.MustCredential(t, engine.CredentialSpec{Name: name, Roles: roles, Human: human})
	return &warden.Principal{Name: name, Roles: roles, Human: human}
}

// toPhoenix climbs p to phoenix, approved by approver.
func toPhoenix(t *testing.T, env *wardentest.Env, p, approver *warden.Principal) {
	t.Helper()
	mustEscalate(t, env, p, warden.ProfileOperator)
	mustEscalate(t, env, p, warden.ProfileGuardian)
	approved(t, env, p, approver, governor.EscalateRequest{ToProfile: "phoenix", EscalationType: "crisis_declared", Reason: "crisis"})
}

// approvedErr asks for req, has approvers approve its digest, asks again
// with their approvals and returns the outcome of that second request and
// the number of escalation_denied receipts just before it.
func approvedErr(t *testing.T, env *wardentest.Env, p *warden.Principal, approvers []*warden.Principal, req governor.EscalateRequest) (*governor.EscalateResult, int, error) {
	t.Helper()
	ctx := context.Background()
	_, err := env.Governor.Escalate(ctx, p, req)
	var we *warden.Error
	if !errors.As(err, &we) || we.Data["request_digest"] == nil {
		t.Fatalf("escalate to %s without approval: %v", req.ToProfile, err)
	}
	for _, a := range approvers {
		if _, err := env.Governor.Approve(ctx, a, we.Data["request_digest"].(string)); err != nil {
			t.Fatal(err)
		}
		req.ApprovedBy = append(req.ApprovedBy, a.Name)
	}
	before := len(receiptsOfType(t, env, warden.ReceiptEscalationDenied))
	res, err := env.Governor.Escalate(ctx, p, req)
	return res, before, err
}

// approved is approvedErr for a request that must succeed.
func approved(t *testing.T, env *wardentest.Env, p, approver *warden.Principal, req governor.EscalateRequest) *governor.EscalateResult {
	t.Helper()
	res, _, err := approvedErr(t, env, p, []*warden.Principal{approver}, req)
	if err != nil {
		t.Fatalf("escalate to %s: %v", req.ToProfile, err)
	}
	return res
}

var sovereign = governor.EscalateRequest{ToProfile: "sovereign", EscalationType: "sovereign_override", Reason: "the board says so"}

// deniedReceipted checks err is a denial whose sentence contains want and
// that one more receipt of typ was written.
func deniedReceipted(t *testing.T, env *wardentest.Env, typ string, before int, err error, want string) {
	t.Helper()
	if warden.ErrorCode(err) != warden.EDENIED || !strings.Contains(warden.ErrorMessage(err), want) {
		t.Fatalf("got %v, want a denial containing %q", err, want)
	}
	if n := len(receiptsOfType(t, env, typ)); n != before+1 {
		t.Fatalf("%d %s receipts, want %d: the refusal was not receipted", n, typ, before+1)
	}
}

// TestSovereignIsHumanOnly: the attack — a read-role agent with
// sovereign_override and one approval — no longer reaches sovereign; an
// approver that is not human does not count; neither the subject nor the
// requester can approve; humans, approved by a human, can.
func TestSovereignIsHumanOnly(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	humanAppr := person(t, env, "alice-approver", true, warden.RoleApprover)
	botAppr := person(t, env, "approver-bot", false, warden.RoleApprover)

	// The attack: an agent (a credential, read role, not human) climbs to
	// phoenix with approval, then asks for sovereign with a human's approval.
	agent := person(t, env, "agent-1", false, warden.RoleRead)
	toPhoenix(t, env, agent, humanAppr)
	// The approval the attack carries: a human approver's, for exactly
	// this request (the agent's fourth escalation).
	digest := governor.RequestDigest(agent.Name, warden.ProfilePhoenix, warden.ProfileSovereign, warden.EscalationSovereignOverride, 3)
	if _, err := env.Governor.Approve(ctx, humanAppr, digest); err != nil {
		t.Fatal(err)
	}
	attack := sovereign
	attack.ApprovedBy = governor.StringList{humanAppr.Name}
	before := len(receiptsOfType(t, env, warden.ReceiptEscalationDenied))
	_, err := env.Governor.Escalate(ctx, agent, attack)
	deniedReceipted(t, env, warden.ReceiptEscalationDenied, before, err,
		"Escalation to sovereign requires human (sovereign) approval: the requester agent-1 is not a credential an admin marked human")
	if p, _ := env.Governor.CurrentProfile(ctx, agent.Name); p != warden.ProfilePhoenix {
		t.Fatalf("agent at %s after the refused sovereign escalation", p)
	}

	// A human operator cannot make the agent sovereign either.
	op := person(t, env, "bob-operator", true, warden.RoleOperator)
	attack.Subject = agent.Name
	before = len(receiptsOfType(t, env, warden.ReceiptEscalationDenied))
	_, err = env.Governor.Escalate(ctx, op, attack)
	deniedReceipted(t, env, warden.ReceiptEscalationDenied, before, err, "the subject agent-1 is not a credential an admin marked human")

	// A human at phoenix: a non-human approver does not count.
	human := person(t, env, "carol", true, warden.RoleRead)
	toPhoenix(t, env, human, humanAppr)
	_, before, err = approvedErr(t, env, human, []*warden.Principal{botAppr}, sovereign)
	deniedReceipted(t, env, warden.ReceiptEscalationDenied, before, err, `approver "approver-bot" is not a credential an admin marked human`)

	// The subject cannot approve itself, even as a human approver; nor can
	// the requester acting for it.
	selfish := person(t, env, "dave", true, warden.RoleApprover)
	toPhoenix(t, env, selfish, humanAppr)
	for _, tc := range []struct {
		requester *warden.Principal
		subject   string
		approver  *warden.Principal
	}{
		{selfish, "", selfish},
		{op, selfish.Name, selfish},
	} {
		r := sovereign
		r.Subject = tc.subject
		_, err := env.Governor.Escalate(ctx, tc.requester, r) // the digest
		var we *warden.Error
		if !errors.As(err, &we) || we.Data["request_digest"] == nil {
			t.Fatalf("digest: %v", err)
		}
		if _, err := env.Governor.Approve(ctx, tc.approver, we.Data["request_digest"].(string)); err != nil {
			t.Fatal(err)
		}
		r.ApprovedBy = governor.StringList{tc.approver.Name}
		before = len(receiptsOfType(t, env, warden.ReceiptEscalationDenied))
		_, err = env.Governor.Escalate(ctx, tc.requester, r)
		deniedReceipted(t, env, warden.ReceiptEscalationDenied, before, err, "dave cannot approve its own escalation")
	}

	// Humans, approved by a human: sovereign.
	res, _, err := approvedErr(t, env, human, []*warden.Principal{humanAppr}, sovereign)
	if err != nil || res.ToProfile != warden.ProfileSovereign || !slices.Equal(res.ApprovedBy, []string{"alice-approver"}) {
		t.Fatalf("human to sovereign: %+v %v", res, err)
	}

	// The attribute is read when it matters: once an admin unmarks the
	// approver, its approval no longer counts.
	admin := &warden.Principal{Name: "root", Roles: []warden.Role{warden.RoleAdmin}}
	if _, err := env.Core.SetCredentialHuman(ctx, admin, engine.HumanRequest{Name: humanAppr.Name, Human: false}); err != nil {
		t.Fatal(err)
	}
	_, before, err = approvedErr(t, env, selfish, []*warden.Principal{humanAppr}, sovereign)
	deniedReceipted(t, env, warden.ReceiptEscalationDenied, before, err, `approver "alice-approver" is not a credential an admin marked human`)
}

// TestIrreversiblePhoenixOperationsNeedAHuman: key rotation and mass
// revocation, at phoenix, are refused for a requester that is not a human
// credential — refused and receipted, nothing revoked, no key handed over
// — and work for a human.
func TestIrreversiblePhoenixOperationsNeedAHuman(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	appr := person(t, env, "alice-approver", true, warden.RoleApprover)
	agent := person(t, env, "agent-1", false, warden.RoleRead)
	toPhoenix(t, env, agent, appr)
	pub := env.Core.PublicKey()
	for _, tool := range []string{"phoenix_rotate_key", "phoenix_revoke_credentials"} {
		before := len(receiptsOfType(t, env, warden.ReceiptAuthFailure))
		_, err := env.Governor.CallTool(ctx, agent, tool, json.RawMessage(`{}`))
		deniedReceipted(t, env, warden.ReceiptAuthFailure, before, err, "Tool "+tool+" requires a human requester: agent-1 is not a credential an admin marked human.")
	}
	if env.Core.PublicKey() != pub || len(receiptsOfType(t, env, warden.ReceiptKeyRotation)) != 0 {
		t.Fatal("the agent's refused rotation rotated the key")
	}
	if len(receiptsOfType(t, env, warden.ReceiptRevocation)) != 0 || len(receiptsOfType(t, env, warden.ReceiptPhoenixRevoke)) != 0 {
		t.Fatal("the agent's refused mass revocation revoked something")
	}

	human := person(t, env, "carol", true, warden.RoleOperator)
	toPhoenix(t, env, human, appr)
	if _, err := env.Governor.CallTool(ctx, human, "phoenix_rotate_key", json.RawMessage(`{}`)); err != nil {
		t.Fatalf("a human's rotation: %v", err)
	}
	if env.Core.PublicKey() == pub {
		t.Fatal("the human's rotation did not rotate")
	}
}

// TestMassRevocationKeepsAnAdminAndAnApprover: phoenix_revoke_credentials
// keeps the admins, the caller and the human approvers, and revokes the
// rest (agents, non-human approvers); where that would leave no active
// admin or no active approver it is refused, receipted, and revokes
// nothing.
func TestMassRevocationKeepsAnAdminAndAnApprover(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	bot := person(t, env, "approver-bot", false, warden.RoleApprover)
	human := person(t, env, "carol", true, warden.RoleOperator)
	person(t, env, "agent-1", false, warden.RoleRead)
	toPhoenix(t, env, human, bot) // a non-human approver suffices below sovereign

	// No human approver: revoking approver-bot would leave none.
	before := len(receiptsOfType(t, env, warden.ReceiptPhoenixDenied))
	_, err := env.Governor.RevokeAll(ctx, human)
	deniedReceipted(t, env, warden.ReceiptPhoenixDenied, before, err, "it would leave 1 active admin(s) and 0 active approver(s)")
	if n := len(receiptsOfType(t, env, warden.ReceiptRevocation)) + len(receiptsOfType(t, env, warden.ReceiptPhoenixRevoke)); n != 0 {
		t.Fatalf("refused mass revocation left %d receipts of revocation", n)
	}

	person(t, env, "alice-approver", true, warden.RoleApprover)
	res, err := env.Governor.RevokeAll(ctx, human)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"agent-1", "approver-bot"}; !slices.Equal(res.Revoked, want) {
		t.Fatalf("revoked %v, want %v", res.Revoked, want)
	}
	creds, err := env.Core.Credentials(ctx, wardentest.AdminPrincipal)
	if err != nil {
		t.Fatal(err)
	}
	active := map[string]bool{}
	for _, c := range creds {
		active[c.Name] = c.RevokedAt == nil
	}
	for name, want := range map[string]bool{"admin": true, "alice-approver": true, "carol": true, "agent-1": false, "approver-bot": false} {
		if active[name] != want {
			t.Errorf("%s active = %v, want %v", name, active[name], want)
		}
	}

	// With every admin already gone, it is refused too.
	noAdmin := wardentest.MustEnv(t)
	if _, err := noAdmin.Core.RevokeCredential(ctx, wardentest.AdminPrincipal, "admin"); err != nil {
		t.Fatal(err)
	}
	appr := person(t, noAdmin, "alice-approver", true, warden.RoleApprover)
	h := person(t, noAdmin, "carol", true, warden.RoleOperator)
	toPhoenix(t, noAdmin, h, appr)
	before = len(receiptsOfType(t, noAdmin, warden.ReceiptPhoenixDenied))
	_, err = noAdmin.Governor.RevokeAll(ctx, h)
	deniedReceipted(t, noAdmin, warden.ReceiptPhoenixDenied, before, err, "it would leave 0 active admin(s) and 1 active approver(s)")
}

// TestOthersEscalationsNeedOperator: listing another principal's active
// escalations, or everyone's ("*"), is refused below operator (the read
// role no longer suffices); one's own, and an operator's "*", work.
func TestOthersEscalationsNeedOperator(t *testing.T) {
	env := wardentest.MustEnv(t)
	ctx := context.Background()
	reader := agent("reader")
	mustEscalate(t, env, agent("other"), warden.ProfileOperator)
	for _, subject := range []string{"*", "other"} {
		_, err := env.Governor.CallTool(ctx, reader, "get_active_escalations", json.RawMessage(`{"subject":"`+subject+`"}`))
		if warden.ErrorCode(err) != warden.EFORBIDDEN || !strings.Contains(warden.ErrorMessage(err), "needs the operator role") {
			t.Fatalf("reader listing %q: %v", subject, err)
		}
	}
	if _, err := env.Governor.CallTool(ctx, reader, "get_active_escalations", json.RawMessage(`{}`)); err != nil {
		t.Fatalf("own escalations: %v", err)
	}
	res, err := env.Governor.CallTool(ctx, &warden.Principal{Name: "op", Roles: []warden.Role{warden.RoleOperator}}, "get_active_escalations", json.RawMessage(`{"subject":"*"}`))
	if err != nil || res.(*governor.ActiveList).ActiveCount != 1 {
		t.Fatalf("operator listing *: %+v %v", res, err)
	}
}
