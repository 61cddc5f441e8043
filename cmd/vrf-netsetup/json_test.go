package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pam-vrf/pam-vrf/netsetup"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemaValid checks one JSON document against docs/schema/<name> and
// decodes it into T with unknown fields refused.
func schemaValid[T any](t *testing.T, name string, data []byte) *T {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile(filepath.Join("..", "..", "docs", "schema", name))
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, data)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("%s does not describe the output: %#v\n%s", name, err, data)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var v T
	if err := dec.Decode(&v); err != nil {
		t.Errorf("decode %s: %v", name, err)
	}
	return &v
}

// Usage errors stay exit 2 with --json too, and print no JSON: nothing was
// read or changed, so there is no result to report. --exit-changed and
// --metrics-file belong to their commands.
func TestJSONUsageErrors(t *testing.T) {
	root := t.TempDir()
	for _, args := range [][]string{
		{"apply", "--root", root, "--iface", "eth0", "--table", "x", "--json"},
		{"apply", "--root", root, "--json"},
		{"revert", "--root", root, "--json", "--bogus"},
		{"check", "--root", root, "--iface", "eth0", "--exit-changed"},
		{"apply", "--root", root, "--iface", "eth0", "--metrics-file", root + "/x.prom"},
		{"check", "--root", root, "--iface", "eth0", "--metrics-file="},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != ExitUsage || out.Len() != 0 || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out.String(), errb.String())
		}
	}
}

// check --json and --metrics-file against this host (a fake root, the
// host's network: no VRF here, so a broken host): exit 1, one JSON
// document valid against the schema and the same checks as the text
// output; the metrics file has one gauge per check with the same verdict,
// and promtool accepts it.
func TestCheckJSONAndMetricsFile(t *testing.T) {
	root, dir := t.TempDir(), t.TempDir()
	prom := filepath.Join(dir, "pam-vrf.prom")
	var text, errb bytes.Buffer
	if code := run([]string{"check", "--root", root, "--iface", "lo"}, &text, &errb); code != ExitFailed || errb.Len() != 0 {
		t.Fatalf("check: exit %d, stderr %q", code, errb.String())
	}
	var out bytes.Buffer
	code := run([]string{"check", "--root", root, "--iface", "lo", "--json", "--metrics-file", prom}, &out, &errb)
	if code != ExitFailed || errb.Len() != 0 {
		t.Fatalf("check --json: exit %d, stderr %q", code, errb.String())
	}
	rep := schemaValid[netsetup.CheckReport](t, "vrf-netsetup-check.schema.json", out.Bytes())
	if rep.OK || rep.Failed == 0 || rep.Passed+rep.Failed != len(rep.Checks) || rep.Config.Iface != "lo" || rep.Config.VRF != "mgmt" {
		t.Errorf("report: %+v", rep)
	}
	lines := strings.Split(strings.TrimSpace(text.String()), "\n")
	if len(lines) != len(rep.Checks) {
		t.Errorf("text has %d lines, JSON %d checks", len(lines), len(rep.Checks))
	}
	for i, c := range rep.Checks {
		if i < len(lines) && !strings.HasPrefix(lines[i], map[bool]string{true: "ok   ", false: "FAIL "}[c.OK]+c.Name+": ") {
			t.Errorf("text line %d %q, JSON %+v", i, lines[i], c)
		}
	}

	m, err := os.ReadFile(prom)
	if err != nil {
		t.Fatal(err)
	}
	gauge := regexp.MustCompile(`(?m)^pam_vrf_check_ok\{check="([^"]*)",vrf="mgmt"\} ([01])$`)
	got := gauge.FindAllStringSubmatch(string(m), -1)
	if len(got) != len(rep.Checks) {
		t.Fatalf("%d gauges for %d checks:\n%s", len(got), len(rep.Checks), m)
	}
	for i, g := range got {
		if c := rep.Checks[i]; g[1] != c.Name || (g[2] == "1") != c.OK {
			t.Errorf("gauge %q=%s, check %+v", g[1], g[2], c)
		}
	}
	if !regexp.MustCompile(`(?m)^pam_vrf_check_last_run_timestamp_seconds\{vrf="mgmt"\} \d{10}$`).Match(m) ||
		!strings.Contains(string(m), "pam_vrf_check_run_ok{vrf=\"mgmt\"} 1\n") {
		t.Errorf("metrics:\n%s", m)
	}
	promtool(t, prom)

	// a directory that does not exist: exit 1, the JSON still printed
	out.Reset()
	errb.Reset()
	code = run([]string{"check", "--root", root, "--iface", "lo", "--json", "--metrics-file", filepath.Join(dir, "no", "x.prom")}, &out, &errb)
	if code != ExitFailed || !strings.Contains(errb.String(), "does not exist") {
		t.Errorf("missing directory: exit %d, stderr %q", code, errb.String())
	}
	schemaValid[netsetup.CheckReport](t, "vrf-netsetup-check.schema.json", out.Bytes())
}

func promtool(t *testing.T, file string) {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Errorf("promtool not found: install Debian's prometheus package (scripts/install-deps.sh test)")
		return
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(p, "check", "metrics")
	cmd.Stdin = f
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics %s: %v\n%s", file, err, out)
	}
}

// revert and confirm with nothing to act on: exit 1 with the error in the
// JSON (and on stderr); revert --if-unconfirmed without a try is a success
// that changed nothing, so --exit-changed still exits 0.
func TestRevertConfirmJSON(t *testing.T) {
	root := t.TempDir()
	for _, c := range []struct {
		args  []string
		code  int
		error string
	}{
		{[]string{"revert", "--root", root, "--json"}, ExitFailed, "no backup"},
		{[]string{"revert", "--root", root, "--json", "--dry-run", "--exit-changed"}, ExitFailed, "no backup"},
		{[]string{"confirm", "--root", root, "--json", "--exit-changed"}, ExitFailed, "no try to confirm"},
		{[]string{"revert", "--root", root, "--json", "--if-unconfirmed", "--exit-changed"}, ExitOK, ""},
	} {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		rep := schemaValid[netsetup.Report](t, "vrf-netsetup-result.schema.json", out.Bytes())
		if code != c.code || rep.Changed || rep.OK != (c.code == ExitOK) || !strings.Contains(rep.Error, c.error) ||
			!strings.Contains(errb.String(), c.error) || rep.Command != c.args[0] {
			t.Errorf("%v: exit %d, %+v, stderr %q", c.args, code, rep, errb.String())
		}
	}
}

// apply in a throw-away network namespace (eth0 a veth with an address and
// a default route) on a fake root, through the binary: the dry run's plan
// as JSON, --exit-changed's 3 for "would change", and a failing apply
// (this host has no VRF driver) as JSON whose steps say what was undone.
func TestApplyJSONAndExitCodes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespace)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	bin := filepath.Join(t.TempDir(), "vrf-netsetup")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	root := t.TempDir()
	if err := os.MkdirAll(root+"/etc", 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(root+"/etc/resolv.conf", "nameserver 192.0.2.1\n")
	// one netns for all the commands, so the sysctls they read are the
	// namespace's own
	script := `set -e
ip link add eth0 type veth peer name peer0
ip link set eth0 up; ip link set peer0 up; ip link set lo up
ip addr add 192.0.2.10/24 dev eth0
ip route add default via 192.0.2.1
run() { set +e; "$@" >"$OUT.$n" 2>"$OUT.$n.err"; echo $? >"$OUT.$n.rc"; n=$((n+1)); set -e; }
n=0
run "$BIN" apply --root "$ROOT" --iface eth0 --dry-run --json
run "$BIN" apply --root "$ROOT" --iface eth0 --dry-run --exit-changed
run "$BIN" apply --root "$ROOT" --iface eth0 --dry-run
run "$BIN" apply --root "$ROOT" --iface eth0 --json --exit-changed
run "$BIN" apply --root "$ROOT" --iface eth9 --json
`
	outp := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command("unshare", "-n", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "BIN="+bin, "ROOT="+root, "OUT="+outp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("netns script: %v\n%s", err, out)
	}
	res := func(n int) (int, []byte, string) {
		out, _ := os.ReadFile(outp + "." + itoa(n))
		errb, _ := os.ReadFile(outp + "." + itoa(n) + ".err")
		rc, _ := os.ReadFile(outp + "." + itoa(n) + ".rc")
		code := -1
		json.Unmarshal(bytes.TrimSpace(rc), &code)
		return code, out, string(errb)
	}

	code, out, _ := res(0)
	rep := schemaValid[netsetup.Report](t, "vrf-netsetup-result.schema.json", out)
	if code != ExitOK || !rep.OK || !rep.Changed || !rep.DryRun || len(rep.Steps) < 10 || rep.Config.Iface != "eth0" {
		t.Errorf("dry run: exit %d %+v", code, rep)
	}
	ids := map[string]bool{}
	for _, s := range rep.Steps {
		ids[s.ID] = true
	}
	for _, id := range []string{"backup", "vrf-create", "enslave", "rule-l3mdev-v4", "sysctl-net.ipv4.tcp_l3mdev_accept"} {
		if !ids[id] {
			t.Errorf("dry run plan lacks step %s", id)
		}
	}
	if code, out, _ := res(1); code != ExitChanged || !bytes.Contains(out, []byte("dry run: nothing changed")) {
		t.Errorf("dry run --exit-changed: exit %d\n%s", code, out)
	}
	if code, _, _ := res(2); code != ExitOK {
		t.Errorf("dry run without --exit-changed: exit %d (must stay 0)", code)
	}

	code, out, errs := res(3)
	rep = schemaValid[netsetup.Report](t, "vrf-netsetup-result.schema.json", out)
	if rep.OK {
		// a host with vrf.ko: the apply went through in the namespace
		if code != ExitChanged || !rep.Changed {
			t.Errorf("apply: exit %d %+v", code, rep)
		}
	} else {
		st := map[string]string{}
		for _, s := range rep.Steps {
			st[s.ID] = s.Status
		}
		if code != ExitFailed || rep.Changed || st["backup"] != netsetup.StepUndone || st["module-vrf"] != netsetup.StepFailed ||
			st["vrf-create"] != netsetup.StepPlanned || !strings.Contains(errs, rep.Error) {
			t.Errorf("failed apply: exit %d, stderr %q, %+v", code, errs, rep)
		}
		if _, err := os.Stat(root + netsetup.BackupPath); err == nil {
			t.Errorf("the rolled-back apply left %s", netsetup.BackupPath)
		}
	}

	code, out, _ = res(4)
	rep = schemaValid[netsetup.Report](t, "vrf-netsetup-result.schema.json", out)
	if code != ExitFailed || rep.OK || rep.Changed || len(rep.Steps) != 0 || !strings.Contains(rep.Error, "eth9 does not exist") {
		t.Errorf("missing iface: exit %d %+v", code, rep)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
