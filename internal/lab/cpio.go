package lab

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"strings"
)

// cpioWriter writes the "newc" cpio format the kernel unpacks into its initramfs: a 110-byte ASCII header of
// hex fields, the NUL-terminated name, the data, each padded to 4 bytes, and a TRAILER!!! entry. The kernel
// does not create missing parent directories, so the writer emits them itself. Times are zero so that the same
// inputs give the same archive (the base archive is cached by content).
type cpioWriter struct {
	w    io.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

const (
	cpioDir     = 0o040000
	cpioFile    = 0o100000
	cpioSymlink = 0o120000
	cpioChar    = 0o020000
)

func newCPIO(w io.Writer) *cpioWriter {
	return &cpioWriter{w: w, dirs: map[string]bool{"": true, ".": true}}
}

func (c *cpioWriter) header(name string, mode uint32, size int64, rdevMajor, rdevMinor uint32) {
	if c.err != nil {
		return
	}
	if size < 0 || size > 0xffffffff {
		c.err = fmt.Errorf("cpio: %s is %d bytes; newc holds at most 4 GiB per file", name, size)
		return
	}
	c.ino++
	nlink := uint32(1)
	if mode&0o170000 == cpioDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write(append([]byte(name), 0))
	c.pad(int64(len(hdr) + len(name) + 1))
}

func (c *cpioWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}

func (c *cpioWriter) pad(n int64) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// clean turns a guest path into an archive name ("/lib/x" -> "lib/x") and creates its parent directories.
func (c *cpioWriter) clean(name string) string {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	c.mkdirAll(path.Dir(name))
	return name
}

func (c *cpioWriter) mkdirAll(dir string) {
	if c.dirs[dir] {
		return
	}
	c.mkdirAll(path.Dir(dir))
	c.dirs[dir] = true
	c.header(dir, cpioDir|0o755, 0, 0, 0)
}

// Dir adds a directory (and its parents).
func (c *cpioWriter) Dir(name string) { c.mkdirAll(c.clean(name)) }

// File adds a regular file of the given size read from r.
func (c *cpioWriter) File(name string, perm uint32, size int64, r io.Reader) {
	name = c.clean(name)
	c.header(name, cpioFile|perm&0o7777, size, 0, 0)
	if c.err != nil {
		return
	}
	n, err := io.CopyN(c.w, r, size)
	if err != nil {
		c.err = fmt.Errorf("cpio: copy %s: %d of %d bytes: %w", name, n, size, err)
		return
	}
	c.pad(size)
}

// Bytes adds a regular file with the given contents.
func (c *cpioWriter) Bytes(name string, perm uint32, data []byte) {
	c.File(name, perm, int64(len(data)), bytes.NewReader(data))
}

// Symlink adds a symbolic link; the target is stored as the link's data.
func (c *cpioWriter) Symlink(name, target string) {
	name = c.clean(name)
	c.header(name, cpioSymlink|0o777, int64(len(target)), 0, 0)
	c.write([]byte(target))
	c.pad(int64(len(target)))
}

// CharDev adds a character device node, e.g. /dev/console (5,1), which the kernel opens for init's stdio before
// init can mount devtmpfs.
func (c *cpioWriter) CharDev(name string, perm, major, minor uint32) {
	c.header(c.clean(name), cpioChar|perm&0o7777, 0, major, minor)
}

// Close writes the trailer and returns the first error.
func (c *cpioWriter) Close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	return c.err
}
