package serve

import (
	"sync"

	"github.com/rotorhq/rotor/internal/resolve"
)

// configs holds the config in force and the ones jobs still use. A reload
// must not close a config under a running job (its providers hold the
// admin connections the job is using), so each config counts its users
// and is closed when it is replaced and the last of them is done.
type configs struct {
	// onErr hears a config's Close error (its providers' pools).
	onErr  func(error)
	mu     sync.Mutex
	cur    *held
	closed bool
}

type held struct {
	cfg     *resolve.Config
	users   int
	retired bool
}

func newConfigs(cfg *resolve.Config, onErr func(error)) *configs {
	return &configs{cur: &held{cfg: cfg}, onErr: onErr}
}

func (c *configs) closeOne(cfg *resolve.Config) {
	if err := cfg.Close(); err != nil && c.onErr != nil {
		c.onErr(err)
	}
}

// current is the config in force, for a look that ends with the request.
func (c *configs) current() *resolve.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur.cfg
}

// acquire is the config in force, kept open until release.
func (c *configs) acquire() (*resolve.Config, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.cur
	h.users++
	var once sync.Once
	return h.cfg, func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			h.users--
			if h.retired && h.users == 0 {
				c.closeOne(h.cfg)
			}
		})
	}
}

// swap puts cfg in force; the one it replaces is closed once unused.
func (c *configs) swap(cfg *resolve.Config) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		c.closeOne(cfg)
		return
	}
	old := c.cur
	c.cur = &held{cfg: cfg}
	old.retired = true
	if old.users == 0 {
		c.closeOne(old.cfg)
	}
}

// close closes the config in force once its users are done.
func (c *configs) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	c.cur.retired = true
	if c.cur.users == 0 {
		c.closeOne(c.cur.cfg)
	}
}
