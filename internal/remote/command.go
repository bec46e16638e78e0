package remote

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/napilab/napilab/internal/kernel"
)

// SplitCommand splits a command the way rsync splits its -e (--rsh) option: on spaces, with single or double
// quotes keeping spaces inside an argument, a doubled quote inside quotes standing for the quote itself, and no
// backslash escapes. `--ssh "ssh -F ~/.ssh/lab_config"` thus behaves as it does for rsync.
func SplitCommand(s string) ([]string, error) {
	var (
		args  []string
		cur   strings.Builder
		inArg bool
		quote byte
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote && i+1 < len(s) && s[i+1] == quote:
			cur.WriteByte(c)
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '\'' || c == '"':
			quote, inArg = c, true
		case isSpace(c):
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("%q opens a %c quote it does not close: close it, or leave it out", s, quote)
	}
	if inArg {
		args = append(args, cur.String())
	}
	if len(args) == 0 || args[0] == "" {
		return nil, fmt.Errorf("%q names no command: give the ssh command to run, e.g. \"ssh -F ~/.ssh/lab_config\"", s)
	}
	return args, nil
}

// isSpace says what separates arguments: rsync asks for spaces; tabs and line breaks from a pasted
// command line count too.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// The ssh options napilab always sets, after the user's (ssh takes the first value it is given for an option,
// so a --ssh-option of the same name wins): no tty and no escape character, because the session carries a
// protocol; no password or passphrase prompt, because nobody may be there to answer; a bounded connect; and
// keepalives, so that a silent network ends the session within ServerAliveInterval × ServerAliveCountMax and
// the agent restores.
var sshDefaults = []string{"-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5",
	"-o", "ServerAliveCountMax=3", "-e", "none"}

// sshArgs is the command line that runs remote (words joined by ssh with spaces, run by the login shell there)
// on t's host.
func sshArgs(ssh []string, opts []string, t Target, remote ...string) []string {
	argv := slices.Clone(ssh)
	for _, o := range opts {
		argv = append(argv, "-o", o)
	}
	argv = append(argv, sshDefaults...)
	if t.Port != 0 {
		argv = append(argv, "-p", strconv.Itoa(t.Port))
	}
	if t.User != "" {
		argv = append(argv, "-l", t.User)
	}
	// "--" ends ssh's options: it reads options after the host too, and the remote command has its own.
	argv = append(argv, t.Host, "--")
	return append(argv, remote...)
}

// checkSSHOption accepts what ssh -o takes, KEY=VALUE or "KEY VALUE".
func checkSSHOption(o string) error {
	key, _, ok := strings.Cut(strings.Replace(o, " ", "=", 1), "=")
	if !ok || key == "" || !allOf(key, func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }) {
		return kernel.Fieldf("ssh option", "%q is not KEY=VALUE: give an ssh_config option, e.g. "+
			"IdentityFile=~/.ssh/lab", o)
	}
	if strings.ContainsAny(o, "\n\r\x00") {
		return kernel.Fieldf("ssh option", "%q has a line break: give one option per --ssh-option", o)
	}
	return nil
}

// checkRemotePath accepts a path that goes into a remote shell command as it is: absolute, clean, and made of
// characters no shell treats specially, so that no quoting can go wrong on a shell napilab does not know.
func checkRemotePath(field, p string) error {
	ok := func(c byte) bool { return isNameByte(c) || c == '/' || c == '+' }
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || !allOf(p, ok) {
		return kernel.Fieldf(field, "%q must be an absolute, clean path of letters, digits and . _ - + /", p)
	}
	return nil
}

// shellWord is s as one argument for `sh -c`: the scripts here are written without single quotes, which
// would end the quoting (a test checks), and the paths in them pass checkRemotePath.
func shellWord(s string) string { return "'" + s + "'" }

// The markers that start the deployment's answers, so that they are told apart from what a noisy login shell
// prints.
const (
	markPreflight = "napilab-preflight"
	markUpload    = "napilab-upload"
)

// preflightScript answers, in one round trip, the three questions the deployment asks of a host: its machine
// architecture, whether the session is root's, and whether the agent at path is there and executable.
func preflightScript(path string) string {
	return "sh -c " + shellWord(`printf "`+markPreflight+` %s %s " "$(uname -m)" "$(id -u)"; `+
		`if [ -f `+path+` ] && [ -x `+path+` ]; then echo present; else echo missing; fi`)
}

// uploadScript receives an executable on its standard input and puts it at dir/napilab once its sha256 is
// sum: written with umask 077 to a temporary name in dir (so only root can read it while it arrives, and the
// rename stays in one file system), checked with sha256sum, made executable and renamed into place, which is
// atomic: a reader finds the whole file or none. The temporary file goes when the script ends in any way.
func uploadScript(dir, sum string) string {
	return "sh -c " + shellWord(`umask 077 && mkdir -p `+dir+` && t=$(mktemp `+dir+`/.upload.XXXXXX) && `+
		`trap "rm -f \$t" EXIT && cat >"$t" && s=$(sha256sum <"$t") && s=${s%% *} && `+
		`if [ "$s" = `+sum+` ]; then chmod 700 "$t" && mv -f "$t" `+dir+`/napilab && echo `+markUpload+` ok; `+
		`else echo `+markUpload+` mismatch "$s"; fi`)
}

// unameArch maps `uname -m` to GOARCH.
var unameArch = map[string]string{
	"x86_64": "amd64", "amd64": "amd64",
	"aarch64": "arm64", "arm64": "arm64", "aarch64_be": "arm64be",
	"i386": "386", "i486": "386", "i586": "386", "i686": "386",
	"armv5l": "arm", "armv6l": "arm", "armv7l": "arm", "armv8l": "arm",
	"ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x", "riscv64": "riscv64", "loongarch64": "loong64",
	"mips": "mips", "mips64": "mips64",
}

// GOARCH returns the Go architecture of a machine as `uname -m` names it, and whether it is known.
func GOARCH(unameM string) (string, bool) {
	a, ok := unameArch[unameM]
	return a, ok
}

// preflight is a host's answer to preflightScript.
type preflight struct {
	machine string // uname -m
	uid     int
	present bool
}

// answer finds the line of out that starts with mark and returns its other words. Every other line that is
// not blank was printed by the login shell and is returned as noise, since a shell that prints on a
// non-interactive session would corrupt the agent's protocol too.
func answer(out, mark string) (words []string, noise string, found bool) {
	var other []string
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\r\n")
		if f := strings.Fields(line); !found && len(f) > 0 && f[0] == mark {
			words, found = f[1:], true
			continue
		}
		if strings.TrimSpace(line) != "" {
			other = append(other, line)
		}
	}
	return words, strings.Join(other, "\n"), found
}

// parsePreflight reads the answer to preflightScript, and what else the login shell printed.
func parsePreflight(out string) (p preflight, noise string, err error) {
	w, noise, found := answer(out, markPreflight)
	if !found {
		return preflight{}, noise, errors.New("no answer to napilab's check of the host (see the error output above)")
	}
	uid, uerr := strconv.Atoi(safeIndex(w, 1))
	if len(w) != 3 || uerr != nil || (w[2] != "present" && w[2] != "missing") {
		return preflight{}, noise, fmt.Errorf("an answer napilab does not understand: %q", strings.Join(w, " "))
	}
	return preflight{machine: w[0], uid: uid, present: w[2] == "present"}, noise, nil
}

// parseUpload reads the answer to uploadScript: "" when the copy is in place, else the sha256 it arrived with.
func parseUpload(out string) (mismatch string, noise string, err error) {
	w, noise, found := answer(out, markUpload)
	switch {
	case !found:
		return "", noise, errors.New("no answer from the copy (see the error output above)")
	case len(w) == 1 && w[0] == "ok":
		return "", noise, nil
	case len(w) == 2 && w[0] == "mismatch":
		return w[1], noise, nil
	}
	return "", noise, fmt.Errorf("an answer napilab does not understand: %q", strings.Join(w, " "))
}

func safeIndex(w []string, i int) string {
	if i < len(w) {
		return w[i]
	}
	return ""
}
