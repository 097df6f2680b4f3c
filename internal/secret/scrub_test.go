package secret

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// scrubPassword needs escaping in every format but is plain ASCII, as a
// user-supplied password might be.
const scrubPassword = `p@ss/w:rd?#%+ "'\<&>x`

// spellings renders pw the ways rotor's neighbours do: URLs, DSNs, JSON,
// Go quoting, SQL, hex, base64 and base64 inside longer base64.
func spellings(pw string) map[string]struct {
	text string
	form string
} {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("app", pw), Host: "db.example.com", Path: "/app"}
	jsonBody, _ := json.Marshal(map[string]string{"value": pw})
	dsn := "host=db user=app password='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw) + "'"
	b64 := base64.StdEncoding.EncodeToString
	type spelling = struct {
		text string
		form string
	}
	return map[string]spelling{
		"raw":                      {"password is " + pw + " (oops)", FormRaw},
		"url userinfo":             {"dial " + u.String() + ": refused", FormPercentEncoded},
		"url query":                {"https://api.example.com/?password=" + url.QueryEscape(pw), FormPercentEncoded},
		"url path":                 {"https://api.example.com/secrets/" + url.PathEscape(pw), FormPercentEncoded},
		"url user":                 {"postgres://" + url.User(pw).String() + "@db", FormPercentEncoded},
		"json":                     {"body: " + string(jsonBody), FormEscaped},
		"go %q":                    {fmt.Sprintf("bad value %q", pw), FormEscaped},
		"go %+q":                   {fmt.Sprintf("bad value %+q", pw+"é"), FormEscaped},
		"keyword dsn":              {dsn, FormEscaped},
		"sql literal":              {"ALTER ROLE app PASSWORD '" + strings.ReplaceAll(pw, "'", "''") + "'", FormEscaped},
		"hex":                      {fmt.Sprintf("dump %x end", pw), FormHex},
		"hex upper":                {fmt.Sprintf("dump %X end", pw), FormHex},
		"base64":                   {"data: " + b64([]byte(pw)), FormBase64},
		"base64 url":               {"data: " + base64.URLEncoding.EncodeToString([]byte(pw)), FormBase64},
		"base64 raw url":           {"data: " + base64.RawURLEncoding.EncodeToString([]byte(pw)), FormBase64},
		"basic auth (offset 1)":    {"Authorization: Basic " + b64([]byte("app:"+pw)), FormBase64},
		"k8s secret (offset 2)":    {"PGPASSWORD: " + b64([]byte("PGPASSWORD="+pw+"\n")), FormBase64},
		"inside base64 (offset 0)": {"blob " + b64([]byte("abc"+pw+"tail")), FormBase64},
	}
}

func TestScrubStringSpellings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		pw   string
	}{
		{"special characters", scrubPassword},
		{"generated shape", "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF"},
		{"default symbols", "x-y_z.w~v0123456789abcdefghij"},
	}
	for _, tt := range tests {
		for name, sp := range spellings(tt.pw) {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				secret := New(tt.pw)
				leaks := Leaks([]byte(sp.text), secret)
				require.NotEmpty(t, leaks, "the fixture must leak")
				// A password of unreserved characters has one spelling in
				// URLs, JSON and DSNs alike: the raw one.
				if tt.pw == scrubPassword || sp.form == FormHex || sp.form == FormBase64 {
					require.Equal(t, []string{sp.form}, leaks)
				}

				out := ScrubString(sp.text, secret)
				require.Empty(t, Leaks([]byte(out), secret), "scrubbed: %s", out)
				require.Contains(t, out, Redacted)
			})
		}
	}
}

func TestScrubString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		secrets []String
		want    string
	}{
		{"no secrets", "password hunter2", nil, "password hunter2"},
		{"empty secret is ignored", "password hunter2", []String{{}}, "password hunter2"},
		{"absent secret", "password hunter2", []String{New("swordfish")}, "password hunter2"},
		{"every occurrence", "hunter2 and hunter2", []String{New("hunter2")}, "[REDACTED] and [REDACTED]"},
		{"several secrets", "old=hunter2 new=swordfish", []String{New("hunter2"), New("swordfish")}, "old=[REDACTED] new=[REDACTED]"},
		{"a secret inside another is replaced whole", "v=prefix-inner-suffix", []String{New("inner"), New("prefix-inner-suffix")}, "v=[REDACTED]"},
		// A leftmost-first replacer would take "xhunter2" and leave "pass".
		{"overlapping secrets", "xhunter2pass", []String{New("xhunter2"), New("hunter2pass")}, "x[REDACTED]"},
		{"escaped form next to raw", `raw=a"b json="a\"b"`, []String{New(`a"b`)}, `raw=[REDACTED] json="[REDACTED]"`},
		{"percent form", "postgres://app:p%40ss@db", []String{New("p@ss")}, "postgres://app:[REDACTED]@db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, ScrubString(tt.in, tt.secrets...))
		})
	}
}

type driverError struct{ msg string }

func (e *driverError) Error() string { return e.msg }

func TestScrub(t *testing.T) {
	t.Parallel()
	pw := New("hunter2-swordfish")
	errBase := &driverError{msg: "auth failed for postgres://app:hunter2-swordfish@db/app"}
	clean := &driverError{msg: "connection refused"}

	tests := []struct {
		name    string
		err     error
		want    string // empty: Scrub returns nil
		wantErr error  // errors.Is must reach it
		same    bool   // Scrub must return err itself
		as      bool   // errors.As must reach the *driverError
	}{
		{"nil", nil, "", nil, false, false},
		{"nothing to scrub", clean, "connection refused", clean, true, true},
		{"direct", errBase, "auth failed for postgres://app:[REDACTED]@db/app", errBase, false, true},
		{"wrapped", fmt.Errorf("test step: %w", errBase), "test step: auth failed for postgres://app:[REDACTED]@db/app", errBase, false, true},
		{"joined", errors.Join(fs.ErrPermission, errBase), "permission denied\nauth failed for postgres://app:[REDACTED]@db/app", fs.ErrPermission, false, true},
		{"wrapped sentinel", fmt.Errorf("write %s: %w", pw.Reveal(), fs.ErrExist), "write [REDACTED]: file already exists", fs.ErrExist, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Scrub(tt.err, pw)
			if tt.err == nil {
				require.NoError(t, got)
				return
			}
			require.EqualError(t, got, tt.want)
			require.ErrorIs(t, got, tt.wantErr)
			require.Equal(t, tt.same, got == tt.err)
			require.Empty(t, Leaks([]byte(got.Error()), pw))
			require.Empty(t, Leaks([]byte(fmt.Sprintf("%v %+v %s", got, got, got)), pw))
			var de *driverError
			require.Equal(t, tt.as, errors.As(got, &de))
		})
	}
}

func TestLeaks(t *testing.T) {
	t.Parallel()
	pw := New(scrubPassword)
	b64 := base64.StdEncoding.EncodeToString([]byte(scrubPassword))
	tests := []struct {
		name     string
		haystack string
		secrets  []String
		want     []string
	}{
		{"clean", "nothing to see here", []String{pw}, nil},
		{"empty haystack", "", []String{pw}, nil},
		{"no secrets", scrubPassword, nil, nil},
		{"empty secret never leaks", "anything", []String{{}}, nil},
		{"redacted", "password " + Redacted, []String{pw}, nil},
		{"raw", "x" + scrubPassword + "x", []String{pw}, []string{FormRaw}},
		{"percent", url.QueryEscape(scrubPassword), []String{pw}, []string{FormPercentEncoded}},
		{"escaped", strconv.Quote(scrubPassword), []String{pw}, []string{FormEscaped}},
		{"hex", hex.EncodeToString([]byte(scrubPassword)), []String{pw}, []string{FormHex}},
		{"base64", b64, []String{pw}, []string{FormBase64}},
		{"several forms, fixed order", b64 + " " + scrubPassword + " " + url.PathEscape(scrubPassword), []String{pw}, []string{FormRaw, FormPercentEncoded, FormBase64}},
		{"any of several secrets", "token swordfish", []String{pw, New("swordfish")}, []string{FormRaw}},
		{"a prefix is not a leak", scrubPassword[:len(scrubPassword)-1], []String{pw}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, Leaks([]byte(tt.haystack), tt.secrets...))
		})
	}
}

// TestLeaksBase64Offsets hides the secret at every offset inside a longer
// base64 text, as a Kubernetes Secret or a Basic auth header would.
func TestLeaksBase64Offsets(t *testing.T) {
	t.Parallel()
	pw := New("aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF")
	for prefix := range 6 {
		for suffix := range 3 {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding} {
				t.Run(fmt.Sprintf("prefix %d suffix %d", prefix, suffix), func(t *testing.T) {
					t.Parallel()
					blob := strings.Repeat("\xfb", prefix) + pw.Reveal() + strings.Repeat("\xff", suffix)
					text := enc.EncodeToString([]byte(blob))
					require.Equal(t, []string{FormBase64}, Leaks([]byte(text), pw))
					require.Empty(t, Leaks([]byte(ScrubString(text, pw)), pw))
				})
			}
		}
	}
}
