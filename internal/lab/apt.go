package lab

import (
	"bufio"
	"bytes"
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// The three packages a Debian 7.x kernel release is split into; all three must exist for a release to boot.
var kernelParts = []string{"linux-binary-", "linux-modules-", "linux-base-"}

// stanza is one paragraph of apt-cache output: "Field: value" lines, continuation lines starting with a blank.
type stanza map[string]string

// parseStanzas splits apt-cache show output into paragraphs. Field names are case-insensitive in Debian control
// files, so they are stored in canonical form ("Sha256" and "SHA256" are the same field).
func parseStanzas(b []byte) []stanza {
	var out []stanza
	cur := stanza{}
	last := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	flush := func() {
		if len(cur) > 0 {
			out = append(out, cur)
			cur = stanza{}
		}
		last = ""
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				cur[last] += "\n" + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok || k == "" {
				last = ""
				continue
			}
			last = strings.ToLower(k)
			cur[last] = strings.TrimSpace(v)
		}
	}
	flush()
	return out
}

func (s stanza) get(field string) string { return s[strings.ToLower(field)] }

// kernelRelease splits a Debian kernel release such as "7.3.4+deb13-cloud-amd64" into its upstream version
// ("7.3.4"), its ABI tag ("deb13") and its flavour ("cloud-amd64").
func kernelRelease(kver string) (upstream, abi, flavour string, ok bool) {
	upstream, rest, ok := strings.Cut(kver, "+")
	if !ok || upstream == "" || upstream[0] < '0' || upstream[0] > '9' {
		return "", "", "", false
	}
	abi, flavour, ok = strings.Cut(rest, "-")
	if !ok || abi == "" || flavour == "" {
		return "", "", "", false
	}
	return upstream, abi, flavour, true
}

// completeReleases returns the releases of the given flavour for which all three kernel packages are listed,
// newest first. names is the output of `apt-cache pkgnames linux-`: one package name per line.
func completeReleases(names []byte, flavour string) []string {
	count := map[string]int{}
	for _, n := range strings.Fields(string(names)) {
		for _, p := range kernelParts {
			kver, ok := strings.CutPrefix(n, p)
			if !ok {
				continue
			}
			if _, _, fl, ok := kernelRelease(kver); ok && fl == flavour {
				count[kver] |= 1 << slices.Index(kernelParts, p)
			}
		}
	}
	var out []string
	for kver, mask := range count {
		if mask == 1<<len(kernelParts)-1 {
			out = append(out, kver)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return compareReleases(b, a) })
	return out
}

// compareReleases orders kernel releases by upstream version numerically (7.10 after 7.9), then by ABI tag.
func compareReleases(a, b string) int {
	ua, aa, _, _ := kernelRelease(a)
	ub, ab, _, _ := kernelRelease(b)
	na, nb := versionNumbers(ua), versionNumbers(ub)
	if c := slices.Compare(na, nb); c != 0 {
		return c
	}
	return cmp.Or(strings.Compare(aa, ab), strings.Compare(a, b))
}

func versionNumbers(v string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r < '0' || r > '9' }) {
		n, err := strconv.Atoi(f)
		if err != nil {
			n = 0
		}
		out = append(out, n)
	}
	return out
}

// matchRelease reports whether kver is what the user asked for: the exact release, or its upstream version.
func matchRelease(kver, want string) bool {
	if want == "" || kver == want {
		return true
	}
	up, _, _, ok := kernelRelease(kver)
	return ok && up == want
}
