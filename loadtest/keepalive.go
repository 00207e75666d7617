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
// scenario uses one per client instead of net/http's Transport, whose
// read and write goroutines per connection cost the generator two
// goroutine hand-offs per request on the cores it shares with the
// gateway. Responses are parsed by http.ReadResponse.
type keepAlive struct {
	host    string // host:port, dialled when there is no connection
	timeout time.Duration
	conn    net.Conn
	br      *bufio.Reader
	req     []byte
}

func newKeepAlive(host string, timeout time.Duration) *keepAlive {
	return &keepAlive{host: host, timeout: timeout}
}

// post sends body to path, with the header lines extra ("Name:
// value\r\n"..., or nil), and returns the status and at most 4 KiB of
// the answer. After an error the connection is dropped and the next call
// dials again.
func (k *keepAlive) post(path string, body, extra []byte) (int, []byte, error) {
	status, answer, err := k.roundTrip(path, body, extra)
	if err != nil {
		k.close()
	}
	return status, answer, err
}

func (k *keepAlive) roundTrip(path string, body, extra []byte) (int, []byte, error) {
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
	r := append(k.req[:0], "POST "...)
	r = append(r, path...)
	r = append(r, " HTTP/1.1\r\nHost: "...)
	r = append(r, k.host...)
	r = append(r, "\r\nContent-Length: "...)
	r = strconv.AppendInt(r, int64(len(body)), 10)
	r = append(r, "\r\n"...)
	r = append(r, extra...)
	r = append(r, "\r\n"...)
	r = append(r, body...)
	k.req = r
	if _, err := k.conn.Write(r); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(k.br, nil)
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
