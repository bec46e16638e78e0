package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/netns"
)

// netnsHint adds to an error about a device that does not exist where napilab looked (the network namespace it
// names) where the device is: the named namespaces that hold a device of that name, as the --netns to pass, or
// how to find one. given is the --netns the user passed, if any.
func netnsHint(err error, dev, given string) error {
	if err == nil || dev == "" || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var fe *kernel.FieldError
	if !errors.As(err, &fe) || !strings.HasSuffix(fe.Field, "dev") {
		return err
	}
	names, here := netns.Holding(dev)
	var hint string
	switch {
	case len(names) == 1 && given == names[0]:
		return err // it is there after all: the error is about something else
	case len(names) == 1:
		hint = fmt.Sprintf("it is in network namespace %s: pass --netns %s", names[0], names[0])
	case len(names) > 1:
		hint = fmt.Sprintf("network namespaces %s each have one: name the one you mean with --netns",
			strings.Join(names, ", "))
	case here && given != "":
		hint = fmt.Sprintf("it is in napilab's own network namespace, not in %s: drop --netns", given)
	default:
		hint = "name the network namespace it lives in with --netns NAME (`ip netns list` and `napilab testbed " +
			"show` list them)"
	}
	return kernel.WithHint(err, hint)
}
