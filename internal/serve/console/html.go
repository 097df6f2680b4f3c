package console

import (
	"bytes"
	"net/url"
	"strconv"
	"strings"
)

// html writes a page into a buffer. The console's own markup goes in
// through raw, which takes only markup, never a string from data; what
// comes from data (names, errors, actors, details) goes in through text
// or path, which escape it for where it lands. Every attribute the pages
// write is double-quoted, so one escaping serves element text and
// attribute values alike: nothing a name or an error says can open an
// element or leave an attribute.
//
// The writer is the console's replacement for html/template, whose
// executor (text/template) calls reflect.Value.MethodByName and with it
// turns off the linker's dead-method elimination for the whole binary.
type html struct{ b *bytes.Buffer }

// markup is the console's own HTML. Only constants convert to it
// implicitly, so a string from data cannot reach raw by mistake.
type markup string

// escaper escapes as html.EscapeString does: the characters that could
// start a tag or an entity, or end a quoted attribute value.
var escaper = strings.NewReplacer(`&`, "&amp;", `'`, "&#39;", `<`, "&lt;", `>`, "&gt;", `"`, "&#34;")

// raw writes the page's own markup.
func (h html) raw(m markup) {
	h.b.WriteString(string(m))
}

// text writes s escaped, as an element's text or a quoted attribute's
// value.
func (h html) text(s string) {
	_, _ = escaper.WriteString(h.b, s) // writing to a bytes.Buffer never fails
}

// path writes s as one segment of a link's path after a fixed prefix
// (href="/credentials/…"): percent-escaped, so a / ? or # in a name stays
// in its segment instead of starting another part of the URL, then
// escaped for the attribute (PathEscape keeps &).
func (h html) path(s string) {
	h.text(url.PathEscape(s))
}

// num writes an integer (ids, counts, attempts); digits need no escaping.
func (h html) num(n int64) {
	h.b.Write(strconv.AppendInt(h.b.AvailableBuffer(), n, 10))
}

// el writes s as the text of one element: <tag>s</tag>.
func (h html) el(tag markup, s string) {
	h.raw("<" + tag + ">")
	h.text(s)
	h.raw("</" + tag + ">")
}

// items writes each of ss as a list item.
func (h html) items(ss []string) {
	for _, s := range ss {
		h.el("li", s)
	}
}

// options writes a <select>'s options, one per value, with chosen
// selected.
func (h html) options(values []string, chosen string) {
	for _, v := range values {
		h.raw(`<option value="`)
		h.text(v)
		h.raw(`"`)
		if v == chosen {
			h.raw(` selected`)
		}
		h.raw(`>`)
		h.text(v)
		h.raw(`</option>`)
	}
}
