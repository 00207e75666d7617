package loadtest

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat. It is 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcStats is what /proc says about a set of processes, summed.
type ProcStats struct {
	RSSBytes   int64   `json:"rssBytes"`   // resident memory (VmRSS)
	CPUSeconds float64 `json:"cpuSeconds"` // user + system time so far
	Threads    int     `json:"threads"`
	at         time.Time
}

// ReadProc sums the resident memory, CPU time and threads of pids from
// /proc/<pid>/status and /proc/<pid>/stat (Linux only).
func ReadProc(pids []int) (ProcStats, error) {
	st := ProcStats{at: time.Now()}
	for _, pid := range pids {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return st, fmt.Errorf("reading process %d: %w", pid, err)
		}
		for _, line := range strings.Split(string(status), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			switch f[0] {
			case "VmRSS:": // in kB
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				st.RSSBytes += kb << 10
			case "Threads:":
				n, _ := strconv.Atoi(f[1])
				st.Threads += n
			}
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return st, fmt.Errorf("reading process %d: %w", pid, err)
		}
		// "pid (comm) state ppid ...": comm may hold spaces and
		// parentheses, so count fields after the last ')'. utime and stime
		// are fields 14 and 15 of the line, 12 and 13 after comm.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			return st, fmt.Errorf("reading process %d: unexpected /proc/%d/stat", pid, pid)
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 13 {
			return st, fmt.Errorf("reading process %d: short /proc/%d/stat", pid, pid)
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		sys, _ := strconv.ParseFloat(f[12], 64)
		st.CPUSeconds += (ut + sys) / clockTicks
	}
	return st, nil
}

// ProcDelta compares a set of processes before and after a run.
type ProcDelta struct {
	PIDs   []int     `json:"pids"`
	Before ProcStats `json:"before"`
	After  ProcStats `json:"after"`
	// RSSDeltaBytes is After.RSSBytes - Before.RSSBytes.
	RSSDeltaBytes int64 `json:"rssDeltaBytes"`
	// BytesPerConnection is RSSDeltaBytes divided by the connections
	// open when After was read.
	BytesPerConnection float64 `json:"bytesPerConnection"`
	// CPUSeconds is the CPU time used between the two readings;
	// CPUPercent the same over the wall time (100 = one core busy).
	CPUSeconds float64 `json:"cpuSeconds"`
	CPUPercent float64 `json:"cpuPercent"`
}

// procWatch reads a set of processes at the start of a run.
type procWatch struct {
	pids   []int
	before ProcStats
}

func watchProc(pids []int) (*procWatch, error) {
	st, err := ReadProc(pids)
	if err != nil {
		return nil, err
	}
	return &procWatch{pids: pids, before: st}, nil
}

// delta reads the processes again; conns is the connections open now.
func (w *procWatch) delta(conns int) *ProcDelta {
	if w == nil {
		return nil
	}
	after, err := ReadProc(w.pids)
	if err != nil {
		return nil // the process ended; the run reports it elsewhere
	}
	d := &ProcDelta{PIDs: w.pids, Before: w.before, After: after,
		RSSDeltaBytes: after.RSSBytes - w.before.RSSBytes,
		CPUSeconds:    after.CPUSeconds - w.before.CPUSeconds}
	if conns > 0 {
		d.BytesPerConnection = float64(d.RSSDeltaBytes) / float64(conns)
	}
	if wall := after.at.Sub(w.before.at).Seconds(); wall > 0 {
		d.CPUPercent = 100 * d.CPUSeconds / wall
	}
	return d
}

// Machine describes where a run happened.
type Machine struct {
	Cores         int    `json:"cores"`
	MemTotalBytes int64  `json:"memTotalBytes"`
	Kernel        string `json:"kernel,omitempty"`
	GoVersion     string `json:"goVersion"`
	OpenFilesMax  uint64 `json:"openFilesLimit"`
}

// ReadMachine reads the core count, /proc/meminfo's MemTotal and the
// kernel release.
func ReadMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				m.MemTotalBytes = kb << 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.OpenFilesMax, _ = FileLimit()
	return m
}
