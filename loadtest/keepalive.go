package loadtest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// keepAlive is one HTTP/1.1 keep-alive connection that sends one request
// at a time and reads its answer on the calling goroutine. The post
// scenario and http-load (http:// targets) use one per client instead of
// net/http's Transport, whose
// read and write goroutines per connection cost the generator two
// goroutine hand-offs per request on the cores it shares with the
// gateway. Responses are parsed by http.ReadResponse.
type keepAlive struct {
	host    string // host:port, dialled when there is no connection
	timeout time.Duration
	conn    net.Conn
	br      *bufio.Reader
	req     []byte
	asked   http.Request // the method of the request being answered, for ReadResponse
}

func newKeepAlive(host string, timeout time.Duration) *keepAlive {
	return &keepAlive{host: host, timeout: timeout}
}

// post sends body to path, with the header lines extra ("Name:
// value\r\n"..., or nil), and returns the status and at most 4 KiB of
// the answer. After an error the connection is dropped and the next call
// dials again.
func (k *keepAlive) post(path string, body, extra []byte) (int, []byte, error) {
	return k.do(http.MethodPost, path, body, extra)
}

// do is post for any method; a request without a body to send carries
// no Content-Length unless the method is POST, PUT or PATCH.
func (k *keepAlive) do(method, path string, body, extra []byte) (int, []byte, error) {
	status, answer, err := k.roundTrip(method, path, body, extra)
	if err != nil {
		k.close()
	}
	return status, answer, err
}

func (k *keepAlive) roundTrip(method, path string, body, extra []byte) (int, []byte, error) {
	if k.conn == nil {
		c, err := net.DialTimeout("tcp", k.host, k.timeout)
		if err != nil {
			return 0, nil, err
		}
		k.conn = c
		if k.br == nil {
			k.br = bufio.NewReaderSize(c, 4096)
		} else {
			k.br.Reset(c)
		}
	}
	if err := k.conn.SetDeadline(time.Now().Add(k.timeout)); err != nil {
		return 0, nil, err
	}
	r := append(k.req[:0], method...)
	r = append(r, ' ')
	r = append(r, path...)
	r = append(r, " HTTP/1.1\r\nHost: "...)
	r = append(r, k.host...)
	r = append(r, "\r\n"...)
	if len(body) > 0 || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		r = append(r, "Content-Length: "...)
		r = strconv.AppendInt(r, int64(len(body)), 10)
		r = append(r, "\r\n"...)
	}
	r = append(r, extra...)
	r = append(r, "\r\n"...)
	r = append(r, body...)
	k.req = r
	if _, err := k.conn.Write(r); err != nil {
		return 0, nil, err
	}
	if k.asked.Method != method {
		k.asked = http.Request{Method: method} // how ReadResponse tells a HEAD answer has no body
	}
	resp, err := http.ReadResponse(k.br, &k.asked)
	if err != nil {
		return 0, nil, fmt.Errorf("reading the answer: %w", err)
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body) // the rest, to keep the connection in step
	}
	resp.Body.Close()
	if err != nil {
		return 0, nil, fmt.Errorf("reading the answer: %w", err)
	}
	if resp.Close {
		k.close()
	}
	return resp.StatusCode, answer, nil
}

func (k *keepAlive) close() {
	if k.conn != nil {
		_ = k.conn.Close()
		k.conn = nil
	}
}
