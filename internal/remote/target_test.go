package remote

import (
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	for _, c := range []struct {
		in    string
		want  Target
		where string
	}{
		{"local", Target{Kind: Local}, "this host"},
		{"netns:napilab-b", Target{Kind: NetNS, NetNS: "napilab-b"}, "netns napilab-b"},
		{"netns:/proc/12/ns/net", Target{Kind: NetNS, NetNS: "/proc/12/ns/net"}, "netns /proc/12/ns/net"},
		{"ssh://lab1", Target{Kind: SSH, Host: "lab1"}, "lab1"},
		{"ssh://root@lab1.example.org", Target{Kind: SSH, User: "root", Host: "lab1.example.org"}, "root@lab1.example.org"},
		{"ssh://root@127.0.0.1:2222", Target{Kind: SSH, User: "root", Host: "127.0.0.1", Port: 2222}, "root@127.0.0.1:2222"},
		{"ssh://[::1]", Target{Kind: SSH, Host: "::1"}, "[::1]"},
		{"ssh://ops@[2001:db8::7]:22", Target{Kind: SSH, User: "ops", Host: "2001:db8::7", Port: 22}, "ops@[2001:db8::7]:22"},
		{"ssh://[fe80::1%eth0]:2200", Target{Kind: SSH, Host: "fe80::1%eth0", Port: 2200}, "[fe80::1%eth0]:2200"},
		{"ssh://lab_1-a", Target{Kind: SSH, Host: "lab_1-a"}, "lab_1-a"},
		{"ssh://r.o_o-t@h:65535", Target{Kind: SSH, User: "r.o_o-t", Host: "h", Port: 65535}, "r.o_o-t@h:65535"},
	} {
		got, err := ParseTarget(c.in)
		if err != nil {
			t.Errorf("ParseTarget(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseTarget(%q) = %+v, want %+v", c.in, got, c.want)
		}
		if got.String() != c.in {
			t.Errorf("ParseTarget(%q).String() = %q", c.in, got.String())
		}
		if got.Where() != c.where {
			t.Errorf("ParseTarget(%q).Where() = %q, want %q", c.in, got.Where(), c.where)
		}
	}
}

// TestParseTargetErrors: each refusal is one sentence that says what to write instead.
func TestParseTargetErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "name one as local, netns:NAME or ssh://[USER@]HOST[:PORT]"},
		{"Local", "is not an end: name one as local"},
		{"root@lab1", "write ssh://root@lab1 for a host reached over ssh"},
		{"lab1:22", "write ssh://lab1:22"},
		{"http://lab1", "only over ssh: write ssh://lab1"},
		{"netns:", "the namespace's name is missing"},
		{"netns:a b", "a space or a control character"},
		{"netns:rel/path", "absolute, clean path"},
		{"netns:/run/netns/../x", "absolute, clean path"},
		{"netns:..", "is not one"},
		{"ssh://", "the host is missing"},
		{"ssh://root@", "the host is missing"},
		{"ssh://@lab1", "the user before @ is empty"},
		{"ssh://a@b@c", "more than one @"},
		{"ssh://root:secret@lab1", "passwords do not go in an end's name"},
		{"ssh://-oProxyCommand=x", "is not a host name"},
		{"ssh://-l@lab1", "is not a login name"},
		{"ssh://lab1/", "no path, query or fragment"},
		{"ssh://lab1?x=1", "no path, query or fragment"},
		{"ssh://lab1:", "the port after ':' is empty"},
		{"ssh://lab1:0", "not a number from 1 to 65535"},
		{"ssh://lab1:65536", "not a number from 1 to 65535"},
		{"ssh://lab1:+22", "not a number from 1 to 65535"},
		{"ssh://lab1:ssh", "not a number from 1 to 65535"},
		{"ssh://::1", "an IPv6 address goes in brackets: write ssh://[::1]"},
		{"ssh://[::1", "does not close"},
		{"ssh://[127.0.0.1]", "brackets are for IPv6 addresses only"},
		{"ssh://[lab1]:22", "brackets are for IPv6 addresses only"},
		{"ssh://[::1]22", "after the address"},
		{"ssh://[::1]:", "the port after ':' is empty"},
		{"ssh://[fe80::1%e$h]", "is not an interface name"},
		{"ssh://lab 1", "is not a host name"},
		{"ssh://.lab1", "is not a host name"},
		{"ssh://" + strings.Repeat("a", 254), "longer than 253"},
	} {
		_, err := ParseTarget(c.in)
		if err == nil {
			t.Errorf("ParseTarget(%q) accepted it", c.in)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseTarget(%q) = %q, want it to say %q", c.in, err, c.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseTarget(%q): %q is more than one line", c.in, err)
		}
	}
}

// FuzzParseTarget: whatever the input, ParseTarget answers without panicking, and what it accepts prints back
// to itself and never hands ssh an option, a space or a shell character as the host or user.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"local", "netns:b", "netns:/proc/1/ns/net", "ssh://root@lab1:22", "ssh://[::1]:2222",
		"ssh://[fe80::1%eth0]", "ssh://-oProxyCommand=x", "root@lab1", "ssh://a@b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			if err.Error() == "" || strings.Contains(err.Error(), "\n") {
				t.Fatalf("ParseTarget(%q): error %q is not one sentence", s, err)
			}
			return
		}
		again, err := ParseTarget(tg.String())
		if err != nil || again != tg {
			t.Fatalf("ParseTarget(%q) = %+v prints as %q, which parses to %+v, %v", s, tg, tg.String(), again, err)
		}
		if tg.Kind != SSH {
			return
		}
		for _, field := range []string{tg.Host, tg.User} {
			if strings.HasPrefix(field, "-") || strings.ContainsAny(field, " \t\n'\"$`;|&<>()\\*?!{}[]~#") {
				t.Fatalf("ParseTarget(%q) = %+v: a field ssh or a shell could misread", s, tg)
			}
		}
		if tg.Host == "" || tg.Port < 0 || tg.Port > 65535 {
			t.Fatalf("ParseTarget(%q) = %+v", s, tg)
		}
	})
}
