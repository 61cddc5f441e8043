package nss

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The membership tests run in a child of this test binary inside a private
// mount namespace whose /etc/passwd and /etc/group are bind-mounted test
// files, so NSS's "files" source answers from them (cgo and getent alike).
const childEnv = "PAMVRF_NSS_CHILD"

func TestMembershipThroughNSSFiles(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		membershipChecks(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for a private mount namespace")
	}
	dir := t.TempDir()
	passwd := "root:x:0:0:root:/root:/bin/sh\npvuser:x:4000:5000::/:/bin/sh\nlonely:x:4001:5001::/:/bin/sh\n"
	var group strings.Builder
	group.WriteString("root:x:0:\npvprimary:x:5000:\nlonelygrp:x:5001:\nother:x:5002:root\n")
	// More groups than os/user's getgrouplist cap (2048).
	for i := 1; i <= 3000; i++ {
		fmt.Fprintf(&group, "g%d:x:%d:pvuser\n", i, 6000+i)
	}
	must(t, os.WriteFile(filepath.Join(dir, "passwd"), []byte(passwd), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "group"), []byte(group.String()), 0o644))
	self, err := os.Executable()
	must(t, err)
	script := `mount --bind "$1/passwd" /etc/passwd && mount --bind "$1/group" /etc/group && shift && exec "$@"`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", dir,
		self, "-test.run", "^TestMembershipThroughNSSFiles$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestMembershipThroughNSSFiles") {
		t.Fatalf("child did not run the checks")
	}
}

func membershipChecks(t *testing.T) {
	names := []string{"pvprimary", "g2999", "g1", "other", "nosuchgroup", "lonelygrp"}
	got, err := Membership("pvuser", names, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, true, false, false, false}; !slices.Equal(got, want) {
		t.Errorf("pvuser in %q = %v, want %v", names, got, want)
	}
	got, err = Membership("lonely", names, 10*time.Second)
	if err != nil || !slices.Equal(got, []bool{false, false, false, false, false, true}) {
		t.Errorf("lonely: %v %v (primary group only)", got, err)
	}
	if _, err := Membership("nosuchuser", names, 10*time.Second); !errors.Is(err, ErrNoUser) {
		t.Errorf("unknown user: %v, want ErrNoUser", err)
	}
}

func TestMembershipIsBounded(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	old := lookup
	lookup = func(string, []string) ([]bool, error) { <-release; return nil, nil }
	defer func() { lookup = old }()
	start := time.Now()
	_, err := Membership("x", []string{"g"}, 200*time.Millisecond)
	if took := time.Since(start); !errors.Is(err, ErrTimeout) || took > 2*time.Second {
		t.Fatalf("hanging lookup: %v after %v, want ErrTimeout after ~200ms", err, took)
	}
	if !strings.Contains(err.Error(), `"x"`) || !strings.Contains(err.Error(), "200ms") {
		t.Errorf("error does not name user and bound: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
