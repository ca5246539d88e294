package consolidate

import (
	"bytes"
	"fmt"
	"math"
	"time"
)

// ProgressChartFile is the progress chart beside report.md, which links it as an image.
const ProgressChartFile = "report-progress.svg"

// Chart geometry, in SVG user units.
const (
	chartW, chartH                     = 720, 320
	padLeft, padRight, padTop, padBott = 56, 16, 28, 44
)

// ProgressSVG draws cumulative succeeded and failed entities over time since launch as a
// self-contained SVG (no scripts, no external fonts or links), so it renders in any Markdown
// viewer, browser or PDF pipeline. total scales the y axis (the batch's selected entities).
func ProgressSVG(points []ProgressPoint, total int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		chartW, chartH, chartW, chartH)
	b.WriteString(`<title>Entities ended over time</title>` + "\n")
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartW, chartH)

	maxT := 0.0
	for _, p := range points {
		maxT = max(maxT, p.Seconds)
	}
	if maxT <= 0 {
		maxT = 1
	}
	maxY := max(total, 1)
	for _, p := range points {
		maxY = max(maxY, p.Succeeded+p.Failed)
	}
	plotW, plotH := float64(chartW-padLeft-padRight), float64(chartH-padTop-padBott)
	x := func(s float64) float64 { return padLeft + s/maxT*plotW }
	y := func(n int) float64 { return padTop + plotH - float64(n)/float64(maxY)*plotH }

	// Grid and axes: five steps on each axis.
	for i := 0; i <= 5; i++ {
		n := int(math.Round(float64(maxY) * float64(i) / 5))
		yy := y(n)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e4e7ec"/>`+"\n", padLeft, yy, chartW-padRight, yy)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" fill="#667085">%d</text>`+"\n", padLeft-6, yy+4, n)
		t := maxT * float64(i) / 5
		xx := x(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e4e7ec"/>`+"\n", xx, padTop, xx, chartH-padBott)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#667085">%s</text>`+"\n", xx, chartH-padBott+16,
			(time.Duration(t * float64(time.Second))).Round(time.Second))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#1d2330">time since launch</text>`+"\n", padLeft+int(plotW/2), chartH-6)
	fmt.Fprintf(&b, `<text x="%d" y="16" fill="#1d2330">entities ended (of %d)</text>`+"\n", padLeft, total)

	// Step lines: counts change at the instant an attempt ends.
	line := func(val func(ProgressPoint) int, color, name string) {
		if len(points) == 0 {
			return
		}
		var path bytes.Buffer
		fmt.Fprintf(&path, "M%.1f %.1f", x(points[0].Seconds), y(val(points[0])))
		for i := 1; i < len(points); i++ {
			fmt.Fprintf(&path, " H%.1f V%.1f", x(points[i].Seconds), y(val(points[i])))
		}
		fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="%s" stroke-width="2"><title>%s</title></path>`+"\n", path.String(), color, name)
	}
	line(func(p ProgressPoint) int { return p.Succeeded + p.Failed }, "#1f5fbf", "ended")
	line(func(p ProgressPoint) int { return p.Succeeded }, "#1a7f37", "succeeded")
	line(func(p ProgressPoint) int { return p.Failed }, "#c62828", "failed")

	// Legend.
	for i, l := range []struct{ name, color string }{{"ended", "#1f5fbf"}, {"succeeded", "#1a7f37"}, {"failed", "#c62828"}} {
		lx := chartW - padRight - 260 + i*90
		fmt.Fprintf(&b, `<rect x="%d" y="8" width="12" height="4" fill="%s"/><text x="%d" y="14" fill="#1d2330">%s</text>`+"\n", lx, l.color, lx+16, l.name)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}
