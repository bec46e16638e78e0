package remote

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/napilab/napilab/internal/agent"
	"github.com/napilab/napilab/internal/kernel"
)

// DefaultCacheRoot is where an ssh end keeps the copies of napilab it ran, one directory per sha256.
const DefaultCacheRoot = "/var/cache/napilab/agents"

// Options tune how an end's agent is started. The zero value starts this napilab, copied to ssh ends when it
// is not there yet.
type Options struct {
	// SSH is the ssh command (--ssh), split as rsync splits -e; "" is "ssh". It replaces only the program and
	// its own arguments: napilab still adds its options, the host and the agent's command line.
	SSH string
	// SSHOptions are ssh_config options (--ssh-option), KEY=VALUE each, given as -o before napilab's own so
	// that they win over them.
	SSHOptions []string
	// AgentPath runs a napilab already installed on the end instead of copying this one there; hello then
	// refuses it unless it is the same version.
	AgentPath string
	// CacheRoot is where ssh ends keep their copies; default DefaultCacheRoot. Tests point it elsewhere.
	CacheRoot string
	// Executable is the napilab to run on local ends and to copy to ssh ends; default this process's own.
	Executable string
	// Name prefixes the lines of the agent's (and ssh's) error output; default the target's Where.
	Name string
	// Stderr receives that output; default os.Stderr.
	Stderr io.Writer
}

// Validate returns every problem with o, one kernel.FieldError each ("ssh command", "ssh option", "agent
// path", "cache root"), joined; each command line maps the fields to its flags.
func (o Options) Validate() error {
	var errs []error
	if o.SSH != "" {
		if _, err := SplitCommand(o.SSH); err != nil {
			errs = append(errs, &kernel.FieldError{Field: "ssh command", Msg: err.Error()})
		}
	}
	for _, so := range o.SSHOptions {
		errs = append(errs, checkSSHOption(so))
	}
	if o.AgentPath != "" {
		errs = append(errs, checkRemotePath("agent path", o.AgentPath))
	}
	if o.CacheRoot != "" {
		errs = append(errs, checkRemotePath("cache root", o.CacheRoot))
	}
	return errors.Join(errs...)
}

// output is the prefix and the destination of an end's error output.
func (o Options) output(t Target) (string, io.Writer) {
	name, w := o.Name, o.Stderr
	if name == "" {
		name = t.Where()
	}
	if w == nil {
		w = os.Stderr
	}
	return name, w
}

func (o Options) sshCommand() []string {
	if o.SSH == "" {
		return []string{"ssh"}
	}
	argv, _ := SplitCommand(o.SSH) // Validate checked it
	return argv
}

// self is the napilab to run or copy, and its sha256.
func (o Options) self() (path, sum string, err error) {
	if o.Executable == "" {
		return agent.Self()
	}
	f, err := os.Open(o.Executable)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", "", err
	}
	return o.Executable, hex.EncodeToString(h.Sum(nil)), nil
}

// Deployment says where an end's agent runs from and how it got there.
type Deployment struct {
	Path     string        `json:"path"`             // the agent's executable on the end
	SHA256   string        `json:"sha256,omitempty"` // of the copy; "" for an agent path
	Uploaded bool          `json:"uploaded"`         // this start copied napilab there
	Bytes    int64         `json:"bytes,omitzero"`   // copied
	Took     time.Duration `json:"took_ns"`          // the check of the host and the copy
}

// Start starts the agent of an end and returns the stream to agent.Dial over. Local and netns ends run this
// napilab as `napilab agent --stdio` (the namespace is named later, in hello: the agent itself stays where the
// machine-wide sysctls live); ssh ends run it through the system's ssh after Deploy made sure it is there. From
// the protocol up, every end is the same.
func Start(ctx context.Context, t Target, o Options) (*Agent, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var argv []string
	var d Deployment
	switch t.Kind {
	case Local, NetNS:
		d.Path = o.AgentPath
		if d.Path == "" {
			exe, _, err := o.self()
			if err != nil {
				return nil, fmt.Errorf("find napilab's own executable: %w", err)
			}
			d.Path = exe
		}
		argv = []string{d.Path, "agent", "--stdio"}
	case SSH:
		var err error
		if d, err = Deploy(ctx, t, o); err != nil {
			return nil, err
		}
		argv = sshArgs(o.sshCommand(), o.SSHOptions, t, d.Path, "agent", "--stdio")
	default:
		return nil, fmt.Errorf("an end of unknown kind %d: parse it with ParseTarget", t.Kind)
	}
	name, stderr := o.output(t)
	a, err := startProcess(argv, name, stderr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Where(), err)
	}
	a.Target, a.Deployment = t, d
	return a, nil
}

// Deploy makes sure an ssh end can run the agent and returns where it runs from. One ssh round trip checks
// the host: that the session is root's, its architecture, and whether the agent is there. The agent is
// content-addressed, CacheRoot/<sha256>/napilab, so a copy that is there is exactly this napilab and nothing
// needs comparing; when it is missing, this executable (which must be static) is streamed over ssh's
// standard input, checked against its sha256 there and renamed into place. With an agent path nothing is
// copied.
func Deploy(ctx context.Context, t Target, o Options) (Deployment, error) {
	if t.Kind != SSH {
		return Deployment{}, fmt.Errorf("%s is not an ssh end: only those need napilab copied", t)
	}
	if err := o.Validate(); err != nil {
		return Deployment{}, err
	}
	start := time.Now()
	where := t.Where()
	d := Deployment{Path: o.AgentPath}
	var exe, dir string
	if d.Path == "" {
		var err error
		if exe, d.SHA256, err = o.self(); err != nil {
			return Deployment{}, fmt.Errorf("find napilab's own executable: %w", err)
		}
		root := o.CacheRoot
		if root == "" {
			root = DefaultCacheRoot
		}
		dir = root + "/" + d.SHA256
		d.Path = dir + "/napilab"
	}
	out, err := o.ssh(ctx, t, nil, preflightScript(d.Path))
	if err != nil {
		return Deployment{}, fmt.Errorf("%s: check the host: %w", where, err)
	}
	p, noise, err := parsePreflight(out)
	switch {
	case noise != "":
		return Deployment{}, agent.ShellPrinted(where, noise)
	case err != nil:
		return Deployment{}, fmt.Errorf("%s: check the host: %w", where, err)
	case p.uid != 0:
		return Deployment{}, fmt.Errorf("%s: napilab's agent changes NIC settings and needs root there, but the "+
			"session runs as uid %d: connect as root (ssh://root@%s, or User root in ~/.ssh/config)", where,
			p.uid, t.Host)
	case o.AgentPath != "" && !p.present:
		return Deployment{}, fmt.Errorf("%s: the agent path %s is not an executable file there: install napilab "+
			"at that path, or leave --agent-path out to let napilab copy itself", where, o.AgentPath)
	case o.AgentPath != "":
		d.Took = time.Since(start)
		return d, nil
	}
	if goarch, ok := GOARCH(p.machine); !ok || goarch != runtime.GOARCH {
		return Deployment{}, fmt.Errorf("%s is a %s machine and this napilab is built for %s: build one for it "+
			"(GOARCH=%s CGO_ENABLED=0 go build ./cmd/napilab), install it there and pass --agent-path", where,
			p.machine, runtime.GOARCH, orUnknown(goarch))
	}
	if !p.present {
		if d.Bytes, err = o.upload(ctx, t, exe, dir, d.SHA256); err != nil {
			return Deployment{}, err
		}
		d.Uploaded = true
	}
	d.Took = time.Since(start)
	return d, nil
}

func orUnknown(goarch string) string {
	if goarch == "" {
		return "its architecture"
	}
	return goarch
}

// upload copies exe to dir/napilab on t's host.
func (o Options) upload(ctx context.Context, t Target, exe, dir, sum string) (int64, error) {
	where := t.Where()
	if err := CheckStatic(exe); err != nil {
		return 0, err
	}
	f, err := os.Open(exe)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	out, err := o.ssh(ctx, t, f, uploadScript(dir, sum))
	if err != nil {
		return 0, fmt.Errorf("%s: copy napilab to %s: %w", where, dir, err)
	}
	mismatch, noise, err := parseUpload(out)
	switch {
	case noise != "":
		return 0, agent.ShellPrinted(where, noise)
	case err != nil:
		return 0, fmt.Errorf("%s: copy napilab to %s: %w", where, dir, err)
	case mismatch != "":
		return 0, fmt.Errorf("%s: the copy of napilab arrived with sha256 %s instead of %s and was removed: the "+
			"transfer was corrupted or cut; run again", where, mismatch, sum)
	}
	return st.Size(), nil
}

// CheckStatic refuses an executable that cannot run on another host as it is: one that is not a Linux ELF
// file, or that names a dynamic loader (PT_INTERP), i.e. was linked against a C library that host may not
// have in the same version.
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s is not a Linux executable (%v): napilab copies only a Linux build of itself; "+
			"install napilab on the end and pass --agent-path", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		interp, _ := io.ReadAll(io.LimitReader(p.Open(), 4096))
		return fmt.Errorf("%s is linked dynamically (it needs %s) and may not run on another host: build napilab "+
			"with CGO_ENABLED=0, e.g. make build", path, strings.TrimRight(string(interp), "\x00"))
	}
	return nil
}

// maxAnswer bounds what is kept of a remote command's output: the answers are one line, and a noisy shell
// is quoted from its start.
const maxAnswer = 64 << 10

// ssh runs script on t's host with stdin as its input and returns its output. ssh's error output goes to
// o.Stderr, prefixed, as the agent's does; a failure names ssh's last word on it.
func (o Options) ssh(ctx context.Context, t Target, stdin io.Reader, script string) (string, error) {
	lw := newLineWriter(o.output(t))
	out := &capped{max: maxAnswer}
	cmd := command(ctx, sshArgs(o.sshCommand(), o.SSHOptions, t, script), lw)
	cmd.Stdin, cmd.Stdout = stdin, out
	err := cmd.Run()
	lw.Flush()
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		return out.String(), nil
	}
	if ctx.Err() != nil {
		return "", context.Cause(ctx)
	}
	return "", sshError(cmd.Args[0], t, err, lw.Last())
}

// sshError explains a failed ssh run: exit status 255 is ssh's own failure (connection, authentication, host
// key); anything else is the remote command's.
func sshError(prog string, t Target, err error, last string) error {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return fmt.Errorf("run %s: %w", prog, err)
	}
	why := exit.String()
	if last != "" {
		why += ": " + last
	}
	if exit.ExitCode() == 255 {
		return fmt.Errorf("ssh failed (%s): check that `%s true` works without a prompt (napilab runs ssh "+
			"with BatchMode=yes)", why, sshHint(t))
	}
	return fmt.Errorf("the command failed there (%s)", why)
}

// sshHint is the plain ssh command line that reaches t, for a user to try.
func sshHint(t Target) string {
	s := "ssh"
	if t.Port != 0 {
		s += " -p " + strconv.Itoa(t.Port)
	}
	if t.User != "" {
		s += " -l " + t.User
	}
	return s + " " + t.Host
}

// capped keeps the first max bytes written to it and takes the rest without keeping it.
type capped struct {
	max int
	b   strings.Builder
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.b.Len(); room > 0 {
		c.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (c *capped) String() string { return c.b.String() }
