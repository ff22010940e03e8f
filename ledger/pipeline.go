package ledger

import (
	"sync"

	warden "github.com/warden-sh/warden"
)

// Pipeline checks receipts on several goroutines and feeds them to a
// Verifier in their original order, so verification uses every core while
// the Merkle rebuild stays sequential. Push receipts in seq order, then
// Close. A Pipeline is not safe for concurrent Push calls.
type Pipeline struct {
	v       *Verifier
	batch   []*warden.Receipt
	nextID  int
	work    chan pipeBatch
	done    chan pipeBatch
	wg      sync.WaitGroup
	collect chan struct{}
	mu      sync.Mutex
	err     error
}

type pipeBatch struct {
	id     int
	recs   []*warden.Receipt
	leaves [][]byte
}

const pipeBatchSize = 512

// Pipeline starts a pipeline with the given number of checking goroutines.
func (v *Verifier) Pipeline(workers int) *Pipeline {
	if workers < 1 {
		workers = 1
	}
	p := &Pipeline{
		v:       v,
		work:    make(chan pipeBatch, workers*2),
		done:    make(chan pipeBatch, workers*2),
		collect: make(chan struct{}),
	}
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for b := range p.work {
				b.leaves = make([][]byte, len(b.recs))
				for i, r := range b.recs {
					// A nil leaf makes AddChecked re-run the check and
					// report the failure in order.
					b.leaves[i], _ = p.v.check(r)
				}
				p.done <- b
			}
		}()
	}
	go func() {
		defer close(p.collect)
		pending := map[int]pipeBatch{}
		want := 0
		for b := range p.done {
			pending[b.id] = b
			for {
				nb, ok := pending[want]
				if !ok {
					break
				}
				delete(pending, want)
				want++
				for i, r := range nb.recs {
					if err := p.v.AddChecked(r, nb.leaves[i]); err != nil {
						p.setErr(err)
						break
					}
				}
			}
		}
	}()
	return p
}

func (p *Pipeline) setErr(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

// Err returns the first verification error seen so far, if any; callers may
// stop pushing early when it is non-nil.
func (p *Pipeline) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Push queues r. It returns the first verification error seen so far.
func (p *Pipeline) Push(r *warden.Receipt) error {
	p.batch = append(p.batch, r)
	if len(p.batch) == pipeBatchSize {
		p.flush()
	}
	return p.Err()
}

func (p *Pipeline) flush() {
	if len(p.batch) == 0 {
		return
	}
	p.work <- pipeBatch{id: p.nextID, recs: p.batch}
	p.nextID++
	p.batch = make([]*warden.Receipt, 0, pipeBatchSize)
}

// Close drains the pipeline and returns the first verification error.
func (p *Pipeline) Close() error {
	p.flush()
	close(p.work)
	p.wg.Wait()
	close(p.done)
	<-p.collect
	return p.Err()
}
