package console

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkOverview1000 renders the overview of 1,000 credentials (three
// targets each; some overdue, failing or with a retirement pending and a
// session on the old role) from statuses as the engine returns them:
// health, filter, sort and the whole page, written to a response. Reading
// the statuses from the store is not in it (see the engine's StatusAll).
func BenchmarkOverview1000(b *testing.B) {
	c := testConsole()
	sts := fakeStatuses(1000)
	se := adminSession()
	req := httptest.NewRequest("GET", "/", nil)
	var page []byte
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		c.render(rec, req, http.StatusOK, se, overviewData(sts, "", "", "health"))
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
		page = rec.Body.Bytes()
	}
	b.StopTimer()
	// The weight over the wire behind a compressing proxy: the service
	// itself does not compress.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(page)
	_ = zw.Close()
	b.ReportMetric(float64(len(page)), "html-bytes")
	b.ReportMetric(float64(gz.Len()), "gzip-bytes")
}
