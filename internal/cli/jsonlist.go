package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
)

// printJSONList prints a list exactly as printJSON would (the same bytes),
// one element at a time: printJSON marshals the whole document into one
// buffer and indents it into a second, and for `plan` or `rotate --all`
// over 1,000 credentials growing those two megabyte buffers was a tenth
// of the command's time.
func printJSONList[T any](f *Factory, list []T) error {
	if list == nil {
		return printJSON(f, list) // null
	}
	l := newJSONList(f, false)
	for _, v := range list {
		if err := l.add(v); err != nil {
			return err
		}
	}
	return l.close()
}

// jsonList writes a JSON list as its elements come, in the bytes
// printJSON would print for the whole list, so that a command can print
// each element as soon as it has it and keep none of them.
type jsonList struct {
	w *bufio.Writer
	// enc encodes each element into buf. An Encoder keeps its indenting
	// buffer from one element to the next, where MarshalIndent makes two
	// new ones for each (2.8 MB of a 1,000-credential plan).
	enc *json.Encoder
	buf bytes.Buffer
	n   int
	// each flushes every element as it is added, for a list whose
	// elements come over minutes (a batch of rotations), so that whoever
	// reads the output sees each one when it is done.
	each bool
}

func newJSONList(f *Factory, each bool) *jsonList {
	f.wroteJSON = true
	l := &jsonList{w: bufio.NewWriter(f.IO.Out), each: each}
	l.enc = json.NewEncoder(&l.buf)
	l.enc.SetIndent("  ", "  ")
	return l
}

// add writes v as the list's next element.
func (l *jsonList) add(v any) error {
	l.buf.Reset()
	if err := l.enc.Encode(v); err != nil {
		return err
	}
	b := bytes.TrimSuffix(l.buf.Bytes(), []byte("\n"))
	if l.n == 0 {
		l.w.WriteString("[\n  ")
	} else {
		l.w.WriteString(",\n  ")
	}
	l.n++
	l.w.Write(b)
	if l.each {
		return l.w.Flush()
	}
	return nil
}

// close ends the list: `[]` when nothing was added.
func (l *jsonList) close() error {
	if l.n == 0 {
		l.w.WriteString("[]\n")
	} else {
		l.w.WriteString("\n]\n")
	}
	return l.w.Flush()
}
