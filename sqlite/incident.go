package sqlite

import (
	"cmp"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	warden "github.com/warden-sh/warden"
)

// incidentPage bounds how many incidents a listing holds at once: a page is
// read, its rows closed, then handed to the callback, which may query too.
const incidentPage = 500

func createdNS(i *warden.Incident) (int64, error) {
	t, err := time.Parse(warden.TimeFormat, i.CreatedAt)
	if err != nil {
		return 0, warden.Errorf(warden.EINVALID, "Incident created_at %q is not RFC 3339.", i.CreatedAt)
	}
	return t.UnixNano(), nil
}

func validIncident(i *warden.Incident) error {
	switch {
	case i == nil:
		return warden.Errorf(warden.EINVALID, "An incident is required.")
	case i.ID == "" || i.Number == 0:
		return warden.Errorf(warden.EINVALID, "An incident needs an id and a number.")
	case i.Severity.Rank() == 0:
		return warden.Errorf(warden.EINVALID, "Incident severity %q is invalid.", i.Severity)
	}
	if _, err := warden.ParseIncidentState(string(i.State)); err != nil {
		return err
	}
	return warden.ValidateClass(i.Class)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Counter returns a counter's current value.
func (r *reader) Counter(name string) (uint64, error) {
	var v uint64
	err := r.q.queryRow("SELECT value FROM counters WHERE name = ?", name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("sqlite.Counter: %w", err)
	}
	return v, nil
}

// CreateIncident stores a new incident and updates the counters.
func (t *writeTx) CreateIncident(i *warden.Incident) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := validIncident(i); err != nil {
		return err
	}
	ns, err := createdNS(i)
	if err != nil {
		return err
	}
	rec, err := json.Marshal(i)
	if err != nil {
		return t.failed("CreateIncident", err)
	}
	// OR IGNORE turns a duplicate id or number into zero rows affected,
	// which is a conflict, without a lookup on the hot path.
	res, err := t.q.exec(`INSERT OR IGNORE INTO incidents (id, number, class, severity_rank, state, created_ns, containment_pending, record)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, i.ID, int64(i.Number), i.Class, i.Severity.Rank(), string(i.State), ns,
		boolInt(i.ContainmentPending), string(rec))
	if err != nil {
		return t.failed("CreateIncident", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return t.failed("CreateIncident", err)
	} else if n == 0 {
		return warden.Errorf(warden.ECONFLICT, "Incident %s (number %d) already exists.", i.ID, i.Number)
	}
	t.addStats(warden.StatsDelta(nil, i))
	t.remember(i)
	return nil
}

// UpdateIncident replaces an incident and updates the counters.
func (t *writeTx) UpdateIncident(i *warden.Incident) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := validIncident(i); err != nil {
		return err
	}
	old, err := t.stored(i.ID)
	if err != nil {
		return err
	}
	if old.Number != i.Number || old.Class != i.Class || old.CreatedAt != i.CreatedAt {
		return warden.Errorf(warden.EINVALID, "An incident's number, class and creation time never change.")
	}
	rec, err := json.Marshal(i)
	if err != nil {
		return t.failed("UpdateIncident", err)
	}
	if _, err := t.q.exec(`UPDATE incidents SET severity_rank = ?, state = ?, containment_pending = ?, record = ? WHERE id = ?`,
		i.Severity.Rank(), string(i.State), boolInt(i.ContainmentPending), string(rec), i.ID); err != nil {
		return t.failed("UpdateIncident", err)
	}
	t.addStats(warden.StatsDelta(old, i))
	t.remember(i)
	return nil
}

func decodeIncident(rec string) (*warden.Incident, error) {
	var i warden.Incident
	if err := json.Unmarshal([]byte(rec), &i); err != nil {
		return nil, err
	}
	return &i, nil
}

// Incident returns one incident.
func (r *reader) Incident(id string) (*warden.Incident, error) {
	return getRecord[warden.Incident](r, "Incident", func() error {
		return warden.Errorf(warden.ENOTFOUND, "Incident %q not found.", id)
	}, "SELECT record FROM incidents WHERE id = ?", id)
}

// Incidents streams incidents page by page in listing order.
func (r *reader) Incidents(f warden.IncidentFilter, fn func(*warden.Incident) error) error {
	return r.incidentRows("Incidents", f, func(rec warden.IncidentRecord) error {
		i, err := decodeIncident(string(rec.JSON))
		if err != nil {
			return fmt.Errorf("sqlite.Incidents: %w", err)
		}
		return fn(i)
	})
}

// IncidentRecords streams the stored records in listing order, undecoded.
func (r *reader) IncidentRecords(f warden.IncidentFilter, fn func(warden.IncidentRecord) error) error {
	return r.incidentRows("IncidentRecords", f, fn)
}

// incidentRows reads the incidents matching f in listing order, a page of
// rows at a time (no rows are held open while fn runs), and calls fn for
// each.
func (r *reader) incidentRows(op string, f warden.IncidentFilter, fn func(warden.IncidentRecord) error) error {
	where, args := incidentWhere(f)
	cursor := f.After
	seen := 0
	for {
		page := incidentPage
		if f.Limit > 0 && f.Limit-seen < page {
			page = f.Limit - seen
		}
		sel := func(w []string) string {
			q := "SELECT severity_rank, number, record FROM incidents"
			if len(w) > 0 {
				q += " WHERE " + strings.Join(w, " AND ")
			}
			return q + " ORDER BY severity_rank DESC, number DESC LIMIT ?"
		}
		q, a := sel(where), append(slices.Clone(args), page)
		if cursor != nil {
			// The rest of the cursor's severity, then the lower ones: two
			// index ranges. One "rank < ? OR (rank = ? AND number < ?)"
			// range would restart at the top of the cursor's severity on
			// every page, quadratic in a listing of many incidents of one
			// severity.
			same := append(slices.Clone(where), "severity_rank = ?", "number < ?")
			lower := append(slices.Clone(where), "severity_rank < ?")
			q = "SELECT * FROM (" + sel(same) + ") UNION ALL SELECT * FROM (" + sel(lower) + ") ORDER BY severity_rank DESC, number DESC LIMIT ?"
			a = append(slices.Clone(args), cursor.Rank, int64(cursor.Number), page)
			a = append(append(a, args...), cursor.Rank, page, page)
		}
		rows, err := r.q.query(q, a...)
		if err != nil {
			return fmt.Errorf("sqlite.%s: %w", op, err)
		}
		var batch []warden.IncidentRecord
		for rows.Next() {
			var rank int
			var num int64
			var rec []byte
			if err := rows.Scan(&rank, &num, &rec); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite.%s: %w", op, err)
			}
			// Sent as it is, a record must be one JSON object: a
			// damaged or tampered row fails the read instead of adding
			// values to a listing.
			if len(rec) == 0 || rec[0] != '{' || !json.Valid(rec) {
				rows.Close()
				return warden.Errorf(warden.EINTERNAL, "Incident number %d's stored record is not a JSON object; the store is damaged (warden verify --data checks it).", num)
			}
			batch = append(batch, warden.IncidentRecord{Cursor: warden.IncidentCursor{Rank: rank, Number: uint64(num)}, JSON: rec})
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("sqlite.%s: %w", op, err)
		}
		for _, rec := range batch {
			if err := fn(rec); err != nil {
				return err
			}
		}
		seen += len(batch)
		if len(batch) < page || (f.Limit > 0 && seen >= f.Limit) {
			return nil
		}
		cursor = &batch[len(batch)-1].Cursor
	}
}

// incidentWhere returns the conditions and arguments of f's Class, State
// and Severity.
func incidentWhere(f warden.IncidentFilter) ([]string, []any) {
	var where []string
	var args []any
	if f.Class != "" {
		where, args = append(where, "class = ?"), append(args, f.Class)
	}
	if f.State != "" {
		where, args = append(where, "state = ?"), append(args, string(f.State))
	}
	if f.Severity != "" {
		where, args = append(where, "severity_rank = ?"), append(args, f.Severity.Rank())
	}
	return where, args
}

// CountIncidents counts the incidents matching f's Class, State and
// Severity, over the index that filter uses.
func (r *reader) CountIncidents(f warden.IncidentFilter) (int64, error) {
	where, args := incidentWhere(f)
	q := "SELECT count(*) FROM incidents"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	var n int64
	if err := r.q.queryRow(q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite.CountIncidents: %w", err)
	}
	return n, nil
}

// CountIncidentsIn counts a class's incidents created in (from, to].
func (r *reader) CountIncidentsIn(class string, from, to time.Time, limit int) (int, error) {
	var n int
	if err := r.q.queryRow(`SELECT count(*) FROM (SELECT 1 FROM incidents WHERE class = ? AND created_ns > ? AND created_ns <= ?
		ORDER BY created_ns DESC LIMIT ?)`, class, from.UnixNano(), to.UnixNano(), limit).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite.CountIncidentsIn: %w", err)
	}
	return n, nil
}

// IncidentStats returns the counters.
func (r *reader) IncidentStats() (*warden.IncidentStats, error) {
	c, err := r.statCounters()
	if err != nil {
		return nil, err
	}
	return warden.StatsFromCounters(c), nil
}

// statCounters reads the stored incident counters.
func (r *reader) statCounters() (map[string]int64, error) {
	rows, err := r.q.query("SELECT key, n FROM incident_stats")
	if err != nil {
		return nil, fmt.Errorf("sqlite.IncidentStats: %w", err)
	}
	defer rows.Close()
	c := map[string]int64{}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return nil, fmt.Errorf("sqlite.IncidentStats: %w", err)
		}
		c[k] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite.IncidentStats: %w", err)
	}
	return c, nil
}

// PutRequirement creates or replaces a recovery requirement.
func (t *writeTx) PutRequirement(req *warden.RecoveryRequirement) error {
	if err := t.check(); err != nil {
		return err
	}
	if req == nil || req.IncidentID == "" {
		return warden.Errorf(warden.EINVALID, "A recovery requirement needs an incident id.")
	}
	ct, err := time.Parse(warden.TimeFormat, req.CreatedAt)
	if err != nil {
		return warden.Errorf(warden.EINVALID, "Recovery requirement created_at %q is not RFC 3339.", req.CreatedAt)
	}
	var one int
	if err := t.q.queryRow("SELECT 1 FROM incidents WHERE id = ?", req.IncidentID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
		return warden.Errorf(warden.ENOTFOUND, "Incident %q not found.", req.IncidentID)
	} else if err != nil {
		return t.failed("PutRequirement", err)
	}
	rec, err := json.Marshal(req)
	if err != nil {
		return t.failed("PutRequirement", err)
	}
	if _, err := t.q.exec(`INSERT INTO recovery_requirements (incident_id, complete, created_ns, record) VALUES (?, ?, ?, ?)
		ON CONFLICT (incident_id) DO UPDATE SET complete = excluded.complete, created_ns = excluded.created_ns, record = excluded.record`,
		req.IncidentID, boolInt(req.RecoveryComplete), ct.UnixNano(), string(rec)); err != nil {
		return t.failed("PutRequirement", err)
	}
	return nil
}

// Requirement returns an incident's recovery requirement.
func (r *reader) Requirement(id string) (*warden.RecoveryRequirement, error) {
	return getRecord[warden.RecoveryRequirement](r, "Requirement", func() error {
		return warden.Errorf(warden.ENOTFOUND, "Incident %q has no recovery requirement.", id)
	}, "SELECT record FROM recovery_requirements WHERE incident_id = ?", id)
}

// Requirements streams requirements, oldest first.
func (r *reader) Requirements(pendingOnly bool, fn func(*warden.RecoveryRequirement) error) error {
	q := "SELECT record FROM recovery_requirements ORDER BY created_ns, incident_id"
	if pendingOnly {
		q = "SELECT record FROM recovery_requirements WHERE complete = 0 ORDER BY created_ns, incident_id"
	}
	list, err := listRecords[warden.RecoveryRequirement](r, "Requirements", q)
	if err != nil {
		return err
	}
	for _, req := range list {
		if err := fn(req); err != nil {
			return err
		}
	}
	return nil
}

// PendingRequirements returns a page of incomplete requirements, over the
// recovery_pending index from the cursor on.
func (r *reader) PendingRequirements(after *warden.RequirementCursor, limit int) ([]*warden.RecoveryRequirement, error) {
	if after == nil {
		return listRecords[warden.RecoveryRequirement](r, "PendingRequirements",
			"SELECT record FROM recovery_requirements WHERE complete = 0 ORDER BY created_ns, incident_id LIMIT ?", limit)
	}
	return listRecords[warden.RecoveryRequirement](r, "PendingRequirements",
		`SELECT record FROM recovery_requirements WHERE complete = 0 AND (created_ns, incident_id) > (?, ?)
		ORDER BY created_ns, incident_id LIMIT ?`, after.CreatedNs, after.IncidentID, limit)
}

// CountPendingRequirements counts the incomplete requirements.
func (r *reader) CountPendingRequirements() (int64, error) {
	var n int64
	if err := r.q.queryRow("SELECT count(*) FROM recovery_requirements WHERE complete = 0").Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite.CountPendingRequirements: %w", err)
	}
	return n, nil
}

// PendingContainment streams incidents whose containment is unrecorded.
func (r *reader) PendingContainment(fn func(*warden.Incident) error) error {
	list, err := listRecords[warden.Incident](r, "PendingContainment", "SELECT record FROM incidents WHERE containment_pending = 1 ORDER BY number")
	if err != nil {
		return err
	}
	for _, i := range list {
		if err := fn(i); err != nil {
			return err
		}
	}
	return nil
}

// PutIntegrityBaseline replaces the baseline.
func (t *writeTx) PutIntegrityBaseline(b *warden.IntegrityBaseline) error {
	if err := t.check(); err != nil {
		return err
	}
	if b == nil {
		return warden.Errorf(warden.EINVALID, "A baseline is required.")
	}
	rec, err := json.Marshal(b)
	if err != nil {
		return t.failed("PutIntegrityBaseline", err)
	}
	if _, err := t.q.exec(`INSERT INTO integrity_baseline (id, record) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET record = excluded.record`, string(rec)); err != nil {
		return t.failed("PutIntegrityBaseline", err)
	}
	return nil
}

// IntegrityBaseline returns the baseline.
func (r *reader) IntegrityBaseline() (*warden.IntegrityBaseline, error) {
	return getRecord[warden.IntegrityBaseline](r, "IntegrityBaseline", func() error {
		return warden.Errorf(warden.ENOTFOUND, "No integrity baseline is recorded.")
	}, "SELECT record FROM integrity_baseline WHERE id = 1")
}

func validDelivery(d *warden.Delivery) error {
	switch {
	case d == nil:
		return warden.Errorf(warden.EINVALID, "A delivery is required.")
	case d.Status != warden.DeliveryPending && d.Status != warden.DeliveryDelivered && d.Status != warden.DeliveryFailed:
		return warden.Errorf(warden.EINVALID, "Delivery status %q is invalid.", d.Status)
	case d.URL == "" || d.Event == "":
		return warden.Errorf(warden.EINVALID, "A delivery needs a URL and an event.")
	case !json.Valid(d.Payload):
		return warden.Errorf(warden.EINVALID, "A delivery payload must be JSON.")
	}
	return nil
}

// EnqueueDelivery adds a delivery to the outbox.
func (t *writeTx) EnqueueDelivery(d *warden.Delivery) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := validDelivery(d); err != nil {
		return err
	}
	res, err := t.q.exec(`INSERT INTO webhook_deliveries (incident_id, status, next_attempt_ns, destination, record) VALUES (?, ?, ?, ?, '{}')`,
		d.IncidentID, d.Status, d.NextAttemptAt.UnixNano(), warden.Destination(d.URL))
	if err != nil {
		return t.failed("EnqueueDelivery", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return t.failed("EnqueueDelivery", err)
	}
	d.ID = uint64(id)
	rec, err := json.Marshal(d)
	if err != nil {
		return t.failed("EnqueueDelivery", err)
	}
	if _, err := t.q.exec("UPDATE webhook_deliveries SET record = ? WHERE id = ?", string(rec), id); err != nil {
		return t.failed("EnqueueDelivery", err)
	}
	return nil
}

// UpdateDelivery records a delivery attempt.
func (t *writeTx) UpdateDelivery(d *warden.Delivery) error {
	if err := t.check(); err != nil {
		return err
	}
	if err := validDelivery(d); err != nil {
		return err
	}
	rec, err := json.Marshal(d)
	if err != nil {
		return t.failed("UpdateDelivery", err)
	}
	res, err := t.q.exec("UPDATE webhook_deliveries SET status = ?, next_attempt_ns = ?, destination = ?, record = ? WHERE id = ?",
		d.Status, d.NextAttemptAt.UnixNano(), warden.Destination(d.URL), string(rec), int64(d.ID))
	if err != nil {
		return t.failed("UpdateDelivery", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return t.failed("UpdateDelivery", err)
	} else if n == 0 {
		return warden.Errorf(warden.ENOTFOUND, "Delivery %d not found.", d.ID)
	}
	return nil
}

// dueDestinationsSQL lists the destinations with a due delivery by a skip
// scan over webhook_deliveries_destination: each step seeks the next
// pending destination and each candidate's oldest pending delivery is one
// more seek, so a destination costs a few index probes whatever its
// backlog.
const dueDestinationsSQL = `WITH RECURSIVE dest(name) AS (
		SELECT (SELECT min(destination) FROM webhook_deliveries WHERE status = 'pending')
		UNION ALL
		SELECT (SELECT min(destination) FROM webhook_deliveries WHERE status = 'pending' AND destination > dest.name)
		FROM dest WHERE dest.name IS NOT NULL
	), oldest(name, next_ns) AS MATERIALIZED (
		SELECT name, (SELECT min(next_attempt_ns) FROM webhook_deliveries WHERE status = 'pending' AND destination = dest.name)
		FROM dest WHERE name IS NOT NULL
	)
	SELECT name FROM oldest WHERE next_ns <= ? ORDER BY next_ns, name LIMIT ?`

// DueDestinations returns the destinations with a pending delivery due at
// now, the longest waiting first.
func (r *reader) DueDestinations(now time.Time, limit int) ([]string, error) {
	rows, err := r.q.query(dueDestinationsSQL, now.UnixNano(), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite.DueDestinations: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("sqlite.DueDestinations: %w", err)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite.DueDestinations: %w", err)
	}
	return out, nil
}

// DueDeliveries returns the pending deliveries to destination due at now,
// oldest first.
func (r *reader) DueDeliveries(now time.Time, destination string, limit int) ([]*warden.Delivery, error) {
	return listRecords[warden.Delivery](r, "DueDeliveries", dueDeliveriesSQL, destination, now.UnixNano(), limit)
}

// dueDeliveriesSQL reads one destination's due deliveries in index order.
const dueDeliveriesSQL = `SELECT record FROM webhook_deliveries
	WHERE status = 'pending' AND destination = ? AND next_attempt_ns <= ?
	ORDER BY next_attempt_ns, id LIMIT ?`

// Deliveries returns an incident's (or all) recent deliveries, newest first.
func (r *reader) Deliveries(f warden.DeliveryFilter) ([]*warden.Delivery, error) {
	before := int64(math.MaxInt64)
	if f.Before > 0 && f.Before < math.MaxInt64 {
		before = int64(f.Before)
	}
	if f.IncidentID == "" {
		return listRecords[warden.Delivery](r, "Deliveries", "SELECT record FROM webhook_deliveries WHERE id < ? ORDER BY id DESC LIMIT ?", before, f.Limit)
	}
	return listRecords[warden.Delivery](r, "Deliveries", "SELECT record FROM webhook_deliveries WHERE incident_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
		f.IncidentID, before, f.Limit)
}

// CountDeliveries counts an incident's webhook deliveries, or all.
func (r *reader) CountDeliveries(incidentID string) (int64, error) {
	q, args := "SELECT count(*) FROM webhook_deliveries", []any{}
	if incidentID != "" {
		q, args = q+" WHERE incident_id = ?", append(args, incidentID)
	}
	var n int64
	if err := r.q.queryRow(q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite.CountDeliveries: %w", err)
	}
	return n, nil
}

// ReportKey returns a principal's report idempotency key.
func (r *reader) ReportKey(principal, key string) (*warden.ReportKey, error) {
	k := &warden.ReportKey{Principal: principal, Key: key}
	var created int64
	err := r.q.queryRow("SELECT request_hash, incident_id, created_ns FROM report_keys WHERE principal = ? AND key = ?",
		principal, key).Scan(&k.RequestHash, &k.IncidentID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, warden.Errorf(warden.ENOTFOUND, "No report with idempotency key %q.", key)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite.ReportKey: %w", err)
	}
	k.CreatedAt = time.Unix(0, created).UTC()
	return k, nil
}

// PutReportKey stores (or replaces) a report idempotency key.
func (t *writeTx) PutReportKey(k *warden.ReportKey) error {
	if err := t.check(); err != nil {
		return err
	}
	if k == nil || k.Principal == "" || k.Key == "" || k.RequestHash == "" || k.IncidentID == "" || k.CreatedAt.IsZero() {
		return warden.Errorf(warden.EINVALID, "A report key needs a principal, a key, a request hash, an incident and a creation time.")
	}
	var one int
	if err := t.q.queryRow("SELECT 1 FROM incidents WHERE id = ?", k.IncidentID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
		return warden.Errorf(warden.ENOTFOUND, "Incident %q not found.", k.IncidentID)
	} else if err != nil {
		return t.failed("PutReportKey", err)
	}
	if _, err := t.q.exec(`INSERT INTO report_keys (principal, key, request_hash, incident_id, created_ns) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (principal, key) DO UPDATE SET request_hash = excluded.request_hash, incident_id = excluded.incident_id, created_ns = excluded.created_ns`,
		k.Principal, k.Key, k.RequestHash, k.IncidentID, k.CreatedAt.UnixNano()); err != nil {
		return t.failed("PutReportKey", err)
	}
	return nil
}

// ForgetReportKeys deletes up to limit keys created before before, oldest
// first (through the created_ns index).
func (t *writeTx) ForgetReportKeys(before time.Time, limit int) (int, error) {
	if err := t.check(); err != nil {
		return 0, err
	}
	if limit <= 0 {
		return 0, nil
	}
	res, err := t.q.exec(`DELETE FROM report_keys WHERE (principal, key) IN
		(SELECT principal, key FROM report_keys WHERE created_ns < ? ORDER BY created_ns LIMIT ?)`, before.UnixNano(), limit)
	if err != nil {
		return 0, t.failed("ForgetReportKeys", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, t.failed("ForgetReportKeys", err)
	}
	return int(n), nil
}

// EachReportKey streams every stored report key by principal and key.
func (r *reader) EachReportKey(fn func(*warden.ReportKey) error) error {
	const q = "SELECT principal, key, request_hash, incident_id, created_ns FROM report_keys"
	var last []any
	for {
		query, args := q+" ORDER BY principal, key LIMIT ?", []any{scanPage}
		if last != nil {
			query, args = q+" WHERE (principal, key) > (?, ?) ORDER BY principal, key LIMIT ?", append(last, scanPage)
		}
		rows, err := r.q.query(query, args...)
		if err != nil {
			return fmt.Errorf("sqlite.EachReportKey: %w", err)
		}
		var page []*warden.ReportKey
		for rows.Next() {
			k := new(warden.ReportKey)
			var created int64
			if err := rows.Scan(&k.Principal, &k.Key, &k.RequestHash, &k.IncidentID, &created); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite.EachReportKey: %w", err)
			}
			k.CreatedAt = time.Unix(0, created).UTC()
			page = append(page, k)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("sqlite.EachReportKey: %w", err)
		}
		for _, k := range page {
			if err := fn(k); err != nil {
				return err
			}
		}
		if len(page) < scanPage {
			return nil
		}
		last = []any{page[len(page)-1].Principal, page[len(page)-1].Key}
	}
}

// sqlLatchedCounts counts the open incidents whose requirement is
// incomplete, by class and severity: it walks recovery_pending's
// incomplete entries (one incident lookup each), so its cost grows with
// the requirements pending, never with the incidents.
const sqlLatchedCounts = `SELECT i.class, i.severity_rank, COUNT(*)
	FROM recovery_requirements AS r
	JOIN incidents AS i ON i.id = r.incident_id
	WHERE r.complete = 0 AND i.state IN ('open', 'contained', 'containment_failed')
	GROUP BY i.class, i.severity_rank`

// CountOpenIncidents counts the open incidents by class and severity (from
// the counters, warden.OpenClassKey) and the latched ones among them.
func (r *reader) CountOpenIncidents() ([]warden.OpenIncidentCount, error) {
	c, err := r.statCounters()
	if err != nil {
		return nil, fmt.Errorf("sqlite.CountOpenIncidents: %w", err)
	}
	return r.countOpenIncidents(c)
}

// countOpenIncidents is CountOpenIncidents over the counters c.
func (r *reader) countOpenIncidents(c map[string]int64) ([]warden.OpenIncidentCount, error) {
	type key struct {
		class string
		sev   warden.Severity
	}
	by := map[key]*warden.OpenIncidentCount{}
	for k, n := range c {
		class, sev, ok := warden.ParseOpenClassKey(k)
		if ok && n != 0 {
			by[key{class, sev}] = &warden.OpenIncidentCount{Class: class, Severity: sev, Open: n}
		}
	}
	rows, err := r.q.query(sqlLatchedCounts)
	if err != nil {
		return nil, fmt.Errorf("sqlite.CountOpenIncidents: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var class string
		var rank int
		var n int64
		if err := rows.Scan(&class, &rank, &n); err != nil {
			return nil, fmt.Errorf("sqlite.CountOpenIncidents: %w", err)
		}
		if rank < 1 || rank > len(warden.Severities) {
			return nil, fmt.Errorf("sqlite.CountOpenIncidents: severity rank %d out of range", rank)
		}
		k := key{class, warden.Severities[rank-1]}
		if by[k] == nil {
			by[k] = &warden.OpenIncidentCount{Class: k.class, Severity: k.sev}
		}
		by[k].Latched = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite.CountOpenIncidents: %w", err)
	}
	out := make([]warden.OpenIncidentCount, 0, len(by))
	for _, c := range by {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b warden.OpenIncidentCount) int {
		return cmp.Or(strings.Compare(a.Class, b.Class), cmp.Compare(a.Severity.Rank(), b.Severity.Rank()))
	})
	return out, nil
}

// CountPendingDeliveries counts the outbox's pending deliveries, through
// webhook_deliveries_destination (status first).
func (r *reader) CountPendingDeliveries() (int64, error) {
	var n int64
	if err := r.q.queryRow(countPendingDeliveriesSQL).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite.CountPendingDeliveries: %w", err)
	}
	return n, nil
}

// countPendingDeliveriesSQL reads only the index's pending entries.
const countPendingDeliveriesSQL = "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'"
