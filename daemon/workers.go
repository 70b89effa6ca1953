package daemon

import (
	"os"
	"runtime"
	"strconv"
)

// setWorkerThreads applies worker_threads when it changes from prev to n:
// n > 0 fixes GOMAXPROCS; 0 hands it back to the runtime, which follows
// the affinity mask and the cgroup CPU limit (or the GOMAXPROCS
// environment variable, when the operator set one). It returns the value
// in force.
func setWorkerThreads(prev, n int) int {
	switch {
	case n > 0 && n != prev:
		runtime.GOMAXPROCS(n)
	case n == 0 && prev > 0:
		if env, err := strconv.Atoi(os.Getenv("GOMAXPROCS")); err == nil && env > 0 {
			runtime.GOMAXPROCS(env)
		} else {
			runtime.SetDefaultGOMAXPROCS()
		}
	}
	return runtime.GOMAXPROCS(0)
}
