package management

import (
	"crypto/rand"
	"net/http"
	"strconv"
	"sync/atomic"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
)

// What every @connections call needs of its own, in one allocation: the
// status-recording writer, the request id's bytes and the header value
// that holds them. The @connections POST path is the hot one (a backend
// pushing to its clients); each allocation there costs at 40,000 posts a
// second.
type call struct {
	rw   statusWriter
	id   [1]string
	uuid [36]byte
}

// requestIDHeader is x-amzn-RequestId in net/http's canonical form, set
// directly: Header.Set would canonicalize (and allocate) it every time.
const requestIDHeader = "X-Amzn-Requestid"

// start wraps w for one call and sets its x-amzn-RequestId.
func start(w http.ResponseWriter) *statusWriter {
	c := &call{rw: statusWriter{ResponseWriter: w, status: http.StatusOK}}
	fillUUID(&c.uuid)
	c.id[0] = unsafe.String(&c.uuid[0], len(c.uuid))
	w.Header()[requestIDHeader] = c.id[:]
	return &c.rw
}

// fillUUID writes a random UUID (version 4) into b.
func fillUUID(b *[36]byte) {
	var r [16]byte
	_, _ = rand.Read(r[:])
	r[6] = r[6]&0x0f | 0x40
	r[8] = r[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	j := 0
	for i, v := range r {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j], b[j+1] = hex[v>>4], hex[v&0x0f]
		j += 2
	}
}

// statusLabels are the status label values of HTTP statuses, made once.
var statusLabels = func() (s [600]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

// statusLabel is status's label value, without allocating.
func statusLabel(status int) string {
	if status >= 0 && status < len(statusLabels) {
		return statusLabels[status]
	}
	return strconv.Itoa(status)
}

// requestCounters are ManagementRequests' counters of the @connections
// operations, resolved once per (operation, status) and then read without
// hashing the label values or taking the vector's lock: the post path
// counts every call.
type requestCounters struct {
	vec *prometheus.CounterVec
	c   [3][600]atomic.Pointer[prometheus.Counter] // post, get, delete by status
}

// requestOps are the operations requestCounters holds, in its order.
var requestOps = [3]string{"post", "get", "delete"}

// inc counts one call of op answered status.
func (rc *requestCounters) inc(op string, status int) {
	i := -1
	switch op {
	case "post":
		i = 0
	case "get":
		i = 1
	case "delete":
		i = 2
	}
	if i < 0 || status < 0 || status >= len(rc.c[0]) {
		rc.vec.WithLabelValues(op, statusLabel(status)).Inc()
		return
	}
	p := rc.c[i][status].Load()
	if p == nil {
		// Callers racing here resolve the same child counter.
		c := rc.vec.WithLabelValues(requestOps[i], statusLabel(status))
		p = &c
		rc.c[i][status].Store(p)
	}
	(*p).Inc()
}
