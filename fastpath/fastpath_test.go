package fastpath

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pam-vrf/pam-vrf/config"
)

func TestPolicyTable(t *testing.T) {
	p, err := config.Parse("/etc/p.toml", []byte(`default = "mgmt"
services = ["sshd", "su"]
[user.root]
vrf = ""
[user.alice]
vrf = "blue"
services = ["sshd"]
[group.ops]
vrf = "mgmt"
services = ["su"]
`))
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour).UnixNano()
	p.File = config.FileID{Dev: 1, Ino: 2, Size: 3, Mtime: old, Ctime: old}
	want := "pam_vrf-fastpath 2\n" +
		"policy 1 2 3 " + itoa(old) + " " + itoa(old) + "\n" +
		"cgroup2 /sys/fs/cgroup\n" +
		"services sshd su\n" +
		"nss-timeout 5000\n" +
		"default mgmt 1\n" +
		"user alice blue 5 sshd\n" +
		"user root - 3 *\n" +
		"group ops mgmt 8 su\n"
	if got := PolicyTable(p, "/sys/fs/cgroup"); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	// A file changed within the racy window, a name with a space, a marker
	// as a name: no table (the C part hands over).
	p.File.Ctime = time.Now().UnixNano()
	if PolicyTable(p, "/sys/fs/cgroup") != "" {
		t.Errorf("table for a file changed just now")
	}
	p.File.Ctime = old
	for _, bad := range []string{"[user.\"a b\"]\nvrf = \"x\"\n", "[user.\"-\"]\nvrf = \"x\"\n", "[group.g]\nvrf = \"x\"\nservices = [\"*\"]\n"} {
		q, err := config.Parse("/p", []byte(bad))
		if err != nil {
			t.Fatal(err)
		}
		q.File = p.File
		if got := PolicyTable(q, "/sys/fs/cgroup"); got != "" {
			t.Errorf("%q: table %q, want none", bad, got)
		}
	}
	if PolicyTable(&config.Policy{Path: "/x"}, "/sys/fs/cgroup") != "" {
		t.Errorf("table for a missing policy")
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func TestPutIsAtomicAndIdempotent(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "sub", "policy-x")
	if err := Put(f, "a\n"); err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(f)
	if err := Put(f, "a\n"); err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(f)
	if !os.SameFile(st1, st2) || st1.Mode().Perm() != 0o644 {
		t.Errorf("unchanged content rewritten, or mode %v", st1.Mode())
	}
	if err := Put(f, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f); !os.IsNotExist(err) {
		t.Errorf("empty content did not remove the file")
	}
	entries, _ := os.ReadDir(filepath.Dir(f))
	if len(entries) != 0 {
		t.Errorf("temp files left: %v", entries)
	}
}
