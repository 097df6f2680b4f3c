package secret

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// testPlaintext has characters that every encoding treats specially, so a
// leak in any escaped or encoded spelling would show up in Leaks.
const testPlaintext = `Tr0ub4dor&3 p@ss/w:rd?#%+"'\<x>`

type exported struct{ Password String }

type unexported struct {
	name     string
	password String
}

func TestStringNeverPrintsPlaintext(t *testing.T) {
	t.Parallel()
	s := New(testPlaintext)
	// Held as any so vet does not object to verbs a struct does not suit:
	// misused verbs are exactly what a careless caller writes.
	var inStruct, inStructPtr any = unexported{"app", s}, &unexported{"app", s}

	slogText := func(args ...any) string {
		var b bytes.Buffer
		slog.New(slog.NewTextHandler(&b, nil)).Info("rotate", args...)
		return b.String()
	}
	slogJSON := func(args ...any) string {
		var b bytes.Buffer
		slog.New(slog.NewJSONHandler(&b, nil)).Info("rotate", args...)
		return b.String()
	}
	jsonOf := func(t *testing.T, v any) string {
		out, err := json.Marshal(v)
		require.NoError(t, err)
		return string(out)
	}

	tests := []struct {
		name     string
		out      func(t *testing.T) string
		redacted bool // the placeholder must be visible, not just the plaintext absent
	}{
		{"fmt %v", func(*testing.T) string { return fmt.Sprintf("%v", s) }, true},
		{"fmt %+v", func(*testing.T) string { return fmt.Sprintf("%+v", s) }, true},
		{"fmt %#v", func(*testing.T) string { return fmt.Sprintf("%#v", s) }, true},
		{"fmt %s", func(*testing.T) string { return fmt.Sprintf("%s", s) }, true},
		{"fmt %q", func(*testing.T) string { return fmt.Sprintf("%q", s) }, true},
		{"fmt %x", func(*testing.T) string { return fmt.Sprintf("%x", s) }, true},
		{"fmt %X", func(*testing.T) string { return fmt.Sprintf("%X", s) }, true},
		{"fmt %d", func(*testing.T) string { return fmt.Sprintf("%d", s) }, true},
		{"fmt %20s", func(*testing.T) string { return fmt.Sprintf("%20s", s) }, true},
		{"fmt %p", func(*testing.T) string { return fmt.Sprintf("%p", s) }, false},
		{"fmt Sprint", func(*testing.T) string { return fmt.Sprint(s) }, true},
		{"fmt Sprintln", func(*testing.T) string { return fmt.Sprintln("pw", s) }, true},
		{"fmt pointer %v", func(*testing.T) string { return fmt.Sprintf("%v", &s) }, true},
		{"fmt pointer %s", func(*testing.T) string { return fmt.Sprintf("%s", &s) }, true},
		{"fmt exported field %v", func(*testing.T) string { return fmt.Sprintf("%v", exported{s}) }, true},
		{"fmt exported field %+v", func(*testing.T) string { return fmt.Sprintf("%+v", exported{s}) }, true},
		{"fmt exported field %#v", func(*testing.T) string { return fmt.Sprintf("%#v", exported{s}) }, true},
		{"fmt exported field %x", func(*testing.T) string { return fmt.Sprintf("%x", exported{s}) }, true},
		// fmt cannot call methods on unexported fields; these stay clean
		// only because String masks what it holds.
		{"fmt unexported field %v", func(*testing.T) string { return fmt.Sprintf("%v", unexported{"app", s}) }, false},
		{"fmt unexported field %+v", func(*testing.T) string { return fmt.Sprintf("%+v", unexported{"app", s}) }, false},
		{"fmt unexported field %#v", func(*testing.T) string { return fmt.Sprintf("%#v", unexported{"app", s}) }, false},
		{"fmt unexported field %s", func(*testing.T) string { return fmt.Sprintf("%s", inStruct) }, false},
		{"fmt unexported field %x", func(*testing.T) string { return fmt.Sprintf("%x", inStruct) }, false},
		{"fmt unexported field %q", func(*testing.T) string { return fmt.Sprintf("%q", inStructPtr) }, false},
		{"fmt reflect.Value", func(*testing.T) string { return fmt.Sprint(reflect.ValueOf(s)) }, false},
		{"fmt slice", func(*testing.T) string { return fmt.Sprintf("%v", []String{s, s}) }, true},
		{"fmt map value", func(*testing.T) string { return fmt.Sprintf("%v", map[string]String{"pw": s}) }, true},
		{"fmt map key", func(*testing.T) string { return fmt.Sprintf("%v", map[String]int{s: 1}) }, true},
		{"fmt Errorf", func(*testing.T) string { return fmt.Errorf("connect with %v: %w", s, errors.ErrUnsupported).Error() }, true},
		{"errors.New(fmt.Sprint)", func(*testing.T) string { return errors.New(fmt.Sprint(s)).Error() }, true},
		{"json", func(t *testing.T) string { return jsonOf(t, s) }, true},
		{"json pointer", func(t *testing.T) string { return jsonOf(t, &s) }, true},
		{"json struct", func(t *testing.T) string { return jsonOf(t, exported{s}) }, true},
		{"json unexported field", func(t *testing.T) string { return jsonOf(t, unexported{"app", s}) }, false},
		{"json map value", func(t *testing.T) string { return jsonOf(t, map[string]String{"pw": s}) }, true},
		{"json map key", func(t *testing.T) string { return jsonOf(t, map[String]int{s: 1}) }, true},
		{"json slice", func(t *testing.T) string { return jsonOf(t, []String{s}) }, true},
		{"json nested", func(t *testing.T) string { return jsonOf(t, map[string]any{"cfg": []exported{{s}}}) }, true},
		{"xml", func(t *testing.T) string {
			out, err := xml.Marshal(exported{s})
			require.NoError(t, err)
			return string(out)
		}, true},
		{"slog text", func(*testing.T) string { return slogText("password", s) }, true},
		{"slog text struct", func(*testing.T) string { return slogText("cfg", exported{s}) }, true},
		{"slog text unexported field", func(*testing.T) string { return slogText("cfg", unexported{"app", s}) }, false},
		{"slog text group", func(*testing.T) string { return slogText(slog.Group("db", "password", s)) }, true},
		{"slog text map", func(*testing.T) string { return slogText("m", map[string]String{"pw": s}) }, true},
		{"slog json", func(*testing.T) string { return slogJSON("password", s) }, true},
		{"slog json struct", func(*testing.T) string { return slogJSON("cfg", exported{s}) }, true},
		{"slog json group", func(*testing.T) string { return slogJSON(slog.Group("db", slog.Any("password", s))) }, true},
		{"slog json map", func(*testing.T) string { return slogJSON("m", map[string]String{"pw": s}) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out := tt.out(t)
			require.NotContains(t, out, testPlaintext)
			require.Empty(t, Leaks([]byte(out), s), "output: %s", out)
			if tt.redacted {
				require.Contains(t, out, Redacted)
			}
		})
	}
}

// failureRecorder stands in for *testing.T to capture what a failing
// testify assertion would print.
type failureRecorder struct{ out strings.Builder }

func (r *failureRecorder) Errorf(format string, args ...any) { fmt.Fprintf(&r.out, format, args...) }
func (r *failureRecorder) FailNow()                          {}

func TestStringTestFailureOutput(t *testing.T) {
	t.Parallel()
	want, got := New(testPlaintext), New(testPlaintext+"-other")
	tests := []struct {
		name   string
		assert func(require.TestingT)
	}{
		{"Equal", func(r require.TestingT) { require.Equal(r, want, got) }},
		{"Equal structs", func(r require.TestingT) { require.Equal(r, exported{want}, exported{got}) }},
		{"Equal unexported", func(r require.TestingT) { require.Equal(r, unexported{"a", want}, unexported{"a", got}) }},
		{"Empty", func(r require.TestingT) { require.Empty(r, want) }},
		{"Zero", func(r require.TestingT) { require.Zero(r, unexported{"a", want}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var r failureRecorder
			tt.assert(&r)
			out := r.out.String()
			require.NotEmpty(t, out, "the assertion was meant to fail")
			require.Empty(t, Leaks([]byte(out), want, got), "output: %s", out)
		})
	}
}

func TestStringValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		plaintext string
	}{
		{"empty", ""},
		{"ascii", "hunter2"},
		{"special", testPlaintext},
		{"non-ascii", "pässwörd-密码"},
		{"binary", "\x00\xff\x80 trailing"},
		{"long", strings.Repeat("0123456789abcdef", 300)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New(tt.plaintext)
			require.Equal(t, tt.plaintext, s.Reveal())
			require.Equal(t, tt.plaintext == "", s.IsZero())
			require.Equal(t, tt.plaintext == "", s == String{})

			// Masking must keep every kind of equality intact.
			again := New(tt.plaintext)
			require.True(t, s.Equal(again))
			require.True(t, s == again)
			require.Equal(t, s, again)
			require.Equal(t, 1, map[String]int{s: 1}[again])

			other := New(tt.plaintext + "x")
			require.False(t, s.Equal(other))
			require.False(t, s == other)
			require.NotEqual(t, s, other)
		})
	}
}

func TestStringZeroValue(t *testing.T) {
	t.Parallel()
	var s String
	require.True(t, s.IsZero())
	require.Empty(t, s.Reveal())
	require.True(t, s.Equal(New("")))
	require.Equal(t, Redacted, s.String())
}

func TestStringMarshalers(t *testing.T) {
	t.Parallel()
	s := New(testPlaintext)
	tests := []struct {
		name string
		got  func() (string, error)
		want string
	}{
		{"MarshalJSON", func() (string, error) { b, err := s.MarshalJSON(); return string(b), err }, `"[REDACTED]"`},
		{"MarshalText", func() (string, error) { b, err := s.MarshalText(); return string(b), err }, Redacted},
		{"LogValue", func() (string, error) { return s.LogValue().String(), nil }, Redacted},
		{"String", func() (string, error) { return s.String(), nil }, Redacted},
		{"GoString", func() (string, error) { return s.GoString(), nil }, "secret.String([REDACTED])"},
		{"%#v uses GoString", func() (string, error) { return fmt.Sprintf("%#v", s), nil }, "secret.String([REDACTED])"},
		{"%q quotes", func() (string, error) { return fmt.Sprintf("%q", s), nil }, `"[REDACTED]"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.got()
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}
