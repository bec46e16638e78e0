package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Protocol is the version of the wire protocol. A controller and an agent talk only when theirs are equal, and
// only when their napilab versions are equal too: there is no negotiation to get wrong.
const Protocol = 1

// Limits of the wire. A line is one JSON message; the largest is a client result with its intervals and its
// latency histogram, tens of kilobytes. Anything longer is not napilab talking.
const (
	MaxLine     = 4 << 20
	maxPreamble = 16 << 10 // what a noisy remote shell may print before the agent's first line, kept for the error
)

// Magic is the agent's first line: who it is, so that a controller knows it reached napilab and not a shell.
type Magic struct {
	Agent    int    `json:"napilab_agent"` // the protocol version
	Version  string `json:"version"`       // napilab's version.String()
	SHA256   string `json:"sha256"`        // of the agent's executable
	Arch     string `json:"arch"`          // GOARCH
	Hostname string `json:"hostname"`
}

// magicPrefix starts the magic line: the encoder writes the field first.
const magicPrefix = `{"napilab_agent":`

// Request is one operation the controller asks for. IDs count up from 1 without gaps, so a message that is out
// of order, repeated or lost shows as one.
type Request struct {
	ID   uint64          `json:"id"`
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Response answers the request of the same ID: a result or an error, never both.
type Response struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *WireError      `json:"error,omitempty"`
}

// WireError is an error as it crosses the wire: its sentence and what it matches, so that the controller can
// still branch on "not supported" or "held by another controller".
type WireError struct {
	Message string `json:"message"`
	Kind    string `json:"kind,omitempty"` // one of the Kind* constants
	// Field names the spec field a kernel.FieldError is about; Message is then what follows the field's name,
	// so that the controller's command line can name its own flag.
	Field string `json:"field,omitempty"`
}

// The kinds of errors that keep their meaning across the wire.
const (
	KindNotExist    = "not-exist"
	KindPermission  = "permission"
	KindUnsupported = "unsupported"
	KindHeld        = "held"
	KindProtocol    = "protocol"
	KindLeaseLost   = "lease-lost"
)

// ProtocolError is a message that breaks the protocol: malformed, oversized, out of order, or unexpected.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "napilab agent protocol: " + e.Msg }

func protoErrorf(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// reader reads the protocol's lines, refusing any longer than MaxLine.
type reader struct{ r *bufio.Reader }

func newReader(r io.Reader) *reader { return &reader{r: bufio.NewReaderSize(r, 64<<10)} }

// line returns the next line without its newline. io.EOF means the peer closed cleanly between lines; a line
// cut off by the end of the stream is io.ErrUnexpectedEOF.
func (r *reader) line() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.r.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxLine+1 {
			return nil, protoErrorf("a message longer than %d bytes", MaxLine)
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return bytes.TrimSuffix(buf[:len(buf)-1], []byte{'\r'}), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) == 0:
			return nil, io.EOF
		case errors.Is(err, io.EOF):
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// decodeStrict decodes one JSON value that must be all of b, with no field the type does not know.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the message")
	}
	return nil
}

// ParseRequest decodes a request line.
func ParseRequest(line []byte) (Request, error) {
	var r Request
	if err := decodeStrict(line, &r); err != nil {
		return Request{}, protoErrorf("a request that is not one: %v", err)
	}
	if r.ID == 0 || r.Op == "" {
		return Request{}, protoErrorf("a request without an id or an op")
	}
	return r, nil
}

// ParseResponse decodes a response line.
func ParseResponse(line []byte) (Response, error) {
	var r Response
	if err := decodeStrict(line, &r); err != nil {
		return Response{}, protoErrorf("a response that is not one: %v", err)
	}
	if r.ID == 0 || (r.Error == nil) == (r.Result == nil) {
		return Response{}, protoErrorf("a response needs an id and either a result or an error")
	}
	if r.Error != nil && r.Error.Message == "" {
		return Response{}, protoErrorf("an error response without a message")
	}
	return r, nil
}

// ParseMagic decodes the agent's first line.
func ParseMagic(line []byte) (Magic, error) {
	var m Magic
	if err := decodeStrict(line, &m); err != nil {
		return Magic{}, protoErrorf("a first line that is not the agent's: %v", err)
	}
	if m.Agent <= 0 || m.Version == "" || len(m.SHA256) != 64 {
		return Magic{}, protoErrorf("an agent line without protocol, version or sha256")
	}
	return m, nil
}

// readMagic reads lines until the agent's magic line. Whatever comes before it was printed by the remote shell
// (a .bashrc, a motd): it is returned so that the error can quote it, and it is an error, because a shell that
// prints on a non-interactive session may print again in the middle of the protocol.
func readMagic(r *reader) (Magic, string, error) {
	var pre strings.Builder
	for {
		line, err := r.line()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return Magic{}, pre.String(), io.ErrUnexpectedEOF
			}
			return Magic{}, pre.String(), err
		}
		if bytes.HasPrefix(line, []byte(magicPrefix)) {
			m, err := ParseMagic(line)
			return m, pre.String(), err
		}
		if pre.Len() < maxPreamble {
			pre.Write(line[:min(len(line), maxPreamble-pre.Len())])
			pre.WriteByte('\n')
		}
	}
}

// writeLine writes v as one JSON line.
func writeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > MaxLine {
		return protoErrorf("a message of %d bytes, more than %d", len(b), MaxLine)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
