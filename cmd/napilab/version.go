package main

import (
	"fmt"

	"github.com/napilab/napilab/internal/kernel"
	"github.com/napilab/napilab/internal/version"
)

type versionCmd struct{}

func (versionCmd) Run() error {
	fmt.Printf("napilab %s\nkernel %s\n", version.String(), kernel.Release())
	return nil
}
