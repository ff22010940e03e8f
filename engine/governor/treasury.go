package governor

import (
	"context"
	"regexp"
	"strings"

	warden "github.com/warden-sh/warden"
)

// MaxAmount bounds every amount and balance: receipts are RFC 8785 JSON,
// whose numbers are exact only up to 2^53-1.
const MaxAmount = 1<<53 - 1

var budgetID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// CreateBudgetRequest is treasury_create_budget's arguments.
type CreateBudgetRequest struct {
	BudgetID  string `json:"budget_id"`
	Name      string `json:"name"`
	Allocated int64  `json:"allocated"`
	Currency  string `json:"currency"`
}

// BudgetResult is a budget with its balance.
type BudgetResult struct {
	Success bool `json:"success"`
	warden.Budget
	Balance int64 `json:"balance"`
}

func budgetResult(b *warden.Budget) *BudgetResult {
	return &BudgetResult{Success: true, Budget: *b, Balance: b.Balance()}
}

// CreateBudget creates a budget. In drill mode budgets are drill budgets,
// isolated from real ones and capped at DrillBudgetCeiling. ECONFLICT if
// the id exists.
func (g *Governor) CreateBudget(ctx context.Context, p *warden.Principal, req CreateBudgetRequest) (*BudgetResult, error) {
	if !budgetID.MatchString(req.BudgetID) {
		return nil, warden.Errorf(warden.EINVALID, "budget_id must be 1-128 letters, digits or ._:- starting with a letter or digit.")
	}
	if req.Allocated < 0 || req.Allocated > MaxAmount {
		return nil, warden.Errorf(warden.EINVALID, "allocated must be between 0 and %d.", int64(MaxAmount))
	}
	if strings.TrimSpace(req.Currency) == "" || len(req.Currency) > 32 || len(req.Name) > 256 {
		return nil, warden.Errorf(warden.EINVALID, "currency is required (at most 32 bytes) and name at most 256 bytes.")
	}
	b := &warden.Budget{BudgetID: req.BudgetID, Name: req.Name, Allocated: req.Allocated, Currency: req.Currency,
		Drill: g.core.Drill(), CreatedAt: warden.FormatTime(g.core.Now()), CreatedBy: p.Name}
	err := g.core.Update(ctx, "governor.CreateBudget", func(tx warden.Tx) error {
		if g.core.Drill() && req.Allocated > warden.DrillBudgetCeiling {
			return g.core.Deny(warden.ReceiptTreasuryDeny, map[string]any{"attempted_action": "create_budget", "budget_id": req.BudgetID,
				"requested": req.Allocated, "available": warden.DrillBudgetCeiling, "principal": p.Name}, warden.EDENIED,
				"Drill budgets are capped at %d units; %d requested.", warden.DrillBudgetCeiling, req.Allocated)
		}
		if err := tx.CreateBudget(b); err != nil {
			return err
		}
		_, err := tx.Append(g.core.Draft(warden.ReceiptBudgetCreated, map[string]any{"budget": b, "principal": p.Name}, "treasury", b.BudgetID))
		return err
	})
	if err != nil {
		return nil, err
	}
	return budgetResult(b), nil
}

// MoveRequest is treasury_debit's and treasury_credit's arguments.
type MoveRequest struct {
	BudgetID       string `json:"budget_id"`
	Amount         int64  `json:"amount"`
	Description    string `json:"description"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// MoveResult is a debit's or credit's outcome.
type MoveResult struct {
	Success          bool   `json:"success"`
	BudgetID         string `json:"budget_id"`
	Kind             string `json:"kind"`
	Amount           int64  `json:"amount"`
	Balance          int64  `json:"balance"`
	ReceiptHash      string `json:"receipt_hash"`
	IdempotentReplay bool   `json:"idempotent_replay"`
}

// Debit spends from a budget: the check and the write are one transaction,
// so no interleaving can overspend. An amount above the balance is refused
// before anything changes and receipted as treasury_denial with the
// attempted action, requested amount, available balance and reason; the
// error says "insufficient funds". A retried debit with the same
// idempotency key counts once and returns the original outcome.
func (g *Governor) Debit(ctx context.Context, p *warden.Principal, req MoveRequest) (*MoveResult, error) {
	return g.move(ctx, p, req, "debit")
}

// Credit adds to a budget, with the same idempotency rule.
func (g *Governor) Credit(ctx context.Context, p *warden.Principal, req MoveRequest) (*MoveResult, error) {
	return g.move(ctx, p, req, "credit")
}

func (g *Governor) move(ctx context.Context, p *warden.Principal, req MoveRequest, kind string) (*MoveResult, error) {
	if req.Amount <= 0 || req.Amount > MaxAmount {
		return nil, warden.Errorf(warden.EINVALID, "amount must be a whole number of units between 1 and %d.", int64(MaxAmount))
	}
	if len(req.Description) > 1024 || len(req.IdempotencyKey) > 128 {
		return nil, warden.Errorf(warden.EINVALID, "description is limited to 1024 bytes and idempotency_key to 128.")
	}
	var res *MoveResult
	err := g.core.Update(ctx, map[string]string{"debit": "governor.Debit", "credit": "governor.Credit"}[kind], func(tx warden.Tx) error {
		denyBody := map[string]any{"attempted_action": kind, "budget_id": req.BudgetID, "requested": req.Amount,
			"description": req.Description, "principal": p.Name}
		b, err := tx.Budget(req.BudgetID)
		if warden.ErrorCode(err) == warden.ENOTFOUND {
			denyBody["available"] = 0
			return g.core.Deny(warden.ReceiptTreasuryDeny, denyBody, warden.ENOTFOUND, "Budget %q not found.", req.BudgetID)
		} else if err != nil {
			return err
		}
		denyBody["available"] = b.Balance()
		// Budgets belong to their creator: others may not spend them, and
		// only operators may add funds (an agent cannot mint its own).
		if kind == "debit" && b.CreatedBy != p.Name && !p.HasRole(warden.RoleOperator) {
			return warden.Errorf(warden.EFORBIDDEN, "Budget %q belongs to %s; %s may not spend from it.", req.BudgetID, b.CreatedBy, p.Name)
		}
		if kind == "credit" && !p.HasRole(warden.RoleOperator) {
			return warden.Errorf(warden.EFORBIDDEN, "Only operators and admins may credit budgets; %s may not.", p.Name)
		}
		if b.Drill != g.core.Drill() {
			mode := map[bool]string{true: "a drill budget", false: "a real budget"}[b.Drill]
			return g.core.Deny(warden.ReceiptTreasuryDeny, denyBody, warden.EDENIED,
				"Budget %q is %s; drill and real budgets are isolated.", req.BudgetID, mode)
		}
		if req.IdempotencyKey != "" {
			op, err := tx.TreasuryOp(req.BudgetID, req.IdempotencyKey)
			if err == nil {
				if op.Kind != kind || op.Amount != req.Amount {
					return warden.Errorf(warden.ECONFLICT, "Idempotency key %q was already used for a %s of %d.", req.IdempotencyKey, op.Kind, op.Amount)
				}
				res = &MoveResult{Success: true, BudgetID: op.BudgetID, Kind: kind, Amount: op.Amount, Balance: op.BalanceAfter, ReceiptHash: op.ReceiptHash, IdempotentReplay: true}
				return nil
			} else if warden.ErrorCode(err) != warden.ENOTFOUND {
				return err
			}
		}
		if kind == "debit" {
			if req.Amount > b.Balance() {
				return g.core.Deny(warden.ReceiptTreasuryDeny, denyBody, warden.EINSUFFICIENT,
					"insufficient funds in budget %q: requested %d %s, available %d", req.BudgetID, req.Amount, b.Currency, b.Balance())
			}
			b.Spent += req.Amount
		} else {
			total := b.Allocated + b.Credited + req.Amount
			if total > MaxAmount {
				return g.core.Deny(warden.ReceiptTreasuryDeny, denyBody, warden.EDENIED,
					"Credit refused: budget %q would exceed %d units.", req.BudgetID, int64(MaxAmount))
			}
			if b.Drill && total > warden.DrillBudgetCeiling {
				return g.core.Deny(warden.ReceiptTreasuryDeny, denyBody, warden.EDENIED,
					"Credit refused: drill budgets are capped at %d units; %q would reach %d.", warden.DrillBudgetCeiling, req.BudgetID, total)
			}
			b.Credited += req.Amount
		}
		if err := tx.UpdateBudget(b); err != nil {
			return err
		}
		typ := map[string]string{"debit": warden.ReceiptDebit, "credit": warden.ReceiptCredit}[kind]
		r, err := tx.Append(g.core.Draft(typ, map[string]any{"budget_id": b.BudgetID, "amount": req.Amount,
			"description": req.Description, "balance_after": b.Balance(), "idempotency_key": req.IdempotencyKey, "principal": p.Name},
			"treasury", b.BudgetID))
		if err != nil {
			return err
		}
		op := &warden.TreasuryOp{BudgetID: b.BudgetID, IdempotencyKey: req.IdempotencyKey, Kind: kind, Amount: req.Amount,
			Description: req.Description, BalanceAfter: b.Balance(), ReceiptHash: r.RootHash, Seq: r.Seq, CreatedAt: r.Timestamp, Principal: p.Name}
		if err := tx.PutTreasuryOp(op); err != nil {
			return err
		}
		res = &MoveResult{Success: true, BudgetID: b.BudgetID, Kind: kind, Amount: req.Amount, Balance: b.Balance(), ReceiptHash: r.RootHash}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Budget returns a budget and its balance. ENOTFOUND if unknown.
func (g *Governor) Budget(ctx context.Context, id string) (*BudgetResult, error) {
	var b *warden.Budget
	err := g.core.View(ctx, "governor.Budget", func(tx warden.ReadTx) (err error) {
		b, err = tx.Budget(id)
		return err
	})
	if warden.ErrorCode(err) == warden.ENOTFOUND {
		return nil, warden.Errorf(warden.ENOTFOUND, "Budget %q not found.", id)
	} else if err != nil {
		return nil, err
	}
	return budgetResult(b), nil
}
