package kernel

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseRelease(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Version
		err  bool
	}{
		{"6.18.44-fc-v657", Version{6, 18, 44}, false},
		{"7.3.4+deb13-cloud-amd64", Version{7, 3, 4}, false},
		{"6.19", Version{6, 19, 0}, false},
		{"6.19-rc3", Version{6, 19, 0}, false},
		{"", Version{}, true},
		{"linux", Version{}, true},
		{"6", Version{}, true},
	} {
		got, err := ParseRelease(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseRelease(%q) = %v, %v; want %v, err=%v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestAtLeast(t *testing.T) {
	v := Version{6, 18, 44}
	if !v.AtLeast(6, 18) || !v.AtLeast(5, 30) || v.AtLeast(6, 19) || v.AtLeast(7, 0) {
		t.Fatalf("AtLeast wrong for %v", v)
	}
}

func TestRunning(t *testing.T) {
	v, err := Running()
	if err != nil {
		t.Fatal(err)
	}
	if v.Major < 3 || Release() == "" {
		t.Fatalf("implausible running kernel %v %q", v, Release())
	}
}

func TestUnsupportedError(t *testing.T) {
	err := fmt.Errorf("apply: %w", &UnsupportedError{Feature: "threaded NAPI busy poll", MinKernel: "6.19", Err: unix.ERANGE})
	if !errors.Is(err, ErrNotSupported) {
		t.Fatal("UnsupportedError does not match ErrNotSupported")
	}
	if !errors.Is(err, unix.ERANGE) {
		t.Fatal("UnsupportedError hides its cause")
	}
	if msg := err.Error(); !strings.Contains(msg, "needs Linux 6.19 or newer") {
		t.Fatalf("message %q does not name the minimum kernel", msg)
	}
}

func TestOpErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		errno  unix.Errno
		target error
	}{
		{unix.ENODEV, os.ErrNotExist},
		{unix.ENOENT, os.ErrNotExist},
		{unix.EPERM, os.ErrPermission},
		{unix.EACCES, os.ErrPermission},
		{unix.EOPNOTSUPP, ErrNotSupported},
		{unix.ENOPROTOOPT, ErrNotSupported},
	} {
		err := fmt.Errorf("outer: %w", NewOpError("op", "dev", tc.errno))
		if !errors.Is(err, tc.target) {
			t.Errorf("%v does not match %v", tc.errno, tc.target)
		}
	}
	if errors.Is(NewOpError("op", "", unix.EINVAL), os.ErrNotExist) {
		t.Error("EINVAL matched os.ErrNotExist")
	}
	if NewOpError("op", "", nil) != nil {
		t.Error("NewOpError(nil) is not nil")
	}
}

func TestHint(t *testing.T) {
	err := WithHint(NewOpError("bind", "veth0", unix.EPERM), "run as root")
	if !errors.Is(err, os.ErrPermission) || !strings.HasSuffix(err.Error(), "; run as root") {
		t.Fatalf("hint error %q lost its cause or hint", err)
	}
	if WithHint(nil, "x") != nil {
		t.Fatal("WithHint(nil) is not nil")
	}
}

func TestExplain(t *testing.T) {
	perm := NewOpError("bind", "veth0", unix.EPERM)
	if got := Explain("napilab", perm); !strings.HasSuffix(got, "run napilab as root (or with CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN and CAP_IPC_LOCK)") {
		t.Fatalf("Explain(permission) = %q", got)
	}
	if got := Explain("napilab", WithHint(perm, "grant CAP_NET_RAW")); strings.Contains(got, "run napilab as root") {
		t.Fatalf("Explain added a second fix to a hinted error: %q", got)
	}
	if got := Explain("napilab", NewOpError("bind", "veth0", unix.EINVAL)); got != "bind veth0: invalid argument" {
		t.Fatalf("Explain(other) = %q", got)
	}
}

func TestSentenceError(t *testing.T) {
	cause := NewOpError("open", "/run/netns/x", unix.ENOENT)
	for _, tc := range []struct {
		err      error
		text     string
		notExist bool
		errno    bool
	}{
		{NotFound("no device %q", "eth9"), `no device "eth9"`, true, false},
		{Explained(cause, "the namespace is gone"), "the namespace is gone (open /run/netns/x: no such file or directory)", true, true},
		{Mark(errors.New("no such NAPI"), os.ErrNotExist), "no such NAPI", true, false},
		{Explained(errors.New("busy"), "the queue is taken"), "the queue is taken (busy)", false, false},
	} {
		if got := tc.err.Error(); got != tc.text {
			t.Errorf("Error() = %q, want %q", got, tc.text)
		}
		if got := errors.Is(tc.err, os.ErrNotExist); got != tc.notExist {
			t.Errorf("%q: errors.Is(os.ErrNotExist) = %v, want %v", tc.text, got, tc.notExist)
		}
		var errno unix.Errno
		if got := errors.As(tc.err, &errno); got != tc.errno {
			t.Errorf("%q: errors.As(errno) = %v, want %v", tc.text, got, tc.errno)
		}
	}
	if Explained(nil, "x") != nil || Mark(nil, os.ErrNotExist) != nil {
		t.Error("a nil error must stay nil")
	}
}

func TestRenameFields(t *testing.T) {
	err := errors.Join(Fieldf("period", "-80µs is negative: use a positive period"),
		errors.New("not a field"), Fieldf("payload", "of 9000 bytes is out of range"), Fieldf("ring", "is 3"))
	got := RenameFields(err, map[string]string{"period": "--period", "payload": "-B"}).Error()
	want := "--period -80µs is negative: use a positive period\nnot a field\n-B of 9000 bytes is out of range\nring is 3"
	if got != want {
		t.Errorf("RenameFields:\n%s\nwant\n%s", got, want)
	}
	var fe *FieldError
	if !errors.As(RenameFields(Fieldf("cpu", "7 is offline"), map[string]string{"cpu": "--cpu"}), &fe) || fe.Field != "--cpu" {
		t.Errorf("a single field error is renamed and stays a *FieldError, got %v", fe)
	}
	if RenameFields(nil, nil) != nil {
		t.Error("nil must stay nil")
	}
}
