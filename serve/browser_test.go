package serve

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/imgcap/imgcap/models"
)

// chromium finds a Chromium or Chrome binary: $IMGCAP_CHROMIUM, else the usual names on PATH.
func chromium() string {
	if p := os.Getenv("IMGCAP_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestBrowser drives the page in headless Chromium: it uploads an image, chooses two models,
// clicks "Generate caption" and reads both captions, which must equal the model's own caption
// of the image; then it picks a text file named .jpg and reads the page's error message. It saves
// screenshots to $IMGCAP_SCREENSHOT (default: the test's temporary directory), one at desktop
// width and one at phone width (…-phone.png).
func TestBrowser(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("no Chromium binary (install Debian's chromium package: scripts/browser-test-deps.sh, or set IMGCAP_CHROMIUM)")
	}
	if testing.Short() {
		t.Skip("starts a browser")
	}
	a, b := openTiny(t, "vit-gpt2-tiny"), openTiny(t, "vit-gpt2-tiny-copy")
	dir := t.TempDir()
	imgPath := filepath.Join(dir, "photo.png")
	imgData := encodePNG(t, testImage(96, 64, 2))
	if err := os.WriteFile(imgPath, imgData, 0o644); err != nil {
		t.Fatal(err)
	}
	notImage := filepath.Join(dir, "notes.jpg")
	if err := os.WriteFile(notImage, []byte("this is a text file, not a JPEG\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := captionDirect(t, a, decode(t, imgData), models.GenerateOptions{NumBeams: 1, MaxNewTokens: 6})
	_, hs := startServer(t, Options{Models: []Model{a, b}, MaxBatch: 4, MaxWait: 5 * time.Millisecond})

	shot := os.Getenv("IMGCAP_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "serve-page.png")
	}
	phoneShot := strings.TrimSuffix(shot, filepath.Ext(shot)) + "-phone.png"

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-gpu", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	// Start the browser with a context without a deadline (a deadline on the first run would
	// stop the browser), then bound each step.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, time.Minute)
		defer scancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, time.Minute)
		defer scancel()
		s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}

	step("open the page",
		chromedp.Navigate(hs.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#model-1")),
	)
	step("choose the image, both models and options",
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{imgPath}),
		chromedp.WaitVisible(chromedp.CSS("#preview")),
		chromedp.Click(chromedp.CSS("#model-1")),
		chromedp.SendKeys(chromedp.CSS("#max-tokens"), "6"),
		chromedp.Poll[chromedp.Void](`!document.getElementById('go').disabled`),
		chromedp.Click(chromedp.CSS("#go")),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll('#cards li.done, #cards li.failed').length === 2`),
	)
	for i, name := range []string{"vit-gpt2-tiny", "vit-gpt2-tiny-copy"} {
		card := "#cards li:nth-child(" + string(rune('1'+i)) + ")"
		if got := text(card + " h3"); got != name {
			t.Errorf("card %d is for %q, want %q", i, got, name)
		}
		if got := text(card + " .caption"); got != want {
			t.Errorf("card %d caption %q, want %q", i, got, want)
		}
		if got := text(card + " .time"); !strings.Contains(got, "on the server") {
			t.Errorf("card %d time %q", i, got)
		}
	}
	if got := text("#go"); got != "Generate 2 captions" {
		t.Errorf("button %q", got)
	}
	sctx, scancel := context.WithTimeout(ctx, time.Minute)
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	scancel()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))

	// A phone-sized viewport: one column, everything still reachable.
	step("phone viewport",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Poll[chromedp.Void](`document.documentElement.scrollWidth <= window.innerWidth`),
	)
	sctx, scancel = context.WithTimeout(ctx, time.Minute)
	png, err = chromedp.Run(sctx, chromedp.FullScreenshot(100))
	scancel()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(phoneShot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("phone screenshot: %s", phoneShot)

	// A text file named .jpg: the page says so and keeps the button disabled.
	step("choose a file that is not an image",
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{notImage}),
		chromedp.WaitVisible(chromedp.CSS("#file-error")),
	)
	if got := text("#file-error"); !strings.Contains(got, "notes.jpg") || !strings.Contains(got, "could not be read as an image") {
		t.Errorf("error message %q", got)
	}
	disabled, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('go').disabled`))
	if err != nil || !disabled {
		t.Errorf("button disabled = %v (%v) after a bad file", disabled, err)
	}
}
