package layers

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/napilab/napilab/internal/testenv"
)

const module = "github.com/napilab/napilab/"

// rank is each production package's layer: a package imports napilab packages of its own layer or below,
// never above. Tests-only packages are listed in testOnly; commands may import anything but testOnly.
var rank = map[string]int{
	// leaves: pure, or the running kernel's identity
	"internal/frame": 0, "internal/hist": 0, "internal/kernel": 0, "internal/version": 0, "internal/note": 0,
	// kernel adapters
	"internal/netns": 1, "internal/xsk": 1, "internal/xdp": 1, "internal/netdev": 1, "internal/ethtool": 1,
	"internal/sysknob": 1, "internal/usage": 1,
	// domain
	"internal/rr": 2, "internal/napi": 2, "internal/testbed": 2, "internal/trace": 2,
	// orchestration
	"internal/agent": 3, "internal/remote": 3, "internal/sweep": 3, "internal/lab": 3, "internal/lab/guest": 3,
	// rendering: reads what the orchestration returns
	"internal/report": 4,
	// this package
	"internal/layers": 5,
}

// testOnly are the packages only tests (and test fakes) import.
var testOnly = map[string]bool{
	"internal/testenv": true, "internal/testbed/testbedtest": true, "internal/lab/labtest": true, "internal/napi/napitest": true,
	"internal/labsuite": true, "internal/remote/remotetest": true, "internal/xsk/xsktest": true,
	"internal/netdev/netdevtest": true, "internal/ethtool/ethtooltest": true, "internal/sysknob/sysknobtest": true,
}

// thirdParty fences modules into the packages that own their concern: one netlink stack per job, one eBPF
// library, plots and the command line parser where they are used, nowhere else.
var thirdParty = map[string][]string{
	"github.com/cilium/ebpf":       {"internal/xdp", "internal/trace"},
	"github.com/mdlayher/":         {"internal/netdev", "internal/ethtool", "internal/xdp"},
	"github.com/vishvananda/":      {"internal/rr", "internal/testbed", "internal/lab"},
	"gonum.org/v1/plot":            {"internal/report"},
	"github.com/alecthomas/kong":   {"cmd/napilab"},
	"github.com/HdrHistogram/":     {"internal/hist"},
	"github.com/jedib0t/go-pretty": {"internal/report"},
	"go.uber.org/goleak":           {"internal/testenv"},
	"github.com/google/go-cmp":     {},
	"golang.org/x/term":            {"cmd/napilab"},
}

// commandImports lists what each command may import besides the standard library; nil is anything but testOnly.
var commandImports = map[string][]string{
	// the drop-in stays small and free of plots, ssh and the command line parser
	"cmd/xsk_rr": {"internal/rr", "internal/kernel", "internal/note", "internal/netns", "golang.org/x/sys/unix"},
}

type pkg struct {
	ImportPath string
	Imports    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		if testenv.InLab() {
			t.Skip("the qemu lab has no go toolchain; the layers are checked on the host")
		}
		testenv.Skip(t, "no go toolchain: %v", err)
	}
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", module+"...").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		p.ImportPath = strings.TrimPrefix(p.ImportPath, module)
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestLayers: every package's production imports respect its layer, the test-only packages stay out of
// production code, and third-party modules stay where they belong. A new package must be given a layer here.
func TestLayers(t *testing.T) {
	for _, p := range listPackages(t) {
		name := p.ImportPath
		if strings.HasPrefix(name, "scripts/") {
			continue // tools of the repository, not napilab
		}
		r, ranked := rank[name]
		cmd := strings.HasPrefix(name, "cmd/")
		if !ranked && !cmd && !testOnly[name] {
			t.Errorf("%s has no layer: add it to the rank table in %s and to CONTRIBUTING.md", name, "internal/layers")
			continue
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module) {
				dep := strings.TrimPrefix(imp, module)
				switch {
				case testOnly[dep] && !testOnly[name]:
					t.Errorf("%s imports %s, which is for tests only", name, dep)
				case cmd && commandImports[name] != nil && !allowed(commandImports[name], dep):
					t.Errorf("%s imports %s; it may import only %v", name, dep, commandImports[name])
				case ranked && !testOnly[dep] && rank[dep] > r:
					t.Errorf("%s (layer %d) imports %s (layer %d): a package never imports upward", name, r, dep, rank[dep])
				}
				continue
			}
			for mod, owners := range thirdParty {
				if strings.HasPrefix(imp, mod) && !testOnly[name] && !allowed(owners, name) {
					t.Errorf("%s imports %s, which only %v may use", name, imp, owners)
				}
			}
			if cmd && commandImports[name] != nil && strings.Contains(strings.Split(imp, "/")[0], ".") &&
				!allowed(commandImports[name], imp) {
				t.Errorf("%s imports %s; it may import only %v", name, imp, commandImports[name])
			}
		}
	}
}

func allowed(list []string, p string) bool {
	for _, a := range list {
		if p == a || strings.HasPrefix(p, a+"/") {
			return true
		}
	}
	return false
}
