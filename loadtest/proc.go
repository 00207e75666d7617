package loadtest

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProcStats is what /proc says about a set of processes, summed.
type ProcStats struct {
	RSSBytes   int64   `json:"rssBytes"`
	CPUSeconds float64 `json:"cpuSeconds"` // user + system
}

// ReadProc sums RSS and CPU time of pids (Linux /proc; clock ticks of 100 Hz).
func ReadProc(pids []int) (ProcStats, error) {
	var st ProcStats
	for _, pid := range pids {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return st, fmt.Errorf("loadtest: reading process %d: %w", pid, err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(status)))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				st.RSSBytes += kb << 10
			}
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return st, fmt.Errorf("loadtest: reading process %d: %w", pid, err)
		}
		// Fields after the command name (which may hold spaces): utime is
		// field 14 and stime field 15 of the whole line.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
		f := strings.Fields(rest)
		if len(f) > 12 {
			ut, _ := strconv.ParseFloat(f[11], 64)
			stt, _ := strconv.ParseFloat(f[12], 64)
			st.CPUSeconds += (ut + stt) / 100
		}
	}
	return st, nil
}

// MachineInfo describes where a run happened.
type MachineInfo struct {
	Cores       int    `json:"cores"`
	MemTotalKiB int64  `json:"memTotalKiB"`
	Kernel      string `json:"kernel"`
}

func readMachine(cores int) MachineInfo {
	m := MachineInfo{Cores: cores}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				m.MemTotalKiB, _ = strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}
