package remote

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
)

// Kind says where an end's agent runs.
type Kind uint8

// The kinds of ends.
const (
	Local Kind = iota + 1 // this host, in napilab's own network namespace
	NetNS                 // this host, driving a device in another network namespace
	SSH                   // another host, reached with the system's ssh
)

// Target is an end as the user names it: `local`, `netns:NAME` or `ssh://[USER@]HOST[:PORT]`. It is a pure
// value: ParseTarget checks it, String prints it back, and only Start acts on it.
type Target struct {
	Kind Kind
	// NetNS (Kind NetNS) is a name under /run/netns or an absolute path. The agent is not started in it: it stays
	// in the initial namespace, where the machine-wide sysctls live, and is given the namespace in hello.
	NetNS string
	// User (Kind SSH) is the login; "" leaves it to ssh (its configuration, else the local user's name).
	User string
	// Host (Kind SSH) is a host name, an alias from ssh_config, or an IP address (IPv6 without brackets).
	Host string
	// Port (Kind SSH) is the ssh port; 0 leaves it to ssh.
	Port int
}

// targetForms is the help every parse error ends with.
const targetForms = "local, netns:NAME or ssh://[USER@]HOST[:PORT]"

// ParseTarget parses an end's name. Its errors are one sentence that says what to write instead.
func ParseTarget(s string) (Target, error) {
	switch {
	case s == "":
		return Target{}, errors.New("no end given: name one as " + targetForms)
	case s == "local":
		return Target{Kind: Local}, nil
	case strings.HasPrefix(s, "netns:"):
		name := strings.TrimPrefix(s, "netns:")
		if err := checkNetNS(name); err != nil {
			return Target{}, fmt.Errorf("%q: %w", s, err)
		}
		return Target{Kind: NetNS, NetNS: name}, nil
	case strings.HasPrefix(s, "ssh://"):
		t, err := parseSSH(strings.TrimPrefix(s, "ssh://"))
		if err != nil {
			return Target{}, fmt.Errorf("%q: %w", s, err)
		}
		return t, nil
	}
	if i := strings.Index(s, "://"); i >= 0 {
		return Target{}, fmt.Errorf("%q: napilab reaches other hosts only over ssh: write ssh://%s", s,
			s[i+len("://"):])
	}
	if !strings.ContainsAny(s, " \t\n/") && strings.ContainsAny(s, "@.:") {
		return Target{}, fmt.Errorf("%q is not an end: write ssh://%s for a host reached over ssh (or %s)", s, s,
			targetForms)
	}
	return Target{}, fmt.Errorf("%q is not an end: name one as %s", s, targetForms)
}

// checkNetNS accepts what `ip netns` names (a file under /run/netns) or an absolute, clean path to a namespace
// file such as /proc/PID/ns/net.
func checkNetNS(name string) error {
	switch {
	case name == "":
		return errors.New("the namespace's name is missing: write netns:NAME, e.g. netns:napilab-b")
	case len(name) > 4096:
		return errors.New("the namespace's name is longer than a path may be")
	case strings.IndexFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		return errors.New("the namespace's name has a space or a control character: name it as `ip netns list` " +
			"shows it")
	case strings.ContainsRune(name, '/'):
		if !filepath.IsAbs(name) || filepath.Clean(name) != name {
			return errors.New("a namespace given by path needs an absolute, clean path, e.g. netns:/run/netns/b")
		}
	case name == "." || name == "..":
		return errors.New("the namespace's name is not one: name it as `ip netns list` shows it")
	}
	return nil
}

// parseSSH parses what follows ssh://.
func parseSSH(rest string) (Target, error) {
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		return Target{}, fmt.Errorf("an ssh end has no path, query or fragment (%q): write "+
			"ssh://[USER@]HOST[:PORT] and nothing after it", rest[i:])
	}
	t := Target{Kind: SSH}
	hostport := rest
	if user, hp, ok := strings.Cut(rest, "@"); ok {
		if strings.Contains(hp, "@") {
			return Target{}, errors.New("more than one @: write ssh://USER@HOST")
		}
		if err := checkUser(user); err != nil {
			return Target{}, err
		}
		t.User, hostport = user, hp
	}
	host, port, err := splitHostPort(hostport)
	if err != nil {
		return Target{}, err
	}
	t.Host = host
	if port != "" {
		if t.Port, err = parsePort(port); err != nil {
			return Target{}, err
		}
	}
	return t, nil
}

func checkUser(user string) error {
	switch {
	case user == "":
		return errors.New("the user before @ is empty: write ssh://USER@HOST, or leave out USER@")
	case strings.Contains(user, ":"):
		return errors.New("passwords do not go in an end's name: napilab uses ssh's keys, agents and " +
			"configuration")
	case len(user) > 256:
		return errors.New("the user name is longer than 256 bytes")
	case user[0] == '-' || !allOf(user, isNameByte):
		return fmt.Errorf("the user %q is not a login name (letters, digits, '.', '_' and '-', not first)", user)
	}
	return nil
}

// splitHostPort splits HOST[:PORT], where an IPv6 HOST is in brackets.
func splitHostPort(hp string) (host, port string, err error) {
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", "", errors.New("an IPv6 address opens a bracket it does not close: write ssh://[::1]:22")
		}
		host, after := hp[1:end], hp[end+1:]
		if err := checkIPv6(host); err != nil {
			return "", "", err
		}
		if after == "" {
			return host, "", nil
		}
		port, ok := strings.CutPrefix(after, ":")
		if !ok {
			return "", "", fmt.Errorf("%q after the address: write ssh://[ADDRESS]:PORT", after)
		}
		if port == "" {
			return "", "", errors.New("the port after ':' is empty: give one or leave out the ':'")
		}
		return host, port, nil
	}
	if strings.Count(hp, ":") > 1 {
		return "", "", fmt.Errorf("an IPv6 address goes in brackets: write ssh://[%s] (and :PORT after the "+
			"bracket)", hp)
	}
	host, port, hasPort := strings.Cut(hp, ":")
	if hasPort && port == "" {
		return "", "", errors.New("the port after ':' is empty: give one or leave out the ':'")
	}
	if err := checkHost(host); err != nil {
		return "", "", err
	}
	return host, port, nil
}

func checkIPv6(a string) error {
	addr, err := netip.ParseAddr(a)
	if err != nil || !addr.Is6() {
		return fmt.Errorf("%q in brackets is not an IPv6 address: brackets are for IPv6 addresses only", a)
	}
	if z := addr.Zone(); z != "" && !allOf(z, isNameByte) {
		return fmt.Errorf("the zone %q of %s is not an interface name", z, a)
	}
	return nil
}

func checkHost(host string) error {
	switch {
	case host == "":
		return errors.New("the host is missing: write ssh://HOST, e.g. ssh://root@lab1")
	case len(host) > 253:
		return errors.New("the host name is longer than 253 bytes")
	case host[0] == '-' || host[0] == '.' || !allOf(host, isNameByte):
		return fmt.Errorf("%q is not a host name or address (letters, digits, '.', '_' and '-'; IPv6 in "+
			"brackets)", host)
	}
	return nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || !allOf(s, func(c byte) bool { return c >= '0' && c <= '9' }) || p < 1 || p > 65535 {
		return 0, fmt.Errorf("the port %q is not a number from 1 to 65535", s)
	}
	return p, nil
}

// isNameByte admits what host names, ssh_config aliases, login names and interface names share.
func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

func allOf(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// String prints t as ParseTarget reads it.
func (t Target) String() string {
	switch t.Kind {
	case Local:
		return "local"
	case NetNS:
		return "netns:" + t.NetNS
	case SSH:
		return "ssh://" + t.Where()
	}
	return fmt.Sprintf("Target(%d)", t.Kind)
}

// Where names the end in messages and before its error output: "this host", "netns NAME", or
// "[USER@]HOST[:PORT]" (an IPv6 HOST in brackets).
func (t Target) Where() string {
	switch t.Kind {
	case Local:
		return "this host"
	case NetNS:
		return "netns " + t.NetNS
	case SSH:
		s := t.Host
		if strings.Contains(s, ":") { // IPv6
			s = "[" + s + "]"
		}
		if t.User != "" {
			s = t.User + "@" + s
		}
		if t.Port != 0 {
			s += ":" + strconv.Itoa(t.Port)
		}
		return s
	}
	return t.String()
}
