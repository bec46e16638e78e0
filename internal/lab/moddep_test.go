package lab

import (
	"slices"
	"strings"
	"testing"
)

const modulesDep = `kernel/net/core/failover.ko.xz:
kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz
kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz
kernel/drivers/net/veth.ko.xz:
kernel/net/802/stp.ko.xz: kernel/net/llc/llc.ko.xz
kernel/net/llc/llc.ko.xz:
kernel/net/bridge/bridge.ko.xz: kernel/net/802/stp.ko.xz kernel/net/llc/llc.ko.xz
kernel/net/xfrm/xfrm-user.ko.xz: kernel/net/xfrm/xfrm_algo.ko.xz
kernel/net/xfrm/xfrm_algo.ko.xz:
`

const modulesBuiltin = "kernel/net/sched/sch_fq_codel.ko\nkernel/fs/binfmt_script.ko\n"

func TestModuleLoadOrder(t *testing.T) {
	ix, err := parseModuleIndex([]byte(modulesDep), []byte(modulesBuiltin))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ix.loadOrder([]string{"virtio_net", "veth", "bridge", "sch_fq_codel", "xfrm_user", "virtio-net"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel/net/core/failover.ko.xz", "kernel/drivers/net/net_failover.ko.xz", "kernel/drivers/net/virtio_net.ko.xz",
		"kernel/drivers/net/veth.ko.xz",
		"kernel/net/llc/llc.ko.xz", "kernel/net/802/stp.ko.xz", "kernel/net/bridge/bridge.ko.xz",
		"kernel/net/xfrm/xfrm_algo.ko.xz", "kernel/net/xfrm/xfrm-user.ko.xz",
	}
	if !slices.Equal(got, want) {
		t.Errorf("load order\n got %v\nwant %v", got, want)
	}
	if _, err := ix.loadOrder([]string{"netdevsim"}); err == nil || !strings.Contains(err.Error(), "module netdevsim is neither built into") {
		t.Errorf("unknown module: %v", err)
	}
}

func TestModuleIndexRejects(t *testing.T) {
	bad := map[string]string{
		"no colon":          "kernel/a.ko.xz\n",
		"absolute path":     "/lib/modules/a.ko.xz:\n",
		"escaping dep":      "kernel/a.ko.xz: ../../etc/passwd\n",
		"not a module path": "readme:\n",
	}
	for name, dep := range bad {
		if _, err := parseModuleIndex([]byte(dep), nil); err == nil || !strings.HasPrefix(err.Error(), "modules.dep line 1") {
			t.Errorf("%s: %v", name, err)
		}
	}
	ix, err := parseModuleIndex([]byte("kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\nkernel/c.ko: kernel/d.ko\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ix.loadOrder([]string{"a"}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: %v", err)
	}
	if _, err := ix.loadOrder([]string{"c"}); err == nil || !strings.Contains(err.Error(), "not as a module") {
		t.Errorf("dangling dependency: %v", err)
	}
}

// FuzzModuleIndex: arbitrary modules.dep must not panic or loop, and a load order lists every module once,
// after all of its dependencies.
func FuzzModuleIndex(f *testing.F) {
	f.Add([]byte(modulesDep), "virtio_net")
	f.Add([]byte("kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n"), "a")
	f.Fuzz(func(t *testing.T, dep []byte, name string) {
		ix, err := parseModuleIndex(dep, nil)
		if err != nil {
			return
		}
		order, err := ix.loadOrder([]string{name})
		if err != nil {
			return
		}
		pos := map[string]int{}
		for i, p := range order {
			if _, dup := pos[p]; dup {
				t.Fatalf("%s loaded twice in %v", p, order)
			}
			pos[p] = i
		}
		for i, p := range order {
			for _, d := range ix.deps[p] {
				if j, ok := pos[d]; !ok || j > i {
					t.Fatalf("%s loads before its dependency %s: %v", p, d, order)
				}
			}
		}
	})
}
