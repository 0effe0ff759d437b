package plugin

import (
	"context"
	"sync"

	"github.com/seed/wizauditlogs/pkg/store/postgres"
)

// poolConns bounds the process's pool to the database, which all its data sources share; each
// data source takes one more connection for its leader lock.
const poolConns = 8

// pools holds one connection pool per database URL for the whole process, opened with the
// first data source that needs it and closed with the last.
var pools = &poolRegistry{m: map[string]*sharedPool{}}

type poolRegistry struct {
	mu sync.Mutex
	m  map[string]*sharedPool
}

type sharedPool struct {
	pool *postgres.Pool
	refs int
}

// open opens the data source's store in the pool of databaseURL; closing the store releases
// its share of the pool.
func (r *poolRegistry) open(ctx context.Context, databaseURL string, orgID int64, uid string, opts postgres.Options) (*pooledStore, error) {
	opts.MaxConns = poolConns
	r.mu.Lock()
	defer r.mu.Unlock()
	sp := r.m[databaseURL]
	if sp == nil {
		p, err := postgres.NewPool(ctx, databaseURL, opts)
		if err != nil {
			return nil, err
		}
		sp = &sharedPool{pool: p}
		r.m[databaseURL] = sp
	}
	st, err := postgres.OpenIn(ctx, sp.pool, orgID, uid, opts)
	if err != nil {
		r.releaseLocked(databaseURL)
		return nil, err
	}
	sp.refs++
	return &pooledStore{Store: st, release: func() { r.release(databaseURL) }}, nil
}

func (r *poolRegistry) release(databaseURL string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sp := r.m[databaseURL]; sp != nil {
		sp.refs--
		r.releaseLocked(databaseURL)
	}
}

func (r *poolRegistry) releaseLocked(databaseURL string) {
	if sp := r.m[databaseURL]; sp != nil && sp.refs <= 0 {
		sp.pool.Close()
		delete(r.m, databaseURL)
	}
}

// pooledStore is a store whose Close also releases its share of the pool.
type pooledStore struct {
	*postgres.Store
	release func()
	once    sync.Once
}

func (p *pooledStore) Close() error {
	err := p.Store.Close()
	p.once.Do(p.release)
	return err
}
