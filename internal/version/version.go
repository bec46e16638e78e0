// Package version names the napilab build, for `napilab version` and for every result napilab writes.
package version

import (
	"runtime"
	"runtime/debug"
)

// Version is set at release time with -ldflags "-X github.com/napilab/napilab/internal/version.Version=v1.2.3".
var Version = "devel"

// String returns the version, the VCS revision when the build recorded one, and the Go toolchain.
func String() string {
	s := Version
	if info, ok := debug.ReadBuildInfo(); ok {
		if Version == "devel" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			s = info.Main.Version
		}
		for _, kv := range info.Settings {
			if kv.Key == "vcs.revision" && len(kv.Value) >= 12 {
				s += "+" + kv.Value[:12]
			}
		}
	}
	return s + " " + runtime.Version()
}
