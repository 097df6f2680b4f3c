package neonfake

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rotorhq/rotor/internal/pgcluster"
)

// endpointProxy plays one Neon compute endpoint's host: Neon's proxy in
// front of the compute, speaking the PostgreSQL protocol (neondatabase/neon
// proxy/README.md). It
//   - refuses connections without TLS, as Neon does ("connection is
//     insecure (try using `sslmode=require`)"), and presents the fake's
//     certificate (see authority);
//   - authenticates the client itself with SCRAM-SHA-256(-PLUS) against the
//     role's verifier and logs in to the branch's cluster with the
//     ClientKey the client's proof yields, so channel binding
//     (channel_binding=require) binds to the certificate the client saw,
//     and the proxy never learns a plaintext password;
//   - then relays the session, passing every backend message through as it
//     is and every frontend message except the statements of Query and
//     Parse messages that its rule refuses (sqlrules.go);
//   - for a read_only endpoint, starts every session with
//     default_transaction_read_only=on.
type endpointProxy struct {
	srv        *Server
	cluster    *pgcluster.Cluster
	readOnly   bool
	rule       statementRule
	tlsConf    *tls.Config
	certHash   []byte
	backendTLS *tls.Config
	ln         net.Listener
	port       int

	mu       sync.Mutex
	sessions map[*session]struct{}
	closed   bool
	wg       sync.WaitGroup
}

// authTimeout bounds everything before a session is established.
const authTimeout = 30 * time.Second

// Protocol codes of the startup packets (PostgreSQL protocol, "Message
// Formats").
const (
	codeCancel = 80877102
	codeSSL    = 80877103
	codeGSSENC = 80877104
)

func (s *Server) startProxy(c *pgcluster.Cluster, readOnly bool) (*endpointProxy, error) {
	ca, err := os.ReadFile(c.CACertFile)
	if err != nil {
		return nil, fmt.Errorf("neonfake: read the cluster's certificate %s: %w", c.CACertFile, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("neonfake: %s holds no certificate", c.CACertFile)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("neonfake: listen for an endpoint: %w", err)
	}
	p := &endpointProxy{
		srv: s, cluster: c, readOnly: readOnly, rule: rolePasswordRule,
		tlsConf: s.ca.serverConfig(), certHash: s.ca.endPointHash(),
		backendTLS: &tls.Config{RootCAs: roots, ServerName: c.Host, MinVersion: tls.VersionTLS12},
		ln:         ln, port: ln.Addr().(*net.TCPAddr).Port, sessions: map[*session]struct{}{},
	}
	if readOnly {
		p.rule = readOnlyRule
	}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func (p *endpointProxy) accept() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return
		}
		sess := &session{}
		sess.add(conn)
		if !p.track(sess) {
			sess.close()
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(sess)
			defer sess.close()
			p.serve(sess, conn)
		}()
	}
}

// close stops accepting, cuts every session and waits for them.
func (p *endpointProxy) close() {
	p.mu.Lock()
	p.closed = true
	for s := range p.sessions {
		s.close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

func (p *endpointProxy) track(s *session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.sessions[s] = struct{}{}
	return true
}

func (p *endpointProxy) untrack(s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.sessions, s)
}

// backendPIDs returns the server process of every established session.
func (p *endpointProxy) backendPIDs() []int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	pids := []int32{}
	for s := range p.sessions {
		if pid := s.backendPID(); pid != 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// session is one client connection and the compute connection behind it.
type session struct {
	mu     sync.Mutex
	conns  []net.Conn
	pid    int32
	closed bool
}

func (s *session) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return false
	}
	s.conns = append(s.conns, c)
	return true
}

func (s *session) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, c := range s.conns {
		_ = c.Close()
	}
}

func (s *session) setPID(pid int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pid = pid
}

func (s *session) backendPID() int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

func (p *endpointProxy) serve(sess *session, raw net.Conn) {
	_ = raw.SetDeadline(time.Now().Add(authTimeout))
	client, cr, startup, err := p.negotiate(raw)
	if err != nil || client == nil || !sess.add(client) {
		return
	}
	cw := bufio.NewWriter(client)
	version := binary.BigEndian.Uint32(startup[:4])
	switch {
	case version == codeCancel:
		p.forwardCancel(startup)
		return
	case version>>16 != 3:
		fatal(cw, "0A000", fmt.Sprintf("unsupported frontend protocol %d.%d: the server supports 3.0 to 3.2", version>>16, version&0xffff))
		return
	}
	params := parseParams(startup[4:])
	user := paramValue(params, "user")
	if user == "" {
		fatal(cw, "28000", "no PostgreSQL user name specified in startup packet")
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	backend, err := p.dialBackend(ctx)
	if err != nil {
		fatal(cw, "08006", "neonfake: could not reach the compute: "+err.Error())
		return
	}
	if !sess.add(backend) {
		return
	}
	br, bw := bufio.NewReader(backend), bufio.NewWriter(backend)
	if p.readOnly {
		params = withParam(params, "default_transaction_read_only", "on")
		params = slices.DeleteFunc(params, func(kv [2]string) bool { return kv[0] == "transaction_read_only" })
	}
	if err := writeStartup(bw, version, params); err != nil {
		return
	}
	mechs, ok := p.awaitAuthRequest(br, cw)
	if !ok {
		return
	}
	if !p.authenticate(ctx, user, mechs, cr, cw, br, bw) {
		return
	}
	_ = raw.SetDeadline(time.Time{})
	_ = backend.SetDeadline(time.Time{})
	p.relay(sess, cr, cw, br, bw)
}

// negotiate answers SSLRequest and GSSENCRequest until the client speaks
// TLS, and returns the TLS connection with its first packet. A client that
// will not use TLS is told what Neon tells it; a plain CancelRequest is
// forwarded and ends the connection (client nil).
func (p *endpointProxy) negotiate(raw net.Conn) (net.Conn, *bufio.Reader, []byte, error) {
	br := bufio.NewReader(raw)
	for range 3 {
		first, err := br.Peek(1)
		if err != nil {
			return nil, nil, nil, err
		}
		if first[0] == 0x16 {
			// A TLS ClientHello: direct TLS (sslnegotiation=direct).
			return p.startTLS(&bufferedConn{Conn: raw, r: br})
		}
		pkt, err := readStartup(br)
		if err != nil {
			return nil, nil, nil, err
		}
		switch binary.BigEndian.Uint32(pkt[:4]) {
		case codeSSL:
			// Bytes after SSLRequest and before the handshake could be
			// injected by a man in the middle; PostgreSQL refuses them too.
			if br.Buffered() > 0 {
				return nil, nil, nil, errors.New("data after SSLRequest")
			}
			if _, err := raw.Write([]byte{'S'}); err != nil {
				return nil, nil, nil, err
			}
			return p.startTLS(raw)
		case codeGSSENC:
			if _, err := raw.Write([]byte{'N'}); err != nil {
				return nil, nil, nil, err
			}
		case codeCancel:
			p.forwardCancel(pkt)
			return nil, nil, nil, nil
		default:
			w := bufio.NewWriter(raw)
			fatal(w, "08P01", "connection is insecure (try using `sslmode=require`)")
			return nil, nil, nil, nil
		}
	}
	return nil, nil, nil, errors.New("too many negotiation requests")
}

func (p *endpointProxy) startTLS(c net.Conn) (net.Conn, *bufio.Reader, []byte, error) {
	tc := tls.Server(c, p.tlsConf)
	if err := tc.Handshake(); err != nil {
		return nil, nil, nil, err
	}
	r := bufio.NewReader(tc)
	pkt, err := readStartup(r)
	if err != nil {
		return nil, nil, nil, err
	}
	switch binary.BigEndian.Uint32(pkt[:4]) {
	case codeSSL, codeGSSENC:
		fatal(bufio.NewWriter(tc), "08P01", "unexpected encryption request over TLS")
		return nil, nil, nil, errors.New("encryption request over TLS")
	}
	return tc, r, pkt, nil
}

// bufferedConn reads first what was peeked.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func (p *endpointProxy) dialBackend(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(p.cluster.Host, strconv.Itoa(p.cluster.Port)))
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req := make([]byte, 8)
	binary.BigEndian.PutUint32(req[0:], 8)
	binary.BigEndian.PutUint32(req[4:], codeSSL)
	answer := make([]byte, 1)
	if _, err := conn.Write(req); err != nil {
		_ = conn.Close()
		return nil, err
	}
	if _, err := io.ReadFull(conn, answer); err != nil || answer[0] != 'S' {
		_ = conn.Close()
		return nil, errors.New("the cluster does not offer TLS")
	}
	tc := tls.Client(conn, p.backendTLS)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return tc, nil
}

func (p *endpointProxy) forwardCancel(pkt []byte) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", net.JoinHostPort(p.cluster.Host, strconv.Itoa(p.cluster.Port)))
	if err != nil {
		return
	}
	defer conn.Close()
	out := make([]byte, 4, 4+len(pkt))
	binary.BigEndian.PutUint32(out, uint32(4+len(pkt)))
	_, _ = conn.Write(append(out, pkt...))
	// The server closes the connection once it has read the request.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, conn)
}

// awaitAuthRequest reads the compute's answer to the startup message up to
// its SASL request, passing NegotiateProtocolVersion and errors on.
func (p *endpointProxy) awaitAuthRequest(br *bufio.Reader, cw *bufio.Writer) ([]string, bool) {
	for {
		typ, body, err := readMessage(br)
		if err != nil {
			return nil, false
		}
		switch {
		case typ == 'v':
			if writeMessage(cw, typ, body) != nil || cw.Flush() != nil {
				return nil, false
			}
		case typ == 'E':
			_ = writeMessage(cw, typ, body)
			_ = cw.Flush()
			return nil, false
		case typ == 'R' && len(body) >= 4 && binary.BigEndian.Uint32(body) == 10:
			return parseCStrings(body[4:]), true
		default:
			fatal(cw, "08P01", "neonfake: the compute asked for an authentication the proxy does not pass on (only SCRAM-SHA-256)")
			return nil, false
		}
	}
}

// authenticate runs the client's SCRAM exchange against the role's
// verifier, then the compute's with the ClientKey it yields, and
// completes the client's once the compute has accepted.
func (p *endpointProxy) authenticate(ctx context.Context, user string, computeMechs []string,
	cr *bufio.Reader, cw *bufio.Writer, br *bufio.Reader, bw *bufio.Writer) bool {
	fail := func(err error) bool {
		if errors.Is(err, errAuth) {
			// Neon's proxy quotes the user name with single quotes.
			fatal(cw, "28P01", "password authentication failed for user '"+user+"'")
		} else {
			fatal(cw, "08P01", err.Error())
		}
		return false
	}
	sec, err := p.secretOf(ctx, user)
	if err != nil {
		fatal(cw, "XX000", "neonfake: look up the role's verifier: "+err.Error())
		return false
	}
	if writeMessage(cw, 'R', authSASL(mechSCRAMPlus, mechSCRAM)) != nil || cw.Flush() != nil {
		return false
	}
	typ, body, err := readMessage(cr)
	if err != nil || typ != 'p' {
		return false
	}
	mech, data, err := parseSASLInitial(body)
	if err != nil || (mech != mechSCRAM && mech != mechSCRAMPlus) {
		return fail(errors.New("client selected an invalid SASL authentication mechanism"))
	}
	srv := &scramServer{sec: sec, mechanism: mech, certHash: p.certHash}
	serverFirst, err := srv.first(data)
	if err != nil {
		return fail(err)
	}
	if writeMessage(cw, 'R', authCode(11, serverFirst)) != nil || cw.Flush() != nil {
		return false
	}
	if typ, body, err = readMessage(cr); err != nil || typ != 'p' {
		return false
	}
	clientKey, serverFinal, err := srv.final(string(body))
	if err != nil {
		return fail(err)
	}

	if !slices.Contains(computeMechs, mechSCRAM) {
		return fail(errors.New("neonfake: the compute does not offer SCRAM-SHA-256"))
	}
	cl := &scramClient{clientKey: clientKey, sec: sec}
	first := cl.first()
	if writeMessage(bw, 'p', saslInitial(mechSCRAM, first)) != nil || bw.Flush() != nil {
		return false
	}
	next := func(want uint32) ([]byte, bool) {
		typ, body, err := readMessage(br)
		switch {
		case err != nil:
			return nil, false
		case typ == 'E':
			_ = writeMessage(cw, typ, body)
			_ = cw.Flush()
			return nil, false
		case typ != 'R' || len(body) < 4 || binary.BigEndian.Uint32(body) != want:
			fatal(cw, "08P01", "neonfake: unexpected answer from the compute during authentication")
			return nil, false
		}
		return body[4:], true
	}
	computeFirst, ok := next(11)
	if !ok {
		return false
	}
	final, err := cl.final(string(computeFirst))
	if err != nil {
		return fail(err)
	}
	if writeMessage(bw, 'p', []byte(final)) != nil || bw.Flush() != nil {
		return false
	}
	computeFinal, ok := next(12)
	if !ok {
		return false
	}
	if err := cl.verify(string(computeFinal)); err != nil {
		return fail(err)
	}
	return writeMessage(cw, 'R', authCode(12, serverFinal)) == nil && cw.Flush() == nil
}

// secretOf is the role's verifier as the control plane would hand it to
// Neon's proxy. The cluster's superuser plays Neon's cloud_admin, which no
// client may log in as.
func (p *endpointProxy) secretOf(ctx context.Context, user string) (scramSecret, error) {
	if user == p.cluster.SuperUser {
		return mockSecret(), nil
	}
	v, ok, err := p.srv.roleVerifier(ctx, p.cluster, user)
	if err != nil {
		return scramSecret{}, err
	}
	if !ok {
		return mockSecret(), nil
	}
	return parseSecret(v), nil
}

// relay copies the session both ways until either side ends it.
func (p *endpointProxy) relay(sess *session, cr *bufio.Reader, cw *bufio.Writer, br *bufio.Reader, bw *bufio.Writer) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer sess.close()
		for {
			typ, body, err := readMessage(br)
			if err != nil {
				_ = cw.Flush()
				return
			}
			if typ == 'K' && len(body) >= 8 {
				sess.setPID(int32(binary.BigEndian.Uint32(body)))
			}
			if typ == 'E' {
				body = withoutRaiseContext(body)
			}
			if writeMessage(cw, typ, body) != nil {
				return
			}
			if br.Buffered() == 0 && cw.Flush() != nil {
				return
			}
		}
	}()
	defer func() { <-done }()
	defer sess.close()
	for {
		typ, body, err := readMessage(cr)
		if err != nil {
			_ = bw.Flush()
			return
		}
		switch typ {
		case 'Q':
			body = p.inspectQuery(body)
		case 'P':
			body = p.inspectParse(body)
		}
		if writeMessage(bw, typ, body) != nil {
			return
		}
		if cr.Buffered() == 0 && bw.Flush() != nil {
			return
		}
	}
}

// inspectQuery applies the rule to a Query message (query string, NUL).
func (p *endpointProxy) inspectQuery(body []byte) []byte {
	sql, rest, ok := cutCString(body)
	if !ok {
		return body
	}
	out, changed := rewrite(sql, p.rule)
	if !changed {
		return body
	}
	return append(append([]byte(out), 0), rest...)
}

// inspectParse applies the rule to a Parse message (statement name, query
// string, parameter types).
func (p *endpointProxy) inspectParse(body []byte) []byte {
	name, rest, ok := cutCString(body)
	if !ok {
		return body
	}
	sql, tail, ok := cutCString(rest)
	if !ok {
		return body
	}
	out, changed := rewrite(sql, p.rule)
	if !changed {
		return body
	}
	b := append([]byte(name), 0)
	b = append(append(b, out...), 0)
	return append(b, tail...)
}

// withoutRaiseContext drops the CONTEXT field ("PL/pgSQL function
// inline_code_block … at RAISE") from the errors the proxy's refusals
// raise: Neon's come from C code and have none.
func withoutRaiseContext(body []byte) []byte {
	var code, msg string
	fields := [][]byte{}
	for rest := body; len(rest) > 1 && rest[0] != 0; {
		v, next, ok := cutCString(rest[1:])
		if !ok {
			return body
		}
		switch rest[0] {
		case 'C':
			code = v
		case 'M':
			msg = v
		}
		fields = append(fields, rest[:len(rest)-len(next)])
		rest = next
	}
	if !isRefusal(code, msg) {
		return body
	}
	var out []byte
	for _, f := range fields {
		if f[0] != 'W' {
			out = append(out, f...)
		}
	}
	return append(out, 0)
}

// Wire format helpers (PostgreSQL protocol, "Message Formats").

func readStartup(r *bufio.Reader) ([]byte, error) {
	head := make([]byte, 4)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(head)
	if n < 8 || n > 10000 {
		return nil, errors.New("invalid startup packet length")
	}
	pkt := make([]byte, n-4)
	_, err := io.ReadFull(r, pkt)
	return pkt, err
}

func readMessage(r *bufio.Reader) (byte, []byte, error) {
	head := make([]byte, 5)
	if _, err := io.ReadFull(r, head); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(head[1:])
	if n < 4 || n > 1<<30 {
		return 0, nil, errors.New("invalid message length")
	}
	body := make([]byte, n-4)
	_, err := io.ReadFull(r, body)
	return head[0], body, err
}

func writeMessage(w *bufio.Writer, typ byte, body []byte) error {
	head := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(head[1:], uint32(len(body)+4))
	if _, err := w.Write(head); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

func writeStartup(w *bufio.Writer, version uint32, params [][2]string) error {
	body := binary.BigEndian.AppendUint32(nil, version)
	for _, kv := range params {
		body = append(append(body, kv[0]...), 0)
		body = append(append(body, kv[1]...), 0)
	}
	body = append(body, 0)
	head := binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))
	if _, err := w.Write(append(head, body...)); err != nil {
		return err
	}
	return w.Flush()
}

// fatal sends a FATAL ErrorResponse.
func fatal(w *bufio.Writer, code, message string) {
	var b []byte
	for _, f := range []struct {
		k byte
		v string
	}{{'S', "FATAL"}, {'V', "FATAL"}, {'C', code}, {'M', message}} {
		b = append(append(append(b, f.k), f.v...), 0)
	}
	_ = writeMessage(w, 'E', append(b, 0))
	_ = w.Flush()
}

func authSASL(mechs ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, 10)
	for _, m := range mechs {
		b = append(append(b, m...), 0)
	}
	return append(b, 0)
}

func authCode(code uint32, data string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, code), data...)
}

func saslInitial(mech, data string) []byte {
	b := append([]byte(mech), 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

func parseSASLInitial(body []byte) (string, string, error) {
	mech, rest, ok := cutCString(body)
	if !ok || len(rest) < 4 {
		return "", "", errProtocol
	}
	n := int32(binary.BigEndian.Uint32(rest))
	if n < 0 || int(n) != len(rest)-4 {
		return "", "", errProtocol
	}
	return mech, string(rest[4:]), nil
}

func cutCString(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", b, false
}

func parseCStrings(b []byte) []string {
	var out []string
	for {
		s, rest, ok := cutCString(b)
		if !ok || s == "" {
			return out
		}
		out, b = append(out, s), rest
	}
}

func parseParams(b []byte) [][2]string {
	var out [][2]string
	for {
		k, rest, ok := cutCString(b)
		if !ok || k == "" {
			return out
		}
		v, rest, ok := cutCString(rest)
		if !ok {
			return out
		}
		out, b = append(out, [2]string{k, v}), rest
	}
}

func paramValue(params [][2]string, key string) string {
	for _, kv := range params {
		if kv[0] == key {
			return kv[1]
		}
	}
	return ""
}

// withParam sets key to value, replacing what the client sent. Parameters
// in the startup message override the options parameter (-c …), so a
// client cannot undo it there either.
func withParam(params [][2]string, key, value string) [][2]string {
	out := slices.DeleteFunc(slices.Clone(params), func(kv [2]string) bool { return kv[0] == key })
	return append(out, [2]string{key, value})
}
