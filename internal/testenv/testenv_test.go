package testenv

import (
	"os"
	"testing"
)

// TestSkipFailsWhenRequired checks the rule CI depends on: with NAPILAB_REQUIRE_PRIV=1 a skip becomes a failure.
func TestSkipFailsWhenRequired(t *testing.T) {
	t.Setenv(EnvRequirePriv, "1")
	rec := &recorder{TB: t}
	func() {
		defer func() { recover() }() // Fatalf on the recorder panics to stop the helper, like runtime.Goexit would
		Skip(rec, "no netns")
	}()
	if !rec.failed || rec.skipped {
		t.Fatalf("with %s=1 Skip must fail, got failed=%v skipped=%v", EnvRequirePriv, rec.failed, rec.skipped)
	}

	t.Setenv(EnvRequirePriv, "")
	rec = &recorder{TB: t}
	func() {
		defer func() { recover() }()
		Skip(rec, "no netns")
	}()
	if rec.failed || !rec.skipped {
		t.Fatalf("without %s Skip must skip, got failed=%v skipped=%v", EnvRequirePriv, rec.failed, rec.skipped)
	}
}

func TestInLab(t *testing.T) {
	t.Setenv(EnvLab, "1")
	if !InLab() {
		t.Fatal("InLab false with NAPILAB_LAB=1")
	}
	t.Setenv(EnvLab, "")
	if InLab() {
		t.Fatal("InLab true without NAPILAB_LAB")
	}
}

func TestExclusiveReentrantAcrossTests(t *testing.T) {
	for i := 0; i < 2; i++ {
		t.Run("", func(t *testing.T) { Exclusive(t) }) // a lock left held would block the second run forever
	}
	if _, err := os.Stat(os.TempDir()); err != nil {
		t.Fatal(err)
	}
}

type recorder struct {
	testing.TB
	failed, skipped bool
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(string, ...any) {
	r.failed = true
	panic("fatal")
}
func (r *recorder) Skip(...any) {
	r.skipped = true
	panic("skip")
}
