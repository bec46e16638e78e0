package report

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/napilab/napilab/internal/testenv"
)

// TestBrowserOpensPageOffline opens the report page from a file:// URL in headless Chromium, the way a reader
// opens a mailed attachment, and checks what a reader would see: every plot laid out with a size, a screenshot
// that is not blank and shows the modes' colours, no script error or console message, and no request for
// anything but the page itself. A second, broken page proves the checks can fail.
//
// It runs on the host only: the qemu lab's initramfs has no browser, and the page does not depend on the kernel.
// Without Chromium it skips, which NAPILAB_REQUIRE_PRIV=1 (CI) turns into a failure: make deps installs it.
func TestBrowserOpensPageOffline(t *testing.T) {
	if testenv.InLab() {
		t.Skip("host-only: the lab has no browser, and the page does not depend on the kernel")
	}
	bin, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Skip(t, "headless Chromium is not installed (make deps installs Debian's chromium): %v", err)
	}
	dir := t.TempDir()
	pagePath := filepath.Join(dir, "report.html")
	if err := WriteFile(pagePath, []*Run{readDemo(t)}); err != nil {
		t.Fatal(err)
	}
	badPath := filepath.Join(dir, "broken.html")
	bad := `<!DOCTYPE html><html><body><p>broken</p><img src="missing.png"><script>throw new Error("boom")</script></body></html>`
	if err := os.WriteFile(badPath, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}

	// A deadline against a hung browser, not a speed requirement.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := startBrowser(ctx, t, bin, dir)

	// The control: the checks must see what is wrong with the broken page.
	got := b.open(t, "file://"+badPath)
	if len(got.problems) == 0 || !strings.Contains(strings.Join(got.problems, "\n"), "boom") {
		t.Fatalf("the broken page's script error went unseen: %q", got.problems)
	}
	if !strings.Contains(strings.Join(got.requests, " "), "missing.png") {
		t.Fatalf("the broken page's request for missing.png went unseen: %q", got.requests)
	}

	got = b.open(t, "file://"+pagePath)
	for _, p := range got.problems {
		t.Errorf("the page logged: %s", p)
	}
	for _, u := range got.requests {
		if u != "file://"+pagePath {
			t.Errorf("the page requested %s", u)
		}
	}
	var plots []struct {
		ID     string  `json:"id"`
		Width  float64 `json:"w"`
		Height float64 `json:"h"`
	}
	b.eval(t, `Array.from(document.querySelectorAll("figure")).map(f => { const s = f.querySelector("svg.plot");
		const r = s ? s.getBoundingClientRect() : {width: 0, height: 0}; return {id: f.id, w: r.width, h: r.height}; })`, &plots)
	if len(plots) != 11 {
		t.Errorf("the browser found %d figures, want 11", len(plots))
	}
	for _, p := range plots {
		if p.Width < 200 || p.Height < 100 {
			t.Errorf("plot %s is laid out %.0f × %.0f px: not visible", p.ID, p.Width, p.Height)
		}
	}
	shot := b.screenshot(t)
	if dst := os.Getenv("NAPILAB_REPORT_SCREENSHOT"); dst != "" {
		_ = os.WriteFile(dst, shot, 0o644)
	}
	checkScreenshot(t, shot)
}

// checkScreenshot asserts the page is not blank: plenty of non-white pixels, and the colour of the
// "interrupts" lines (so the SVG plots, not just the text, were rendered).
func checkScreenshot(t *testing.T, shot []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	bounds := img.Bounds()
	var inked, modeColoured int
	want := modeColors["interrupts"]
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			r, g, b = r>>8, g>>8, b>>8
			if r < 240 || g < 240 || b < 240 {
				inked++
			}
			if near(r, want.R) && near(g, want.G) && near(b, want.B) {
				modeColoured++
			}
		}
	}
	total := bounds.Dx() * bounds.Dy()
	t.Logf("screenshot %d × %d px, %.1f %% inked, %d px in the interrupts colour", bounds.Dx(), bounds.Dy(),
		100*float64(inked)/float64(total), modeColoured)
	if bounds.Dy() < 2000 || inked < total/50 {
		t.Errorf("the screenshot is nearly blank: %d × %d px, %d inked", bounds.Dx(), bounds.Dy(), inked)
	}
	if modeColoured < 200 {
		t.Errorf("only %d pixels in the interrupts line colour: the plots did not render", modeColoured)
	}
}

func near(v uint32, want uint8) bool { return v+12 >= uint32(want) && v <= uint32(want)+12 }

// browser is headless Chromium driven through the DevTools protocol over a pipe (--remote-debugging-pipe:
// commands on fd 3, replies and events on fd 4, each message NUL-terminated): no port, no extra dependency.
type browser struct {
	w       io.Writer
	r       *bufio.Reader
	id      int
	session string
	events  []cdpMessage
}

type cdpMessage struct {
	ID        int             `json:"id"`
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params"`
	Result    json.RawMessage `json:"result"`
	Error     *struct{ Message string }
	SessionID string `json:"sessionId"`
}

func startBrowser(ctx context.Context, t *testing.T, bin, dir string) *browser {
	t.Helper()
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// The flags that let Chromium run as root on a machine without network or GPU, and keep it from reaching
	// out on its own (see the machine notes); a fresh profile each time.
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic", "--hide-scrollbars",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{cmdR, outW}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmdR.Close()
	outW.Close()
	t.Cleanup(func() {
		cmdW.Close() // Chromium exits when its command pipe closes
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		outR.Close()
		if t.Failed() {
			t.Logf("chromium stderr:\n%s", stderr.String())
		}
	})
	b := &browser{w: cmdW, r: bufio.NewReader(outR)}
	var target struct{ TargetID string }
	b.call(t, "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct{ SessionID string }
	b.call(t, "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	b.session = attached.SessionID
	for _, domain := range []string{"Page", "Runtime", "Log", "Network"} {
		b.call(t, domain+".enable", map[string]any{}, nil)
	}
	b.call(t, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1400, "height": 1000,
		"deviceScaleFactor": 1, "mobile": false}, nil)
	return b
}

// call sends a command and waits for its reply, keeping the events that arrive meanwhile.
func (b *browser) call(t *testing.T, method string, params, result any) {
	t.Helper()
	b.id++
	msg := map[string]any{"id": b.id, "method": method, "params": params}
	if b.session != "" {
		msg["sessionId"] = b.session
	}
	out, _ := json.Marshal(msg)
	if _, err := b.w.Write(append(out, 0)); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	for {
		m := b.read(t)
		if m.ID != b.id {
			if m.Method != "" {
				b.events = append(b.events, m)
			}
			continue
		}
		if m.Error != nil {
			t.Fatalf("%s: %s", method, m.Error.Message)
		}
		if result != nil {
			if err := json.Unmarshal(m.Result, result); err != nil {
				t.Fatalf("%s: %v", method, err)
			}
		}
		return
	}
}

func (b *browser) read(t *testing.T) cdpMessage {
	t.Helper()
	line, err := b.r.ReadBytes(0)
	if err != nil {
		t.Fatalf("chromium's DevTools pipe: %v", err)
	}
	var m cdpMessage
	if err := json.Unmarshal(line[:len(line)-1], &m); err != nil {
		t.Fatalf("chromium's DevTools pipe: %v in %.200q", err, line)
	}
	return m
}

// visit is what one page load showed: problems (exceptions, console messages, logged errors and warnings,
// failed loads) and the URLs the page requested.
type visit struct {
	problems, requests []string
}

// open loads url, waits until it has loaded, and reports what happened on the way.
func (b *browser) open(t *testing.T, url string) visit {
	t.Helper()
	b.events = nil
	b.call(t, "Page.navigate", map[string]any{"url": url}, nil)
	for !hasEvent(b.events, "Page.loadEventFired") {
		m := b.read(t)
		if m.Method != "" {
			b.events = append(b.events, m)
		}
	}
	// Everything the page logs while loading has been sent before the load event; a round trip makes sure it
	// has also been read.
	b.call(t, "Runtime.evaluate", map[string]any{"expression": "1"}, nil)
	var v visit
	for _, e := range b.events {
		var p struct {
			ExceptionDetails struct {
				Text      string
				Exception struct{ Description string }
			}
			Type      string
			Args      []struct{ Value any }
			Entry     struct{ Level, Text, URL string }
			Request   struct{ URL string }
			ErrorText string
		}
		_ = json.Unmarshal(e.Params, &p)
		switch e.Method {
		case "Runtime.exceptionThrown":
			v.problems = append(v.problems, "exception: "+p.ExceptionDetails.Text+" "+p.ExceptionDetails.Exception.Description)
		case "Runtime.consoleAPICalled":
			v.problems = append(v.problems, fmt.Sprintf("console.%s: %v", p.Type, p.Args))
		case "Log.entryAdded":
			if p.Entry.Level == "error" || p.Entry.Level == "warning" {
				v.problems = append(v.problems, fmt.Sprintf("log %s: %s %s", p.Entry.Level, p.Entry.Text, p.Entry.URL))
			}
		case "Network.loadingFailed":
			v.problems = append(v.problems, "load failed: "+p.ErrorText)
		case "Network.requestWillBeSent":
			v.requests = append(v.requests, p.Request.URL)
		}
	}
	return v
}

func hasEvent(ms []cdpMessage, method string) bool {
	for _, m := range ms {
		if m.Method == method {
			return true
		}
	}
	return false
}

// eval evaluates a JavaScript expression in the page (the test's probe; the page itself has no script).
func (b *browser) eval(t *testing.T, expr string, out any) {
	t.Helper()
	var res struct {
		Result           struct{ Value json.RawMessage }
		ExceptionDetails *struct{ Text string }
	}
	b.call(t, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res)
	if res.ExceptionDetails != nil {
		t.Fatalf("evaluate: %s", res.ExceptionDetails.Text)
	}
	if err := json.Unmarshal(res.Result.Value, out); err != nil {
		t.Fatalf("evaluate: %v", err)
	}
}

// screenshot captures the whole page, not only the first screen.
func (b *browser) screenshot(t *testing.T) []byte {
	t.Helper()
	var metrics struct{ CSSContentSize struct{ Height float64 } }
	b.call(t, "Page.getLayoutMetrics", map[string]any{}, &metrics)
	h := int(min(max(metrics.CSSContentSize.Height, 1000), 16000))
	b.call(t, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1400, "height": h,
		"deviceScaleFactor": 1, "mobile": false}, nil)
	var shot struct{ Data string }
	b.call(t, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil || len(png) == 0 {
		t.Fatalf("screenshot: %v (%d bytes)", err, len(png))
	}
	return png
}
