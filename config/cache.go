package config

import (
	"sync"
	"syscall"
	"time"
)

// Cache keeps the last policy Load parsed, so that a process serving many
// logins does not re-parse an unchanged file. Every call still opens the
// file and runs all of Load's safety checks (on the fstat of the opened
// descriptor, which is cheap); only reading and parsing are skipped while the
// file's identity and times are unchanged. The zero value is ready to use and
// safe for concurrent use.
type Cache struct {
	mu     sync.Mutex
	path   string
	id     FileID
	policy *Policy
	racy   bool // the file changed too recently to trust id; see racyWindow
}

// racyWindow: file times come from a coarse clock (a few ms per tick), so
// a second write in the tick of the first leaves every field of fileID as
// it was if the size is unchanged. A policy whose ctime is this close to the
// moment it was parsed is therefore not trusted from the cache (git's "racy
// clean" rule). A variable so that tests can shorten it.
var racyWindow = 2 * time.Second

// FileID changes whenever the file is replaced (Dev, Ino) or written (Size,
// Mtime, and Ctime, which even a write that restores mtime cannot hide).
type FileID struct {
	Dev, Ino     uint64
	Size         int64
	Mtime, Ctime int64 // nanoseconds
}

func idOf(st *syscall.Stat_t) FileID {
	return FileID{
		Dev:   st.Dev,
		Ino:   st.Ino,
		Size:  st.Size,
		Mtime: st.Mtim.Nano(),
		Ctime: st.Ctim.Nano(),
	}
}

// Settled reports whether the file's last change is old enough for its
// FileID to identify its content (see racyWindow).
func (id FileID) Settled() bool {
	return time.Since(time.Unix(0, id.Ctime)) >= racyWindow
}

// Load is like the package's Load but returns the cached Policy while the
// file is unchanged. The returned Policy is shared: treat it as read-only.
// Errors are never cached.
func (c *Cache) Load(path string) (*Policy, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, st, err := openPolicy(path)
	if err != nil || f == nil {
		c.policy = nil
		if err != nil {
			return nil, err
		}
		return &Policy{Path: path}, nil
	}
	defer f.Close()
	id := idOf(st)
	if c.policy != nil && !c.racy && c.path == path && c.id == id {
		return c.policy, nil
	}
	c.policy = nil
	data, err := readPolicy(path, f)
	if err != nil {
		return nil, err
	}
	pol, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	pol.File = id
	c.path, c.id, c.policy = path, id, pol
	c.racy = !id.Settled()
	return pol, nil
}
