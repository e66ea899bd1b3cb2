;; Blocks in the host: `poll_oneoff` on a one-hour clock. Epoch interruption
;; cannot stop a guest that is not running code, so this proves `--timeout`
;; also covers time spent waiting in host calls.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; subscription at 0: userdata u64, tag u8 = 0 (clock), clock id u32 = 1
  ;; (monotonic) at 16, timeout u64 at 24, precision u64 at 32, flags u16 at 40.
  (data (i32.const 8) "\00")
  (data (i32.const 16) "\01\00\00\00")
  (data (i32.const 24) "\00\10\a5\d4\e8\00\00\00") ;; 1e12 ns: ~16 minutes
  (func (export "_start")
    (drop (call $poll_oneoff (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))))
