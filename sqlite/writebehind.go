package sqlite

import (
	"fmt"
	"sort"
	"strings"

	warden "github.com/warden-sh/warden"
)

// Counters and incident counters are written behind: a batch keeps them in
// memory from their first use and writes each once, with the log heads,
// before its COMMIT. Ops in the batch read them through their writeTx
// (Counter, NextCounter, IncidentStats), which sees the batch's values; a
// rolled-back op's changes are undone with its savepoint's. Every op of a
// hot path (a report takes a number and moves five counters) thus costs
// no statement of its own for them.

// batchCounter is one named counter as the batch has it.
type batchCounter struct {
	value uint64
	dirty bool
}

// counter returns the batch's copy of a counter, reading it on first use.
func (t *writeTx) counter(name string) (*batchCounter, error) {
	if c, ok := t.st.counters[name]; ok {
		return c, nil
	}
	v, err := t.reader.Counter(name)
	if err != nil {
		return nil, err
	}
	c := &batchCounter{value: v}
	if t.st.counters == nil {
		t.st.counters = map[string]*batchCounter{}
	}
	t.st.counters[name] = c
	return c, nil
}

// NextCounter increments and returns a named counter.
func (t *writeTx) NextCounter(name string) (uint64, error) {
	if err := t.check(); err != nil {
		return 0, err
	}
	c, err := t.counter(name)
	if err != nil {
		return 0, t.failed("NextCounter", err)
	}
	if t.counterSnap == nil {
		t.counterSnap = map[string]batchCounter{}
	}
	if _, ok := t.counterSnap[name]; !ok {
		t.counterSnap[name] = *c
	}
	c.value++
	c.dirty = true
	return c.value, nil
}

// Counter returns a counter's value as this transaction sees it.
func (t *writeTx) Counter(name string) (uint64, error) {
	if err := t.check(); err != nil {
		return 0, err
	}
	c, err := t.counter(name)
	if err != nil {
		return 0, fmt.Errorf("sqlite.Counter: %w", err)
	}
	return c.value, nil
}

// addStats adds an op's change to the incident counters.
func (t *writeTx) addStats(d map[string]int64) {
	if len(d) == 0 {
		return
	}
	if t.stats == nil {
		t.stats = map[string]int64{}
	}
	for k, n := range d {
		t.stats[k] += n
	}
	t.counts.add(d)
}

// IncidentStats returns the counters as this transaction sees them: the
// stored ones plus the batch's and this op's changes.
func (t *writeTx) IncidentStats() (*warden.IncidentStats, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	c, err := t.counters()
	if err != nil {
		return nil, err
	}
	return warden.StatsFromCounters(c), nil
}

// counters are the incident counters as this transaction sees them: the
// stored ones plus the batch's and this op's changes.
func (t *writeTx) counters() (map[string]int64, error) {
	c, err := t.statCounters()
	if err != nil {
		return nil, err
	}
	for _, d := range []map[string]int64{t.st.stats, t.stats} {
		for k, n := range d {
			c[k] += n
		}
	}
	return c, nil
}

// CountOpenIncidents counts the open incidents as this transaction sees
// the counters (the stored ones plus the batch's and this op's changes).
func (t *writeTx) CountOpenIncidents() ([]warden.OpenIncidentCount, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	c, err := t.counters()
	if err != nil {
		return nil, err
	}
	return t.countOpenIncidents(c)
}

// commitOp folds a finished op's changes into the batch's (the op's
// savepoint was released, not rolled back).
func (t *writeTx) commitOp() {
	if len(t.stats) > 0 {
		if t.st.stats == nil {
			t.st.stats = map[string]int64{}
		}
		for k, n := range t.stats {
			t.st.stats[k] += n
		}
	}
	t.st.counts.total += t.counts.total
	t.st.counts.open += t.counts.open
}

// undoWriteBehind forgets a rolled-back op's changes.
func (t *writeTx) undoWriteBehind() {
	for name, c := range t.counterSnap {
		*t.st.counters[name] = c
	}
	t.stats = nil
	t.counts = counterDelta{}
	t.incidents = nil
}

// saveWriteBehind writes the batch's counters and incident counters.
func (w *writer) saveWriteBehind(st *batchState) error {
	for name, c := range st.counters {
		if !c.dirty {
			continue
		}
		if _, err := w.q.exec(`INSERT INTO counters (name, value) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, int64(c.value)); err != nil {
			return fmt.Errorf("save counter %s: %w", name, err)
		}
	}
	keys := make([]string, 0, len(st.stats))
	for k, n := range st.stats {
		if n != 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys) // one statement text per key count, whatever the order
	args := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		args = append(args, k, st.stats[k])
	}
	q := "INSERT INTO incident_stats (key, n) VALUES (?, ?)" + strings.Repeat(", (?, ?)", len(keys)-1) +
		" ON CONFLICT (key) DO UPDATE SET n = n + excluded.n"
	if _, err := w.q.exec(q, args...); err != nil {
		return fmt.Errorf("save incident counters: %w", err)
	}
	return nil
}

// incidentKey is what UpdateIncident needs of the stored incident: the
// fields that never change and those the counters are kept by.
type incidentKey struct {
	number        uint64
	class         string
	createdAt     string
	state         warden.IncidentState
	severity      warden.Severity
	autoContained bool
}

func keyOf(i *warden.Incident) incidentKey {
	return incidentKey{number: i.Number, class: i.Class, createdAt: i.CreatedAt, state: i.State, severity: i.Severity, autoContained: i.AutoContained}
}

func (k incidentKey) incident(id string) *warden.Incident {
	return &warden.Incident{ID: id, Number: k.number, Class: k.class, CreatedAt: k.createdAt, State: k.state, Severity: k.severity, AutoContained: k.autoContained}
}

// remember notes an incident as this op has stored it.
func (t *writeTx) remember(i *warden.Incident) {
	if t.incidents == nil {
		t.incidents = map[string]incidentKey{}
	}
	t.incidents[i.ID] = keyOf(i)
}

// Incident returns one incident, noting it for a later UpdateIncident of
// the same op (the usual read-modify-write reads it once).
func (t *writeTx) Incident(id string) (*warden.Incident, error) {
	i, err := t.reader.Incident(id)
	if err == nil {
		t.remember(i)
	}
	return i, err
}

// stored returns what UpdateIncident needs of the stored incident id: as
// this op last read or wrote it, else read. Only the writer writes, so
// nothing else changes it within the op.
func (t *writeTx) stored(id string) (*warden.Incident, error) {
	if k, ok := t.incidents[id]; ok {
		return k.incident(id), nil
	}
	return t.reader.Incident(id)
}
