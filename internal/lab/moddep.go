package lab

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"strings"
)

// moduleIndex knows where a kernel's modules are and what each needs first. It is built from modules.dep
// (written by depmod: "kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz ...", every
// line listing all transitive dependencies) and modules.builtin (modules compiled into vmlinuz).
type moduleIndex struct {
	deps    map[string][]string // module path -> dependency paths
	byName  map[string]string   // module name -> module path
	builtin map[string]bool     // module names built into the kernel
}

// moduleName turns "kernel/net/sched/sch_netem.ko.xz" into "sch_netem"; the kernel treats '-' and '_' in
// module names alike, so names are kept with '_'.
func moduleName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

func parseModuleIndex(dep, builtin []byte) (*moduleIndex, error) {
	ix := &moduleIndex{deps: map[string][]string{}, byName: map[string]string{}, builtin: map[string]bool{}}
	sc := bufio.NewScanner(bytes.NewReader(dep))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		mod = strings.TrimSpace(mod)
		if !ok || mod == "" || !strings.Contains(mod, ".ko") || !safeRelPath(mod) {
			return nil, fmt.Errorf("modules.dep line %d: %q is not \"module: dependencies\"", n, line)
		}
		deps := strings.Fields(rest)
		for _, d := range deps {
			if !safeRelPath(d) {
				return nil, fmt.Errorf("modules.dep line %d: dependency %q is not a relative module path", n, d)
			}
		}
		ix.deps[mod] = deps
		ix.byName[moduleName(mod)] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	for _, l := range strings.Fields(string(builtin)) {
		ix.builtin[moduleName(l)] = true
	}
	return ix, nil
}

// safeRelPath rejects paths that would escape the modules directory.
func safeRelPath(p string) bool {
	return p != "" && !path.IsAbs(p) && path.Clean(p) == p && !strings.HasPrefix(p, "../") && p != ".."
}

// loadOrder returns the module paths to load, dependencies first, each once. Built-in modules need no loading
// and are skipped; a name that is neither shipped nor built in is an error naming it.
func (ix *moduleIndex) loadOrder(names []string) ([]string, error) {
	var order []string
	done := map[string]bool{}
	onPath := map[string]bool{}
	var visit func(p string) error
	visit = func(p string) error {
		if done[p] {
			return nil
		}
		if onPath[p] {
			return fmt.Errorf("modules.dep has a dependency cycle through %s", p)
		}
		onPath[p] = true
		deps, ok := ix.deps[p]
		if !ok {
			return fmt.Errorf("modules.dep lists %s as a dependency but not as a module", p)
		}
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		onPath[p], done[p] = false, true
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		n = strings.ReplaceAll(n, "-", "_")
		p, ok := ix.byName[n]
		if !ok {
			if ix.builtin[n] {
				continue
			}
			return nil, fmt.Errorf("module %s is neither built into this kernel nor shipped with it; check the name against its config", n)
		}
		if err := visit(p); err != nil {
			return nil, err
		}
	}
	return order, nil
}
