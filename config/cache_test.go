package config

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestCache(t *testing.T) {
	d := safeDir(t)
	defer func(w time.Duration) { racyWindow = w }(racyWindow)
	racyWindow = 0 // every test file was just written; see TestCacheRacy
	path := filepath.Join(d, "p.toml")
	var c Cache

	p, err := c.Load(path)
	if err != nil || p.Exists {
		t.Fatalf("missing file: %+v, %v", p, err)
	}

	writeFile(t, path, "[user.alice]\nvrf = \"aaaa\"\n", 0o644)
	p1, err := c.Load(path)
	if err != nil || p1.Users["alice"].VRF != "aaaa" {
		t.Fatalf("first load: %+v, %v", p1, err)
	}
	if p2, err := c.Load(path); err != nil || p2 != p1 {
		t.Errorf("unchanged file re-parsed (%p != %p) or failed: %v", p2, p1, err)
	}

	// Same size, mtime put back: only ctime tells. Sleep past the coarse
	// file-time clock so that ctime really moves.
	fi, err := os.Stat(path)
	must(t, err)
	time.Sleep(20 * time.Millisecond)
	writeFile(t, path, "[user.alice]\nvrf = \"bbbb\"\n", 0o644)
	must(t, os.Chtimes(path, fi.ModTime(), fi.ModTime()))
	p3, err := c.Load(path)
	if err != nil || p3 == p1 || p3.Users["alice"].VRF != "bbbb" {
		t.Fatalf("after rewrite with the old mtime: %+v, %v (want re-parse to bbbb)", p3, err)
	}
	if p4, _ := c.Load(path); p4 != p3 {
		t.Errorf("unchanged file re-parsed after a change")
	}

	// Replaced by rename (new inode), same content.
	tmp := writeFile(t, path+".new", "[user.alice]\nvrf = \"bbbb\"\n", 0o644)
	must(t, os.Rename(tmp, path))
	if p5, err := c.Load(path); err != nil || p5 == p3 {
		t.Errorf("replaced file not re-parsed: %v", err)
	}

	// A now unsafe file is refused even though it is cached and unchanged
	// in content.
	must(t, os.Chmod(path, 0o666))
	if p, err := c.Load(path); err == nil {
		t.Errorf("cache served a world-writable file: %+v", p)
	}
	must(t, os.Chmod(path, 0o644))

	// Broken, then fixed: errors are not cached.
	writeFile(t, path, "[user.alice]\nvrf = 1\n", 0o644)
	if _, err := c.Load(path); err == nil {
		t.Errorf("broken policy loaded")
	}
	writeFile(t, path, "[user.alice]\nvrf = \"cccc\"\n", 0o644)
	if p, err := c.Load(path); err != nil || p.Users["alice"].VRF != "cccc" {
		t.Errorf("fixed policy: %+v, %v", p, err)
	}

	// Removed: no policy.
	must(t, os.Remove(path))
	if p, err := c.Load(path); err != nil || p.Exists {
		t.Errorf("removed file: %+v, %v", p, err)
	}

	// Another path is another policy.
	other := writeFile(t, filepath.Join(d, "other.toml"), "[user.alice]\nvrf = \"dddd\"\n", 0o644)
	writeFile(t, path, "[user.alice]\nvrf = \"eeee\"\n", 0o644)
	a, _ := c.Load(path)
	b, _ := c.Load(other)
	if a.Users["alice"].VRF != "eeee" || b.Users["alice"].VRF != "dddd" {
		t.Errorf("paths mixed up: %+v %+v", a, b)
	}
}

// TestCacheRacy: a policy whose ctime is within racyWindow of its parsing
// is re-read on the next call, since a second same-size write in the same
// clock tick would not change its fileID.
func TestCacheRacy(t *testing.T) {
	d := safeDir(t)
	path := writeFile(t, filepath.Join(d, "p.toml"), goodPolicy, 0o644)
	var c Cache
	p1, err := c.Load(path)
	must(t, err)
	if p2, _ := c.Load(path); p2 == p1 {
		t.Errorf("a file written just now was served from the cache")
	}
}

func TestCacheConcurrent(t *testing.T) {
	d := safeDir(t)
	path := writeFile(t, filepath.Join(d, "p.toml"), goodPolicy, 0o644)
	var c Cache
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				p, err := c.Load(path)
				if err != nil || decideVRF(p, "alice", "sshd") != "mgmt" {
					t.Errorf("concurrent load: %+v, %v", p, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
