package cli

import (
	"bufio"
	"encoding/json"
)

// printJSONList prints a list exactly as printJSON would (the same bytes),
// one element at a time: printJSON marshals the whole document into one
// buffer and indents it into a second, and for `plan` or `rotate --all`
// over 1,000 credentials growing those two megabyte buffers was a tenth
// of the command's time.
func printJSONList[T any](f *Factory, list []T) error {
	if len(list) == 0 {
		return printJSON(f, list) // null or []
	}
	f.wroteJSON = true
	w := bufio.NewWriter(f.IO.Out)
	w.WriteString("[\n  ")
	for i, v := range list {
		if i > 0 {
			w.WriteString(",\n  ")
		}
		b, err := json.MarshalIndent(v, "  ", "  ")
		if err != nil {
			return err
		}
		w.Write(b)
	}
	w.WriteString("\n]\n")
	return w.Flush()
}
