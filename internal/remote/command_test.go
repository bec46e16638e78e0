package remote

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/napilab/napilab/internal/kernel"
)

func TestSplitCommand(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"ssh", []string{"ssh"}},
		{"  ssh   -F  cfg ", []string{"ssh", "-F", "cfg"}},
		{"ssh\t-v", []string{"ssh", "-v"}},
		{`ssh -F "/my configs/lab"`, []string{"ssh", "-F", "/my configs/lab"}},
		{`ssh -o 'ProxyCommand=nc -X 5 %h %p'`, []string{"ssh", "-o", "ProxyCommand=nc -X 5 %h %p"}},
		{`ssh -i a" b"c`, []string{"ssh", "-i", "a bc"}},
		{`ssh 'it''s'`, []string{"ssh", "it's"}},
		{`ssh "say ""hi"""`, []string{"ssh", `say "hi"`}},
		{`ssh "it's"`, []string{"ssh", "it's"}},
		{`ssh a\ b`, []string{"ssh", `a\`, "b"}}, // no backslash escapes, as in rsync
		{`ssh ''`, []string{"ssh", ""}},
	} {
		got, err := SplitCommand(c.in)
		if err != nil {
			t.Errorf("SplitCommand(%q): %v", c.in, err)
			continue
		}
		if d := cmp.Diff(c.want, got); d != "" {
			t.Errorf("SplitCommand(%q) (-want +got):\n%s", c.in, d)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"", "names no command"},
		{"   ", "names no command"},
		{`"" -v`, "names no command"},
		{`ssh "-F x`, `opens a " quote it does not close`},
		{`ssh 'x`, `opens a ' quote it does not close`},
	} {
		if _, err := SplitCommand(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SplitCommand(%q) = %v, want an error saying %q", c.in, err, c.want)
		}
	}
}

// FuzzSplitCommand: never a panic, never an empty program, and what splits without quotes joins back.
func FuzzSplitCommand(f *testing.F) {
	for _, s := range []string{"ssh", `ssh -F "a b"`, `ssh 'it''s'`, `"`, "  ", `ssh "x""y" 'z'`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args, err := SplitCommand(s)
		if err != nil {
			return
		}
		if len(args) == 0 || args[0] == "" {
			t.Fatalf("SplitCommand(%q) = %q without an error", s, args)
		}
		words := strings.FieldsFunc(s, func(r rune) bool { return r < 0x80 && isSpace(byte(r)) })
		if !strings.ContainsAny(s, `'"`) && strings.Join(args, " ") != strings.Join(words, " ") {
			t.Fatalf("SplitCommand(%q) = %q, not its words", s, args)
		}
	})
}

// TestSSHArgs pins the exact command lines napilab runs: the user's options first (ssh keeps the first value
// of an option), then napilab's, port and user, the host, "--", the remote command.
func TestSSHArgs(t *testing.T) {
	base := []string{"-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
		"-o", "ServerAliveCountMax=3", "-e", "none"}
	cat := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, c := range []struct {
		name string
		ssh  []string
		opts []string
		t    string
		want []string
	}{
		{"plain", []string{"ssh"}, nil, "ssh://lab1",
			cat([]string{"ssh"}, base, []string{"lab1", "--", "/x/napilab", "agent", "--stdio"})},
		{"user and port", []string{"ssh"}, nil, "ssh://root@127.0.0.1:2222",
			cat([]string{"ssh"}, base, []string{"-p", "2222", "-l", "root", "127.0.0.1", "--", "/x/napilab", "agent",
				"--stdio"})},
		{"ipv6 and options", []string{"ssh", "-F", "none"}, []string{"IdentityFile=/k", "Port=22"},
			"ssh://[::1]:2200", cat([]string{"ssh", "-F", "none", "-o", "IdentityFile=/k", "-o", "Port=22"}, base,
				[]string{"-p", "2200", "::1", "--", "/x/napilab", "agent", "--stdio"})},
	} {
		tg, err := ParseTarget(c.t)
		if err != nil {
			t.Fatal(err)
		}
		got := sshArgs(c.ssh, c.opts, tg, "/x/napilab", "agent", "--stdio")
		if d := cmp.Diff(c.want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, d)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	good := Options{SSH: `ssh -F "a b"`, SSHOptions: []string{"IdentityFile=/k", "Port 22"}, AgentPath: "/opt/napilab",
		CacheRoot: "/var/cache/napilab/agents"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Options{SSH: `ssh "`, SSHOptions: []string{"-v", "=x", "Port=1\nUser=x"}, AgentPath: "napilab",
		CacheRoot: "/var/cache/na pi"}
	err := bad.Validate()
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *kernel.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a field error", e)
		}
		fields = append(fields, fe.Field)
	}
	want := []string{"ssh command", "ssh option", "ssh option", "ssh option", "agent path", "cache root"}
	if d := cmp.Diff(want, fields); d != "" {
		t.Fatalf("fields (-want +got):\n%s\n%v", d, err)
	}
}

func TestGOARCH(t *testing.T) {
	for m, want := range map[string]string{"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm",
		"riscv64": "riscv64", "ppc64le": "ppc64le", "s390x": "s390x"} {
		if got, ok := GOARCH(m); !ok || got != want {
			t.Errorf("GOARCH(%q) = %q, %v, want %q", m, got, ok, want)
		}
	}
	if got, ok := GOARCH("pdp11"); ok {
		t.Errorf("GOARCH(pdp11) = %q, want unknown", got)
	}
}

// TestScriptsText pins the remote scripts: they pass through whatever login shell the host has inside single
// quotes, so they must contain none.
func TestScriptsText(t *testing.T) {
	pre := preflightScript("/var/cache/napilab/agents/ab/napilab")
	wantPre := `sh -c 'printf "napilab-preflight %s %s " "$(uname -m)" "$(id -u)"; if [ -f ` +
		`/var/cache/napilab/agents/ab/napilab ] && [ -x /var/cache/napilab/agents/ab/napilab ]; then echo present; ` +
		`else echo missing; fi'`
	if pre != wantPre {
		t.Errorf("preflight script\n got %s\nwant %s", pre, wantPre)
	}
	up := uploadScript("/var/cache/napilab/agents/ab", "ab")
	wantUp := `sh -c 'umask 077 && mkdir -p /var/cache/napilab/agents/ab && ` +
		`t=$(mktemp /var/cache/napilab/agents/ab/.upload.XXXXXX) && trap "rm -f \$t" EXIT && cat >"$t" && ` +
		`s=$(sha256sum <"$t") && s=${s%% *} && if [ "$s" = ab ]; then chmod 700 "$t" && ` +
		`mv -f "$t" /var/cache/napilab/agents/ab/napilab && echo napilab-upload ok; ` +
		`else echo napilab-upload mismatch "$s"; fi'`
	if up != wantUp {
		t.Errorf("upload script\n got %s\nwant %s", up, wantUp)
	}
	for _, s := range []string{pre, up} {
		inner := strings.TrimSuffix(strings.TrimPrefix(s, "sh -c '"), "'")
		if strings.Contains(inner, "'") {
			t.Errorf("a single quote inside %s", s)
		}
	}
}

// TestScriptsRun runs the scripts through a shell, as a remote login shell would, against a cache in a temp
// dir: missing, a corrupted copy refused and removed, a good copy in place and private, then present.
func TestScriptsRun(t *testing.T) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("no sha256sum here (coreutils)")
	}
	run := func(script string, stdin []byte) string {
		t.Helper()
		cmd := exec.Command("sh", "-c", script)
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		return string(out)
	}
	exe := []byte("\x7fELF pretend executable\n")
	sum := fileSum(t, exe)
	dir := filepath.Join(t.TempDir(), "agents", sum)
	path := dir + "/napilab"

	p, noise, err := parsePreflight(run(preflightScript(path), nil))
	if err != nil || noise != "" || p.present || p.machine == "" {
		t.Fatalf("preflight before = %+v, %q, %v", p, noise, err)
	}
	mismatch, _, err := parseUpload(run(uploadScript(dir, sum), []byte("cut off")))
	if err != nil || mismatch == "" || mismatch == sum {
		t.Fatalf("a corrupted upload = %q, %v", mismatch, err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("a corrupted upload left %v", left)
	}
	mismatch, _, err = parseUpload(run(uploadScript(dir, sum), exe))
	if err != nil || mismatch != "" {
		t.Fatalf("upload = %q, %v", mismatch, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("the copy: %v, %v", st.Mode(), err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("the cache dir is %v, want 0700", st.Mode())
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Fatalf("the cache dir holds %v, want napilab alone", left)
	}
	if p, _, _ := parsePreflight(run(preflightScript(path), nil)); !p.present {
		t.Fatal("preflight after the upload does not find the copy")
	}
}

func fileSum(t *testing.T, b []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, sum, err := Options{Executable: f}.self()
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func TestParsePreflight(t *testing.T) {
	for _, c := range []struct {
		out   string
		want  preflight
		noise string
		err   string
	}{
		{"napilab-preflight x86_64 0 present\n", preflight{"x86_64", 0, true}, "", ""},
		{"napilab-preflight aarch64 1000 missing\r\n", preflight{"aarch64", 1000, false}, "", ""},
		{"Welcome to lab1\n\nnapilab-preflight x86_64 0 missing\nbye\n", preflight{"x86_64", 0, false},
			"Welcome to lab1\nbye", ""},
		{"motd only\n", preflight{}, "motd only", "no answer"},
		{"napilab-preflight x86_64 root present\n", preflight{}, "", "does not understand"},
		{"", preflight{}, "", "no answer"},
	} {
		p, noise, err := parsePreflight(c.out)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || noise != c.noise {
				t.Errorf("parsePreflight(%q) = %v, %q, want %q", c.out, err, noise, c.err)
			}
			continue
		}
		if err != nil || p != c.want || noise != c.noise {
			t.Errorf("parsePreflight(%q) = %+v, %q, %v", c.out, p, noise, err)
		}
	}
}

func TestParseUpload(t *testing.T) {
	if m, n, err := parseUpload("napilab-upload ok\n"); m != "" || n != "" || err != nil {
		t.Errorf("ok: %q %q %v", m, n, err)
	}
	if m, _, err := parseUpload("napilab-upload mismatch 1234\n"); m != "1234" || err != nil {
		t.Errorf("mismatch: %q %v", m, err)
	}
	if _, n, err := parseUpload("hi\nnapilab-upload ok\n"); n != "hi" || err != nil {
		t.Errorf("noise: %q %v", n, err)
	}
	if _, _, err := parseUpload(""); err == nil {
		t.Error("no answer accepted")
	}
}

// TestLineWriter: whole lines, each prefixed and written at once, however the child's writes fall.
func TestLineWriter(t *testing.T) {
	var out writes
	l := newLineWriter("server root@lab1", &out)
	for _, p := range []string{"ssh: conn", "ect to host lab1\r\n", "\nline two\nlin", "e three"} {
		if n, err := l.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	l.Flush()
	want := []string{"server root@lab1: ssh: connect to host lab1\n", "server root@lab1: \n",
		"server root@lab1: line two\n", "server root@lab1: line three\n"}
	if d := cmp.Diff(want, []string(out)); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if l.Last() != "line three" {
		t.Fatalf("Last = %q", l.Last())
	}
	out = nil
	l.Write(bytes.Repeat([]byte("x"), 2*maxStderrLine+5))
	if len(out) != 2 || len(out[0]) != len("server root@lab1: ")+maxStderrLine+1 {
		t.Fatalf("a line without end: %d writes", len(out))
	}
}

// writes records each Write.
type writes []string

func (w *writes) Write(p []byte) (int, error) {
	*w = append(*w, string(p))
	return len(p), nil
}

// TestCheckStatic: an executable that names a dynamic loader and a file that is not ELF are refused with the fix;
// a static one passes. The ELF files are made here, so that the test means the same on every machine (the qemu
// lab's /bin/sh is static).
func TestCheckStatic(t *testing.T) {
	dir := t.TempDir()
	dynamic, static := filepath.Join(dir, "dynamic"), filepath.Join(dir, "static")
	writeELF(t, dynamic, elf.PT_INTERP, "/lib64/ld-linux-x86-64.so.2\x00")
	writeELF(t, static, elf.PT_LOAD, "")
	if err := CheckStatic(dynamic); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0, e.g. make build") ||
		!strings.Contains(err.Error(), "linked dynamically (it needs /lib64/ld-linux-x86-64.so.2)") {
		t.Errorf("CheckStatic(dynamic) = %v", err)
	}
	if err := CheckStatic(static); err != nil {
		t.Errorf("CheckStatic(static) = %v", err)
	}
	script := filepath.Join(dir, "napilab")
	os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755)
	if err := CheckStatic(script); err == nil || !strings.Contains(err.Error(), "not a Linux executable") {
		t.Errorf("CheckStatic(script) = %v", err)
	}
}

// writeELF writes a 64-bit ELF executable header with one program header of type pt whose contents are data.
func writeELF(t *testing.T, path string, pt elf.ProgType, data string) {
	t.Helper()
	const ehsize, phsize = 64, 56
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Phoff: ehsize, Ehsize: ehsize, Phentsize: phsize, Phnum: 1, Shentsize: 64}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64),
		byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	p := elf.Prog64{Type: uint32(pt), Flags: uint32(elf.PF_R), Off: ehsize + phsize, Filesz: uint64(len(data)),
		Memsz: uint64(len(data)), Align: 1}
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, h)
	binary.Write(&b, binary.LittleEndian, p)
	b.WriteString(data)
	if err := os.WriteFile(path, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
}
