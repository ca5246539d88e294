package consolidate

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
)

// ReportPDFFile is the report rendered to PDF, beside report.md.
const ReportPDFFile = "report.pdf"

// WritePDFs renders every dossier written by a consolidation, and the report, to PDF next to
// their Markdown files. It returns the number of PDFs written.
func WritePDFs(sum *Summary) (int, error) {
	if sum == nil || sum.Report == nil {
		return 0, fmt.Errorf("nothing consolidated to render")
	}
	stamp := sum.Report.GeneratedAt
	n := 0
	for _, d := range sum.Report.Dossiers {
		base := strings.TrimSuffix(d.File, ".json")
		md, err := os.ReadFile(filepath.Join(sum.Dir, base+".md"))
		if err != nil {
			return n, fmt.Errorf("read dossier of %q: %w", d.EntityID, err)
		}
		pdf, err := MarkdownPDF(md, d.Name, stamp)
		if err != nil {
			return n, fmt.Errorf("render dossier of %q: %w", d.EntityID, err)
		}
		if err := writeAtomic(filepath.Join(sum.Dir, base+".pdf"), pdf); err != nil {
			return n, err
		}
		n++
	}
	pdf, err := MarkdownPDF(sum.Report.Markdown(), "Enrichment report "+sum.Report.BatchID, stamp)
	if err != nil {
		return n, fmt.Errorf("render report: %w", err)
	}
	if err := writeAtomic(filepath.Join(sum.Dir, ReportPDFFile), pdf); err != nil {
		return n, err
	}
	return n + 1, nil
}

// MarkdownPDF renders the Markdown our dossiers and reports use (headings, bullets, tables,
// paragraphs) to an A4 PDF. The Go fonts are embedded, with full Latin, Greek and Cyrillic
// coverage; characters they lack (CJK, emoji) print as blanks rather than failing the export.
// stamp fixes the document dates, so the same input yields the same file.
func MarkdownPDF(md []byte, title string, stamp time.Time) ([]byte, error) {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.AddUTF8FontFromBytes("go", "", goregular.TTF)
	pdf.AddUTF8FontFromBytes("go", "B", gobold.TTF)
	pdf.SetTitle(title, true)
	pdf.SetCreator("enrich", true)
	pdf.SetCreationDate(stamp)
	pdf.SetModificationDate(stamp)
	pdf.SetCatalogSort(true)
	pdf.SetMargins(18, 18, 18)
	pdf.SetAutoPageBreak(true, 18)
	pdf.AddPage()
	width, _ := pdf.GetPageSize()
	text := width - 36

	for _, line := range strings.Split(strings.ReplaceAll(string(md), "\r\n", "\n"), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			pdf.Ln(2)
		case strings.HasPrefix(trimmed, "# "):
			pdf.SetFont("go", "B", 17)
			pdf.MultiCell(text, 8, plain(trimmed[2:]), "", "L", false)
			pdf.Ln(2)
		case strings.HasPrefix(trimmed, "## "), strings.HasPrefix(trimmed, "### "):
			pdf.Ln(2)
			pdf.SetFont("go", "B", 13)
			pdf.MultiCell(text, 6.5, plain(strings.TrimLeft(trimmed, "# ")), "", "L", false)
			pdf.Ln(1)
		case isTableRule(trimmed):
			// The |---|---| line under a table header carries no text.
		case strings.HasPrefix(trimmed, "|"):
			pdf.SetFont("go", "", 8.5)
			cells := strings.Split(strings.Trim(trimmed, "|"), "|")
			for i := range cells {
				cells[i] = strings.TrimSpace(plain(strings.ReplaceAll(cells[i], `\|`, "|")))
			}
			pdf.MultiCell(text, 4.5, strings.Join(cells, "  ·  "), "B", "L", false)
		case strings.HasPrefix(trimmed, "- "), strings.HasPrefix(trimmed, "* "):
			pdf.SetFont("go", "", 10)
			pdf.MultiCell(text, 5, "•  "+plain(trimmed[2:]), "", "L", false)
		case strings.HasPrefix(trimmed, "!["):
			// Images (the progress chart) stay beside the report as files.
			pdf.SetFont("go", "", 9)
			pdf.MultiCell(text, 5, "(chart: "+ProgressChartFile+")", "", "L", false)
		default:
			pdf.SetFont("go", "", 10)
			pdf.MultiCell(text, 5, plain(trimmed), "", "L", false)
		}
	}
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func isTableRule(s string) bool {
	return strings.HasPrefix(s, "|") && strings.Trim(s, "|-: ") == ""
}

// plain strips the Markdown emphasis, links and escapes our renderers produce.
func plain(s string) string {
	r := strings.NewReplacer("**", "", "`", "", `\[`, "[", `\]`, "]", "&lt;", "<", "&gt;", ">")
	s = r.Replace(s)
	// [text](target) -> text (target)
	for {
		open := strings.Index(s, "](")
		if open < 0 {
			break
		}
		end := strings.Index(s[open:], ")")
		start := strings.LastIndex(s[:open], "[")
		if end < 0 || start < 0 {
			break
		}
		s = s[:start] + s[start+1:open] + " (" + s[open+2:open+end] + ")" + s[open+end+1:]
	}
	return s
}
