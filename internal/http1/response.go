package http1

import (
	"net/http"
	"strconv"
	"time"
)

// Response is a FastHandler's answer: a status, fields and a body. The
// server adds Date, Content-Length and, when the connection is to
// close, Connection: close.
type Response struct {
	status int
	fields []byte // "Name: value\r\n" lines
	body   []byte
}

// Status sets the status code (200 unless set).
func (w *Response) Status(code int) { w.status = code }

// Field adds a header field. name and value must be valid header text:
// the handler's own constants and values it made.
func (w *Response) Field(name, value string) {
	w.fields = append(w.fields, name...)
	w.fields = append(w.fields, ": "...)
	w.fields = append(w.fields, value...)
	w.fields = append(w.fields, "\r\n"...)
}

// Body sets the body; the server copies it before the handler returns.
func (w *Response) Body(b []byte) { w.body = b }

func (w *Response) reset() {
	w.status, w.fields, w.body = http.StatusOK, w.fields[:0], nil
}

// appendTo appends the response to out: the status line, the fields,
// then date (a Date field line), Content-Length and the body.
func (w *Response) appendTo(out []byte, date []byte, closing bool) []byte {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	out = append(out, "HTTP/1.1 "...)
	out = strconv.AppendInt(out, int64(status), 10)
	out = append(out, ' ')
	out = append(out, http.StatusText(status)...)
	out = append(out, "\r\n"...)
	out = append(out, w.fields...)
	out = append(out, date...)
	out = append(out, "Content-Length: "...)
	out = strconv.AppendInt(out, int64(len(w.body)), 10)
	out = append(out, "\r\n"...)
	if closing {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)
	return append(out, w.body...)
}

// AppendResponse appends w to out as the server writes it on a
// keep-alive connection (for tests of FastHandlers).
func AppendResponse(out []byte, w *Response) []byte {
	var d dateLine
	return w.appendTo(out, d.at(time.Now()), false)
}

// dateLine caches the "Date: ...\r\n" line of the current second.
type dateLine struct {
	sec  int64
	line []byte
}

func (d *dateLine) at(now time.Time) []byte {
	if s := now.Unix(); s != d.sec || d.line == nil {
		d.sec = s
		d.line = append(d.line[:0], "Date: "...)
		d.line = now.UTC().AppendFormat(d.line, http.TimeFormat)
		d.line = append(d.line, "\r\n"...)
	}
	return d.line
}
