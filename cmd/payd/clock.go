package main

import "time"

// hostClock is the host clock every payd process hands its store (store.Open):
// nil means time.Now. Only the tests set it, in a payd child process of the
// test binary (TestMain, PAYD_TEST_CLOCK_FILE), to a clock that jumps.
var hostClock func() time.Time
