// Package layers holds the test that keeps napilab's packages in their layers (CONTRIBUTING.md, "Layout"):
// which napilab packages and which third-party modules each may import. It has no code of its own.
package layers
