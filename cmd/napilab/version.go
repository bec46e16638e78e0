package main

import (
	"fmt"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/version"
)

type versionCmd struct{}

func (versionCmd) Run(std *stdio) error {
	fmt.Fprintf(std.out, "napilab %s\nkernel %s\n", version.String(), kernel.Release())
	return nil
}
