package netns

import (
	"path/filepath"
	"strings"
)

// Dir is where `ip netns` and napilab's named testbeds bind-mount named namespaces.
const Dir = "/run/netns"

// Path turns what a user passes as --netns into a path: a name is looked up under Dir, a path is taken as it
// is, and "" means napilab's own namespace.
func Path(nameOrPath string) string {
	if nameOrPath == "" || strings.ContainsRune(nameOrPath, '/') {
		return nameOrPath
	}
	return filepath.Join(Dir, nameOrPath)
}

// Describe names a namespace path for messages: "this process's network namespace" for "".
func Describe(path string) string {
	if path == "" {
		return "this process's network namespace"
	}
	return "network namespace " + path
}
